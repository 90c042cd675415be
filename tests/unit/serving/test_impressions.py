"""The impression sender's metrics: what it queued, sent, dropped and failed, over workers."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from kafka.errors import KafkaTimeoutError
from prometheus_client import REGISTRY

from eventrec.config import Settings
from eventrec.serving.impressions import ImpressionSender
from eventrec.telemetry import MULTIPROC_ENV, metrics_registry, process_exited

NAMES = ("offered_total", "sent_total", "dropped_total", "failed_total")


def sample(name: str, registry: Any = REGISTRY) -> float:
    value = registry.get_sample_value(f"eventrec_serving_impressions_{name}")
    return float(value or 0.0)


def counters() -> dict[str, float]:
    return {name: sample(name) for name in NAMES}


class Future:
    def __init__(self, error: BaseException | None) -> None:
        self.error = error

    def add_callback(self, callback: Callable[[Any], None]) -> None:
        if self.error is None:
            callback(None)

    def add_errback(self, errback: Callable[[BaseException], None]) -> None:
        if self.error is not None:
            errback(self.error)


class Producer:
    """Acknowledges every impression at once, except those keyed ``b"lost"``."""

    def __init__(self) -> None:
        self.sent: list[bytes] = []

    def send(self, topic: str, key: bytes, value: bytes) -> Future:
        self.sent.append(key)
        return Future(KafkaTimeoutError("expired") if key == b"lost" else None)

    def close(self, timeout: float) -> None:
        pass


def test_a_full_queue_drops_and_counts_and_the_gauge_shows_what_waits() -> None:
    before = counters()
    sender = ImpressionSender(Settings(impressions_queue_size=2))  # not started: nothing drains
    for user in ("u1", "u2", "u3", "u4", "u5"):
        sender.offer(user.encode(), b"{}")
    after = counters()
    assert after["offered_total"] - before["offered_total"] == 5
    assert after["dropped_total"] - before["dropped_total"] == 3
    assert sample("queued") == 2
    assert sender.stats()["dropped"] == 3
    assert sender.stats()["queued"] == 2


def test_sent_and_failed_are_what_the_broker_answered(monkeypatch: pytest.MonkeyPatch) -> None:
    producer = Producer()
    monkeypatch.setattr(ImpressionSender, "_connect", lambda self: producer)
    before = counters()
    sender = ImpressionSender(Settings())
    sender.start()
    for key in (b"u1", b"lost", b"u2", b"u3"):
        sender.offer(key, b"{}")
    sender.stop(timeout=5)
    assert producer.sent == [b"u1", b"lost", b"u2", b"u3"]
    after = counters()
    assert after["sent_total"] - before["sent_total"] == 3
    assert after["failed_total"] - before["failed_total"] == 1
    assert after["dropped_total"] == before["dropped_total"]
    assert sample("queued") == 0
    assert sender.stats() == {"offered": 4, "sent": 3, "dropped": 0, "failed": 1, "queued": 0}


WORKER = """
import os, sys
from eventrec.config import Settings
from eventrec.serving.impressions import ImpressionSender
sender = ImpressionSender(Settings(impressions_queue_size=2))
for i in range(3):
    sender.offer(b"u%d" % i, b"{}")
print(os.getpid())
"""


def test_workers_add_up_and_a_dead_workers_queue_stops_counting(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Two worker processes in multiprocess mode, as `eventrec serve --workers 2` runs them."""
    env = {**os.environ, MULTIPROC_ENV: str(tmp_path)}
    pids = [
        int(
            subprocess.run(
                [sys.executable, "-c", WORKER], env=env, capture_output=True, text=True, check=True
            ).stdout
        )
        for _ in range(2)
    ]
    monkeypatch.setenv(MULTIPROC_ENV, str(tmp_path))
    registry = metrics_registry()
    assert sample("offered_total", registry) == 6
    assert sample("dropped_total", registry) == 2
    assert sample("sent_total", registry) == 0
    assert sample("queued", registry) == 4
    process_exited(pids[0])
    registry = metrics_registry()
    assert sample("queued", registry) == 2  # the dead worker's queue is gone with it
    assert sample("dropped_total", registry) == 2  # what it counted still counts
