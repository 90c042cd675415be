"""Every response as an impression on Kafka, from a background thread that never blocks.

A request only appends the impression's fields to a bounded queue (a deque: no lock, no
thread woken; under a microsecond); a full queue drops it and counts the drop. One daemon
thread wakes every ``LINGER_SECONDS``, encodes what was queued and hands it to a
kafka-python producer (which batches), connecting and reconnecting with a growing pause
while Kafka is away, and counts the sends the broker has answered since. The counters
(``sent``: acknowledged by the broker, ``dropped``, ``failed``) are per worker process,
at ``GET /impressions/stats``; the same counts, and the queue's length, are Prometheus
metrics (``serving.metrics``) that the operations port adds up over all workers. Sent,
failed and queued are brought up to date once per cycle.
"""

from __future__ import annotations

import collections
import logging
import threading
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, NamedTuple

import orjson
from kafka import KafkaProducer
from kafka.errors import KafkaError

from eventrec.config import Settings
from eventrec.serving import metrics

log = logging.getLogger("eventrec.serving")

# How long an impression may wait to be sent with others: the sender's round and the
# producer's linger. Each produce request costs the broker far more than a record in it.
LINGER_SECONDS = 0.05


class PendingImpression(NamedTuple):
    """A response's impression as the request leaves it: encoded by the sender thread."""

    request_id: str
    user_id: str
    experiment: str | None
    experiment_code: int
    variant: str | None
    variant_index: int
    model_version: str | None
    strategy: str
    event_ids: list[str]
    shown_at: float  # Unix time


def encode(impression: PendingImpression) -> tuple[bytes, bytes]:
    """Kafka key and value of an impression (``schemas.impressions.Impression``)."""
    value = {
        "schema_version": 1,
        "kind": "impression",
        "request_id": impression.request_id,
        "user_id": impression.user_id,
        "experiment": impression.experiment,
        "experiment_code": impression.experiment_code,
        "variant": impression.variant,
        "variant_index": impression.variant_index,
        "model_version": impression.model_version,
        "strategy": impression.strategy,
        "event_ids": impression.event_ids,
        "shown_at": datetime.fromtimestamp(impression.shown_at, UTC).isoformat(),
    }
    return impression.user_id.encode(), orjson.dumps(value)


@dataclass
class ImpressionCounts:
    offered: int = 0
    sent: int = 0
    dropped: int = 0
    failed: int = 0


class ImpressionSender:
    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.topic = settings.topic_impressions
        self.counts = ImpressionCounts()
        self._capacity = settings.impressions_queue_size
        # Appended by the event loop's thread, taken by the sender's: both atomic.
        self._queue: collections.deque[PendingImpression] = collections.deque()
        self._stopping = threading.Event()
        self._stop_timeout = 10.0
        self._thread = threading.Thread(target=self._run, name="impressions", daemon=True)
        self._producer: Any = None

    def start(self) -> None:
        self._thread.start()

    def offer(self, impression: PendingImpression) -> None:
        """Queue one impression; never waits (a full queue drops it, counted)."""
        self.counts.offered += 1
        metrics.IMPRESSIONS_OFFERED.inc()
        if len(self._queue) < self._capacity:
            self._queue.append(impression)
            return
        self.counts.dropped += 1
        metrics.IMPRESSIONS_DROPPED.inc()
        metrics.IMPRESSIONS_QUEUED.set(len(self._queue))

    def stats(self) -> dict[str, int]:
        counts = self.counts
        return {
            "offered": counts.offered,
            "sent": counts.sent,
            "dropped": counts.dropped,
            "failed": counts.failed,
            "queued": len(self._queue),
        }

    def stop(self, timeout: float = 10.0) -> None:
        """Send what is queued (for up to ``timeout`` seconds), then close the producer."""
        self._stop_timeout = timeout
        self._stopping.set()
        self._thread.join(timeout)
        producer = self._producer
        if producer is not None:
            try:
                producer.close(timeout=timeout)
            except KafkaError as exc:
                log.warning("closing the impressions producer: %s", exc)
        log.info("impressions", extra=self.stats())

    def _connect(self) -> Any:
        pause = 0.5
        while True:
            try:
                return KafkaProducer(
                    bootstrap_servers=self.settings.bootstrap_servers,
                    client_id="eventrec-serving-impressions",
                    acks="all",
                    linger_ms=int(LINGER_SECONDS * 1000),
                    batch_size=256 * 1024,
                    retries=5,
                    max_block_ms=5_000,
                )
            except KafkaError as exc:
                if self._stopping.is_set():
                    return None
                log.warning("impressions: Kafka unavailable (%s); retrying in %.1f s", exc, pause)
                time.sleep(pause)
                pause = min(pause * 2, 10.0)

    def _run(self) -> None:
        self._producer = self._connect()
        if self._producer is None:
            return
        in_flight: list[Any] = []
        while True:
            started = time.monotonic()
            # Read before the round: whatever was offered before stop() is sent.
            stopping = self._stopping.is_set()
            in_flight = self._send_queued(in_flight)
            if stopping:
                try:
                    self._producer.flush(timeout=self._stop_timeout)
                except KafkaError as exc:
                    log.warning("flushing impressions: %s", exc)
            in_flight = self._count_answered(in_flight)
            if stopping:
                return
            time.sleep(max(0.0, LINGER_SECONDS - (time.monotonic() - started)))

    def _send_queued(self, in_flight: list[Any]) -> list[Any]:
        queue, send, topic = self._queue, self._producer.send, self.topic
        failed = 0
        while queue:
            key, value = encode(queue.popleft())
            try:
                in_flight.append(send(topic, key=key, value=value))
            except KafkaError as exc:  # the producer's own buffer stayed full for max_block_ms
                failed += 1
                self._log_failure(exc)
        metrics.IMPRESSIONS_QUEUED.set(len(queue))
        self._add(0, failed)
        return in_flight

    def _count_answered(self, in_flight: list[Any]) -> list[Any]:
        """Count the sends the broker answered; the others are still in flight."""
        sent = failed = 0
        waiting = []
        for future in in_flight:
            if not future.is_done:
                waiting.append(future)
            elif future.exception is None:
                sent += 1
            else:
                failed += 1
                self._log_failure(future.exception)
        self._add(sent, failed)
        return waiting

    def _add(self, sent: int, failed: int) -> None:
        if sent:
            self.counts.sent += sent
            metrics.IMPRESSIONS_SENT.inc(sent)
        if failed:
            self.counts.failed += failed
            metrics.IMPRESSIONS_FAILED.inc(failed)

    def _log_failure(self, exc: BaseException) -> None:
        failed = self.counts.failed + 1
        if failed in (1, 10, 100) or failed % 1000 == 0:
            log.warning("impressions not delivered: about %d so far (%s)", failed, exc)
