"""Every response as an impression on Kafka, from a background thread that never blocks.

A request only puts the encoded impression into a bounded queue (``put_nowait``, well
under a microsecond); a full queue drops it and counts the drop. One daemon thread takes
them off the queue into a kafka-python producer (which batches), connecting and
reconnecting with a growing pause while Kafka is away. The counters (``sent``: acknowledged by
the broker, ``dropped``, ``failed``) are per worker process, at ``GET /impressions/stats``.
"""

from __future__ import annotations

import contextlib
import logging
import queue
import threading
import time
from dataclasses import dataclass
from typing import Any

from kafka import KafkaProducer
from kafka.errors import KafkaError

from eventrec.config import Settings

log = logging.getLogger("eventrec.serving")

_STOP = (b"", b"")


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
        self._queue: queue.Queue[tuple[bytes, bytes]] = queue.Queue(
            maxsize=settings.impressions_queue_size
        )
        self._stopping = threading.Event()
        self._thread = threading.Thread(target=self._run, name="impressions", daemon=True)
        self._producer: Any = None
        self._lock = threading.Lock()

    def start(self) -> None:
        self._thread.start()

    def offer(self, key: bytes, value: bytes) -> None:
        """Queue one impression; never waits (a full queue drops it, counted)."""
        self.counts.offered += 1
        try:
            self._queue.put_nowait((key, value))
        except queue.Full:
            self.counts.dropped += 1

    def stats(self) -> dict[str, int]:
        counts = self.counts
        return {
            "offered": counts.offered,
            "sent": counts.sent,
            "dropped": counts.dropped,
            "failed": counts.failed,
            "queued": self._queue.qsize(),
        }

    def stop(self, timeout: float = 10.0) -> None:
        """Send what is queued (for up to ``timeout`` seconds), then close the producer."""
        self._stopping.set()
        with contextlib.suppress(queue.Full):
            self._queue.put(_STOP, timeout=timeout)
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
                    linger_ms=20,
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

    def _sent(self, _metadata: Any) -> None:
        with self._lock:
            self.counts.sent += 1

    def _failed(self, exc: BaseException) -> None:
        with self._lock:
            self.counts.failed += 1
        if self.counts.failed in (1, 10, 100) or self.counts.failed % 1000 == 0:
            log.warning("impressions not delivered: %d so far (%s)", self.counts.failed, exc)

    def _run(self) -> None:
        self._producer = self._connect()
        if self._producer is None:
            return
        while True:
            key, value = self._queue.get()
            if (key, value) == _STOP:
                return
            try:
                future = self._producer.send(self.topic, key=key, value=value)
            except KafkaError as exc:  # the producer's own buffer stayed full for max_block_ms
                self._failed(exc)
                continue
            future.add_callback(self._sent)
            future.add_errback(self._failed)
