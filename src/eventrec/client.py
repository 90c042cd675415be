"""`eventrec.client.Producer`: publish interactions, events and profiles from a Python service.

Each message is turned into the bytes that will be sent and checked by the consumer's own
decoder, so what this producer sends the consumer applies, and what the consumer would
dead-letter is refused here, before sending, with the reason the dead letter would carry.
"""

from __future__ import annotations

import json
import time
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import date, datetime
from datetime import time as time_of_day
from types import TracebackType
from typing import Any, Literal

import orjson
from kafka import KafkaProducer
from pydantic import BaseModel

from eventrec.config import Settings
from eventrec.errors import DeliveryError, InvalidMessageError
from eventrec.schemas.decode import decode_event, decode_interaction_fields, decode_profile, encode
from eventrec.schemas.wire import Event, Interaction, UserProfile

TopicKind = Literal["interactions", "events", "users"]
TOPIC_KINDS: tuple[TopicKind, ...] = ("interactions", "events", "users")
MAX_ID_LENGTH = 128
# Kafka's default message.max.bytes is 1,048,588; leave room for the key and headers.
DEFAULT_MAX_MESSAGE_BYTES = 1_000_000

Message = BaseModel | Mapping[str, Any] | bytes


def message_bytes(message: Message) -> bytes:
    """The JSON bytes of a model, a mapping (datetimes allowed) or bytes given as they are."""
    if isinstance(message, bytes | bytearray | memoryview):
        return bytes(message)
    if isinstance(message, BaseModel):
        return encode(message)
    if isinstance(message, Mapping):
        try:
            return orjson.dumps(dict(message))
        except (orjson.JSONEncodeError, TypeError):
            pass
        try:  # the standard library also writes integers beyond 64 bits
            return json.dumps(dict(message), default=_iso).encode("utf-8")
        except (TypeError, ValueError) as exc:
            raise InvalidMessageError(f"value: not serialisable as JSON: {exc}") from None
    raise TypeError(f"expected a model, a mapping or bytes, not {type(message).__name__}")


def _iso(value: object) -> str:
    if isinstance(value, datetime | date | time_of_day):
        return value.isoformat()
    raise TypeError(f"Type is not JSON serializable: {type(value).__name__}")


def check(
    kind: TopicKind,
    key: bytes | None,
    value: bytes,
    max_bytes: int = DEFAULT_MAX_MESSAGE_BYTES,
    *,
    latest: float | None = None,
) -> bytes:
    """The key to send ``value`` with on ``kind``'s topic: ``key``, or the message's id if None.

    Raises :class:`InvalidMessageError` with the reason the consumer would dead-letter the
    message with (the decoder is the consumer's own, given the key returned). ``latest``
    is the latest ``occurred_at`` the consumer accepts: its clock plus the allowed skew.
    """
    if len(value) > max_bytes:
        raise InvalidMessageError(
            f"value: {len(value):,} bytes, over the {max_bytes:,} a message may have"
        )
    entity_id: str
    if kind == "interactions":
        entity_id = decode_interaction_fields(key, value, latest=latest).user_id
    elif kind == "events":
        event = decode_event(key or _id_in(value, "event_id"), value)
        assert event is not None  # only a null value is a deletion
        entity_id = event.event_id
    elif kind == "users":
        profile = decode_profile(key or _id_in(value, "user_id"), value)
        assert profile is not None
        entity_id = profile.user_id
    else:
        raise ValueError(f"unknown topic kind {kind!r}; expected one of {', '.join(TOPIC_KINDS)}")
    return entity_id.encode("utf-8") if key is None else key


def _id_in(value: bytes, field: str) -> bytes:
    """The key a catalog or profile message will get: its id, or a stand-in when it has
    none (the decoder then gives the reason the message is invalid, not the key's)."""
    try:
        body = orjson.loads(value)
    except orjson.JSONDecodeError:
        return b"-"
    entity_id = body.get(field) if isinstance(body, dict) else None
    return entity_id.encode("utf-8") if isinstance(entity_id, str) and entity_id else b"-"


def key_for(
    kind: TopicKind,
    value: bytes,
    max_bytes: int = DEFAULT_MAX_MESSAGE_BYTES,
    *,
    latest: float | None = None,
) -> bytes:
    """The key ``value`` must be sent with (its id), or the consumer's reason to refuse it."""
    return check(kind, None, value, max_bytes, latest=latest)


