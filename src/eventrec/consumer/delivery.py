"""Sending what must reach Kafka before a batch's step (dead letters, routed interactions,
outcomes for attribution), acknowledged one by one.

kafka-python's ``flush()`` returns without raising when a record failed (its future holds
the error), so a batch's offset may only advance once every future has succeeded.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from kafka.errors import KafkaError, KafkaTimeoutError

from eventrec.schemas import DeadLetter


@dataclass(frozen=True)
class Outgoing:
    topic: str
    key: bytes | None
    value: bytes | None
    headers: list[tuple[str, bytes]]
    partition: int | None = None  # None: the producer's partitioner picks

    @classmethod
    def dead_letter(cls, topic: str, letter: DeadLetter) -> Outgoing:
        return cls(topic, letter.key, letter.value, letter.headers())


class Sender(Protocol):
    """What delivering needs of kafka-python's ``KafkaProducer``."""

    def send(
        self,
        topic: str,
        value: bytes | None = None,
        key: bytes | None = None,
        headers: list[tuple[str, bytes]] | None = None,
        partition: int | None = None,
    ) -> Any: ...

    def flush(self, timeout: float | None = None) -> None: ...


def deliver(
    producer: Sender,
    messages: Sequence[Outgoing],
    *,
    flush_timeout: float,
    on_failure: Callable[[BaseException], None],
) -> int:
    """Send ``messages`` and return once Kafka acknowledged every one; returns the re-sends.

    A message whose send failed is sent again; one still in flight after ``flush_timeout``
    is waited for, not re-sent (that would duplicate it). After each round that left
    something unacknowledged, ``on_failure`` is called with an error: it waits (backoff)
    or raises to give up, in which case the caller must not advance past the batch.
    """
    in_flight: list[tuple[Outgoing, Any]] = []
    to_send = list(messages)
    resent = 0
    while to_send or in_flight:
        error: BaseException | None = None
        for message in to_send:
            try:
                future = producer.send(
                    message.topic,
                    value=message.value,
                    key=message.key,
                    headers=message.headers,
                    partition=message.partition,
                )
            except KafkaError as exc:  # e.g. no metadata: the broker is unreachable
                error = exc
                in_flight.append((message, None))
            else:
                in_flight.append((message, future))
        try:
            producer.flush(timeout=flush_timeout)
        except KafkaTimeoutError as exc:
            error = exc
        to_send = []
        waiting = []
        for message, future in in_flight:
            if future is None or future.failed():
                if future is not None:
                    error = future.exception
                to_send.append(message)
            elif not future.is_done:
                waiting.append((message, future))
        in_flight = waiting
        if to_send or in_flight:
            resent += len(to_send)
            on_failure(error or KafkaTimeoutError("dead letters not acknowledged yet"))
    return resent
