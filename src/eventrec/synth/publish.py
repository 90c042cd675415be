"""Publishing a synthetic platform to Kafka: events, then users, then interactions."""

from __future__ import annotations

import logging
import time
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import Any, Protocol, TextIO

from kafka import KafkaProducer
from kafka.partitioner import Partitioner, murmur2
from kafka.record.util import crc32c_c

from eventrec.config import Settings
from eventrec.errors import ServiceUnavailableError
from eventrec.progress import Progress
from eventrec.synth.platform import Message, SyntheticPlatform

log = logging.getLogger(__name__)


class Producer(Protocol):
    """The part of kafka-python's `KafkaProducer` that publishing needs."""

    def send(self, topic: str, value: bytes | None = None, key: bytes | None = None) -> Any: ...

    def flush(self, timeout: float | None = None) -> None: ...

    def close(self, timeout: float | None = None) -> None: ...


class KeyHashPartitioner(Partitioner):  # type: ignore[misc]
    """Kafka's default partitioner (murmur2 of the key), remembering each key's hash.

    Same partition as the Java client and `DefaultPartitioner` for every key; the pure
    Python murmur2 is the slowest step of a send, and a user's key repeats many times.
    """

    def __init__(self) -> None:
        self._hashes: dict[bytes, int] = {}
        self._partitions: dict[str, list[int]] = {}

    def partition(
        self,
        topic: str,
        key: Any,
        serialized_key: bytes | None,
        value: Any,
        serialized_value: Any,
        cluster: Any,
    ) -> int:
        if serialized_key is None:
            raise ValueError("synthetic messages always have a key")
        known = cluster.partitions_for_topic(topic)
        partitions = self._partitions.get(topic)
        if partitions is None or len(partitions) != len(known):
            partitions = self._partitions[topic] = sorted(known)
        hashed = self._hashes.get(serialized_key)
        if hashed is None:
            hashed = self._hashes[serialized_key] = murmur2(serialized_key) & 0x7FFFFFFF
        return partitions[hashed % len(partitions)]


@dataclass(frozen=True)
class PublishCounts:
    events: int
    users: int
    interactions: int
    seconds: float

    @property
    def total(self) -> int:
        return self.events + self.users + self.interactions

    @property
    def rate(self) -> float:
        """Messages per second, flush included."""
        return self.total / self.seconds if self.seconds > 0 else 0.0


def create_producer(settings: Settings) -> KafkaProducer:
    """A producer tuned for bulk throughput, still waiting for every in-sync replica."""
    return KafkaProducer(
        bootstrap_servers=settings.bootstrap_servers,
        client_id="eventrec-synth",
        acks="all",
        # Measured on 2 cores with a local broker: small, frequent batches beat big ones.
        linger_ms=5,
        batch_size=128 * 1024,
        metrics_enabled=False,
        max_request_size=4 * 1024 * 1024,
        # Compression costs more CPU in Python than it saves on a local network.
        compression_type=None,
        partitioner=KeyHashPartitioner(),
    )


class _RateLimit:
    """Sleeps so that, on average, no more than ``rate`` messages go out per second."""

    def __init__(self, rate: float | None) -> None:
        if rate is not None and rate <= 0:
            raise ValueError("rate must be positive (messages per second)")
        self._rate = rate
        self._started = time.monotonic()

    def wait(self, sent: int) -> None:
        if self._rate is None:
            return
        ahead = sent / self._rate - (time.monotonic() - self._started)
        if ahead > 0:
            time.sleep(ahead)


def publish(
    platform: SyntheticPlatform,
    settings: Settings,
    rate: float | None = None,
    progress: bool = True,
    *,
    producer: Producer | None = None,
    progress_stream: TextIO | None = None,
) -> PublishCounts:
    """Send events, users and interactions (in time order) to their topics and flush.

    ``rate`` caps messages per second over the whole run (``None``: as fast as possible).
    A given ``producer`` is flushed but not closed.
    """
    streams: list[tuple[str, str, int, Iterable[Message]]] = [
        ("events", settings.topic_events, len(platform.events), platform.event_messages()),
        ("users", settings.topic_users, len(platform.users), platform.user_messages()),
        (
            "interactions",
            settings.topic_interactions,
            len(platform.interactions),
            platform.interaction_messages(),
        ),
    ]
    total = sum(count for _, _, count, _ in streams)
    owned = producer is None
    kafka: Producer = create_producer(settings) if producer is None else producer
    bar = Progress(total, progress_stream) if progress else None
    limit = _RateLimit(rate)
    started = time.monotonic()
    sent = 0
    counts: dict[str, int] = {}
    failures: list[Exception] = []
    if crc32c_c is None:
        log.warning("the crc32c package is not installed: kafka-python checksums in pure Python")
    try:
        for label, topic, _, messages in streams:
            counts[label] = 0
            for chunk in _chunks(messages, 1000 if rate is None else max(1, int(rate // 20))):
                send = kafka.send
                for key, value in chunk:
                    send(topic, value=value, key=key).add_errback(failures.append)
                counts[label] += len(chunk)
                sent += len(chunk)
                limit.wait(sent)
                if bar is not None:
                    bar.update(sent, label)
        if bar is not None:
            bar.update(sent, "flushing", force=True)
        kafka.flush()
        if bar is not None:
            bar.finish(sent, "done")
    finally:
        if owned:
            kafka.close()
    if failures:
        raise ServiceUnavailableError(
            f"{len(failures):,} of {sent:,} messages were not delivered; first: {failures[0]!r}"
        )
    return PublishCounts(
        events=counts.get("events", 0),
        users=counts.get("users", 0),
        interactions=counts.get("interactions", 0),
        seconds=time.monotonic() - started,
    )


def _chunks(messages: Iterable[Message], size: int) -> Iterator[list[Message]]:
    chunk: list[Message] = []
    for message in messages:
        chunk.append(message)
        if len(chunk) >= size:
            yield chunk
            chunk = []
    if chunk:
        yield chunk
