"""One error hierarchy: each error says whether retrying can help (``retriable``)."""

from __future__ import annotations


class EventrecError(Exception):
    """Base of every error eventrec raises on purpose."""

    retriable = False


class ConfigError(EventrecError):
    """A setting is missing or wrong; the message names the environment variable."""


class InvalidMessageError(EventrecError):
    """A Kafka message failed validation: it goes to the dead-letter topic with ``reason``."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class ServiceUnavailableError(EventrecError):
    """Kafka or Redis cannot be reached right now; retry with backoff."""

    retriable = True


class FencedBatchError(EventrecError):
    """A batch's first offset is not the partition's stored offset: another consumer owns it."""


class LocalServicesError(EventrecError):
    """The local Kafka broker or Redis server of `eventrec services` could not start."""


class ExperimentError(EventrecError):
    """An experiment cannot be created, found or changed as asked; the message says why."""
