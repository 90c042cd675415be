"""Publishing order, keys, rate limit and progress, against a recording producer."""

from __future__ import annotations

import io
import time
from typing import Any

import pytest
from kafka.future import Future

from eventrec.config import Settings
from eventrec.errors import ServiceUnavailableError
from eventrec.synth.config import SynthConfig
from eventrec.synth.platform import SyntheticPlatform, generate
from eventrec.synth.publish import KeyHashPartitioner, publish

SETTINGS = Settings(topic_events="t.events", topic_users="t.users", topic_interactions="t.inter")


class RecordingProducer:
    def __init__(self, fail_every: int = 0) -> None:
        self.sent: list[tuple[str, bytes | None, bytes | None]] = []
        self.flushed = False
        self._fail_every = fail_every

    def send(self, topic: str, value: bytes | None = None, key: bytes | None = None) -> Any:
        self.sent.append((topic, key, value))
        future = Future()
        if self._fail_every and len(self.sent) % self._fail_every == 0:
            future.failure(RuntimeError("broker said no"))
        else:
            future.success(None)
        return future

    def flush(self, timeout: float | None = None) -> None:
        self.flushed = True

    def close(self, timeout: float | None = None) -> None:
        raise AssertionError("publish must not close a producer it was given")


@pytest.fixture(scope="module")
def platform() -> SyntheticPlatform:
    return generate(SynthConfig(n_users=100, n_events=40, n_interactions=2_000, seed=3))


def test_sends_events_then_users_then_interactions_keyed_by_id(
    platform: SyntheticPlatform,
) -> None:
    producer = RecordingProducer()
    counts = publish(platform, SETTINGS, progress=False, producer=producer)
    assert (counts.events, counts.users, counts.interactions) == (40, 100, 2_000)
    assert producer.flushed
    topics = [topic for topic, _, _ in producer.sent]
    assert topics == ["t.events"] * 40 + ["t.users"] * 100 + ["t.inter"] * 2_000
    assert producer.sent[-2_000:] == [
        ("t.inter", key, value) for key, value in platform.interaction_messages()
    ]
    assert [key for _, key, _ in producer.sent[:40]] == [
        e.event_id.encode() for e in platform.events
    ]


def test_rate_limit_and_progress_line(platform: SyntheticPlatform) -> None:
    stream = io.StringIO()
    started = time.monotonic()
    counts = publish(
        platform,
        SETTINGS,
        rate=5_000,
        progress=True,
        producer=RecordingProducer(),
        progress_stream=stream,
    )
    # 2,140 messages at 5,000/s take at least ~0.4 s.
    assert time.monotonic() - started > 0.35
    assert counts.total == 2_140
    last = stream.getvalue().rstrip("\n").split("\r")[-1]
    assert "2,140/2,140" in last
    assert "msg/s" in last
    assert "ETA" in last


def test_undelivered_messages_fail_the_run(platform: SyntheticPlatform) -> None:
    with pytest.raises(ServiceUnavailableError, match="not delivered"):
        publish(platform, SETTINGS, progress=False, producer=RecordingProducer(fail_every=100))


class _Cluster:
    def partitions_for_topic(self, topic: str) -> set[int]:
        return set(range(6))


def test_partitioner_matches_kafkas_default_partitioner() -> None:
    from kafka.partitioner import murmur2

    partitioner = KeyHashPartitioner()
    for user in ("u-000001", "u-000002", "u-123456", "ev-00042"):
        key = user.encode()
        expected = (murmur2(key) & 0x7FFFFFFF) % 6
        for _ in range(2):  # second time from the cache
            assert partitioner.partition("t", key, key, None, None, _Cluster()) == expected