def deletion_key(kind: TopicKind, entity_id: str) -> bytes:
    """The key of a tombstone (deletion) on the ``events`` or ``users`` topic."""
    if kind == "interactions":
        raise InvalidMessageError(
            "value: null is not an interaction (deletions are for events and users)"
        )
    if not 0 < len(entity_id) <= MAX_ID_LENGTH:
        raise InvalidMessageError(
            f"key: an id has 1-{MAX_ID_LENGTH} characters, not {len(entity_id)}"
        )
    return entity_id.encode("utf-8")


@dataclass(frozen=True)
class Undelivered:
    """A message Kafka did not acknowledge, as it was sent, so the caller can send it again."""

    topic: str
    key: bytes | None
    value: bytes | None
    error: BaseException


class Producer:
    """Publishes to eventrec's topics, keyed by the right id, refusing what would be dead-lettered.

    ``send_*`` raise :class:`InvalidMessageError` (``.reason`` names the field) for a message
    the consumer would dead-letter, and send nothing. :meth:`flush` waits for every message
    sent so far and raises :class:`DeliveryError` listing those Kafka did not acknowledge
    (kafka-python's own ``flush`` does not). Use it as a context manager, or ``close()`` it.
    """

    def __init__(
        self,
        settings: Settings,
        *,
        kafka: KafkaProducer | None = None,
        max_message_bytes: int = DEFAULT_MAX_MESSAGE_BYTES,
        client_id: str = "eventrec-client",
    ) -> None:
        self.topics: dict[TopicKind, str] = {
            "interactions": settings.topic_interactions,
            "events": settings.topic_events,
            "users": settings.topic_users,
        }
        self.max_message_bytes = max_message_bytes
        self.max_clock_skew_seconds = settings.max_clock_skew_seconds
        self._owned = kafka is None
        self._kafka = kafka or KafkaProducer(
            bootstrap_servers=settings.bootstrap_servers,
            client_id=client_id,
            acks="all",
            linger_ms=5,
            # Room for the key and headers of the largest value allowed.
            max_request_size=max_message_bytes + 64 * 1024,
        )
        self._undelivered: list[Undelivered] = []

    # -- sending -------------------------------------------------------------------------

    def send(
        self,
        kind: TopicKind,
        message: Message,
        *,
        key: bytes | None = None,
        headers: list[tuple[str, bytes]] | None = None,
    ) -> Any:
        """Check and send one message to ``kind``'s topic; returns kafka-python's future.

        The key is the message's id; a ``key`` given must be that id (a replay's original).
        """
        value = message_bytes(message)
        key = check(kind, key, value, self.max_message_bytes, latest=self.latest())
        return self._send(self.topics[kind], key, value, headers)

    def latest(self) -> float:
        """The latest ``occurred_at`` the consumer accepts now (as seen by this clock)."""
        return time.time() + self.max_clock_skew_seconds

    def send_interaction(self, interaction: Interaction | Mapping[str, Any] | bytes) -> Any:
        """An interaction, keyed by its ``user_id``."""
        return self.send("interactions", interaction)

    def send_event(self, event: Event | Mapping[str, Any] | bytes) -> Any:
        """A catalog event (a whole new state of it), keyed by its ``event_id``."""
        return self.send("events", event)

    def send_profile(self, profile: UserProfile | Mapping[str, Any] | bytes) -> Any:
        """A user profile (a whole new state of it), keyed by its ``user_id``."""
        return self.send("users", profile)

    def delete_event(self, event_id: str) -> Any:
        return self._send(self.topics["events"], deletion_key("events", event_id), None, None)

    def delete_profile(self, user_id: str) -> Any:
        return self._send(self.topics["users"], deletion_key("users", user_id), None, None)

    def _send(
        self,
        topic: str,
        key: bytes | None,
        value: bytes | None,
        headers: list[tuple[str, bytes]] | None,
    ) -> Any:
        future = self._kafka.send(topic, key=key, value=value, headers=headers)
        undelivered = self._undelivered

        def failed(error: BaseException) -> None:
            undelivered.append(Undelivered(topic, key, value, error))

        future.add_errback(failed)
        return future

    # -- delivery ------------------------------------------------------------------------

    def flush(self, timeout: float | None = None) -> None:
        """Wait for everything sent so far; raise :class:`DeliveryError` for what failed."""
        self._kafka.flush(timeout=timeout)
        if self._undelivered:
            failed, self._undelivered = self._undelivered, []
            raise DeliveryError(failed)

    def close(self, timeout: float | None = None) -> None:
        """Flush, then close the Kafka client (unless it was given)."""
        try:
            self.flush(timeout)
        finally:
            if self._owned:
                self._kafka.close(timeout=timeout)

    def __enter__(self) -> Producer:
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        # Undelivered messages are raised even after another error: they must not go unseen.
        self.close()
