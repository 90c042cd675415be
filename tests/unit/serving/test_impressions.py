"""The impression sender's metrics: what it queued, sent, dropped and failed, over workers."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import orjson
import pytest
from kafka.errors import KafkaTimeoutError
from prometheus_client import REGISTRY

from eventrec.config import Settings
from eventrec.schemas.impressions import Impression
from eventrec.serving.impressions import ImpressionSender, PendingImpression, encode
from eventrec.telemetry import MULTIPROC_ENV, metrics_registry, process_exited

NAMES = ("offered_total", "sent_total", "dropped_total", "failed_total")


def sample(name: str, registry: Any = REGISTRY) -> float:
    value = registry.get_sample_value(f"eventrec_serving_impressions_{name}")
    return float(value or 0.0)


def counters() -> dict[str, float]:
    return {name: sample(name) for name in NAMES}


class Future:
    """Answered at once, as kafka-python's futures are once the broker replied."""

    def __init__(self, error: BaseException | None) -> None:
        self.is_done = True
        self.exception = error


class Producer:
    """Acknowledges every impression at once, except those keyed ``b"lost"``."""

    def __init__(self) -> None:
        self.sent: list[bytes] = []
        self.values: list[bytes] = []

    def send(self, topic: str, key: bytes, value: bytes) -> Future:
        self.sent.append(key)
        self.values.append(value)
        return Future(KafkaTimeoutError("expired") if key == b"lost" else None)

    def flush(self, timeout: float | None = None) -> None:
        pass

    def close(self, timeout: float) -> None:
        pass


def impression(user_id: str, request_id: str = "r1") -> PendingImpression:
    return PendingImpression(
        request_id, user_id, None, 0, None, 0, "v000001", "personalised", ["e1", "e2"], 1.5e9
    )


def test_a_full_queue_drops_and_counts_and_the_gauge_shows_what_waits() -> None:
    before = counters()
    sender = ImpressionSender(Settings(impressions_queue_size=2))  # not started: nothing drains
    for user in ("u1", "u2", "u3", "u4", "u5"):
        sender.offer(impression(user))
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
    for user_id in ("u1", "lost", "u2", "u3"):
        sender.offer(impression(user_id))
    sender.stop(timeout=5)
    assert producer.sent == [b"u1", b"lost", b"u2", b"u3"]
    after = counters()
    assert after["sent_total"] - before["sent_total"] == 3
    assert after["failed_total"] - before["failed_total"] == 1
    assert after["dropped_total"] == before["dropped_total"]
    assert sample("queued") == 0
    assert sender.stats() == {"offered": 4, "sent": 3, "dropped": 0, "failed": 1, "queued": 0}


def test_the_sender_encodes_each_impression_as_the_schema_reads_it(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    producer = Producer()
    monkeypatch.setattr(ImpressionSender, "_connect", lambda self: producer)
    sender = ImpressionSender(Settings())
    sender.start()
    shown = PendingImpression(
        "0f" * 16, "u-7", "colours", 3, "blue", 1, "v000002", "personalised", ["e9", "e1"],
        1_800_000_000.25,
    )  # fmt: skip
    sender.offer(shown)
    sender.offer(shown._replace(request_id="r2", experiment=None, experiment_code=0,
                                variant=None, variant_index=0, model_version=None,
                                strategy="trending", event_ids=[]))  # fmt: skip
    sender.stop(timeout=5)
    assert producer.sent == [b"u-7", b"u-7"]
    first, second = (Impression.model_validate_json(value) for value in producer.values)
    assert orjson.loads(producer.values[0]) == {
        "schema_version": 1,
        "kind": "impression",
        "request_id": "0f" * 16,
        "user_id": "u-7",
        "experiment": "colours",
        "experiment_code": 3,
        "variant": "blue",
        "variant_index": 1,
        "model_version": "v000002",
        "strategy": "personalised",
        "event_ids": ["e9", "e1"],
        "shown_at": "2027-01-15T08:00:00.250000+00:00",
    }
    assert first.shown_at.timestamp() == 1_800_000_000.25
    assert (second.request_id, second.experiment, second.model_version, second.event_ids) == (
        "r2", None, None, []
    )  # fmt: skip
    assert encode(shown)[1] == producer.values[0]


WORKER = """
import os, sys
from eventrec.config import Settings
from eventrec.serving.impressions import ImpressionSender, PendingImpression
sender = ImpressionSender(Settings(impressions_queue_size=2))
for i in range(3):
    sender.offer(PendingImpression("r", f"u{i}", None, 0, None, 0, None, "trending", [], 1e9))
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
