"""Dependencies that go away: one log line when they do, one when they are back, and a
retry loop with backoff that ends when the process is asked to stop."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from typing import TypeVar

from eventrec.store.client import UNAVAILABLE_ERRORS

log = logging.getLogger("eventrec.consumer")

BACKOFF_START = 0.5
BACKOFF_CAP = 15.0

T = TypeVar("T")


class StoppedError(Exception):
    """Raised out of a retry loop when the process was asked to stop."""


class Outage:
    """One log line when a dependency goes away, one when it is back."""

    def __init__(self, name: str) -> None:
        self.name = name
        self.since: float | None = None
        self.delay = BACKOFF_START

    def failed(self, exc: BaseException) -> float:
        """Note a failure; returns how long to wait before the next attempt."""
        if self.since is None:
            self.since = time.monotonic()
            log.warning(
                "%s unavailable, retrying with backoff: %s",
                self.name,
                exc,
                extra={"outage": self.name},
            )
        delay, self.delay = self.delay, min(self.delay * 2, BACKOFF_CAP)
        return delay

    def ok(self) -> None:
        if self.since is not None:
            log.info(
                "%s is back after %.1fs",
                self.name,
                time.monotonic() - self.since,
                extra={"recovered": self.name},
            )
        self.since = None
        self.delay = BACKOFF_START


class RedisRetry:
    """Calls into Redis, retried with backoff through outages until ``stopping`` is set."""

    def __init__(self, stopping: threading.Event) -> None:
        self.stopping = stopping
        self.outage = Outage("redis")

    def __call__(self, call: Callable[[], T]) -> T:
        while True:
            try:
                result = call()
                self.outage.ok()
                return result
            except UNAVAILABLE_ERRORS as exc:
                if self.stopping.is_set():
                    raise StoppedError from exc
                self.stopping.wait(self.outage.failed(exc))
