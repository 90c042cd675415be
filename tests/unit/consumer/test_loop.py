"""The consumer loop's pieces that need neither Kafka nor a Redis server."""

from __future__ import annotations

import signal
import threading
import time
from typing import Any

import fakeredis
import pytest
from kafka import TopicPartition

from eventrec.config import Settings
from eventrec.consumer import loop
from eventrec.consumer.loop import _compact
from eventrec.model.records import TYPE_SAVE, TYPE_VIEW, empty_records
from eventrec.store.store import Store


def test_compaction_folds_a_rows_repeated_views_into_one_record() -> None:
    records = empty_records(4)
    records["event"] = [5, 5, 5, 7]
    records["time"] = [10, 20, 30, 40]
    records["type"] = [TYPE_VIEW, TYPE_VIEW, TYPE_VIEW, TYPE_SAVE]
    records["value"] = 1
    compacted = _compact(records)
    assert compacted["event"].tolist() == [5, 7]
    assert compacted["type"].tolist() == [TYPE_VIEW, TYPE_SAVE]
    assert compacted["value"].tolist() == [3, 1]  # three views, one save
    assert compacted["time"].tolist() == [30, 40]  # each pair's latest


class FakeMember:
    """A member process that is still shutting down when the parent has stopped."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        self.pid = 4242
        self.signals: list[int] = []

    def poll(self) -> int | None:
        return None

    def send_signal(self, signum: int) -> None:
        self.signals.append(signum)

    def wait(self) -> int:
        # A second SIGTERM may reach it in interpreter shutdown, whose default action kills.
        return -signal.SIGTERM if len(self.signals) > 1 else 0


def test_each_member_is_signalled_once(monkeypatch: pytest.MonkeyPatch) -> None:
    members: list[FakeMember] = []

    def popen(*args: Any, **kwargs: Any) -> FakeMember:
        members.append(FakeMember())
        return members[-1]

    class FakeConsumer:
        def __init__(self, settings: Settings, store: Any) -> None:
            self.stopping = threading.Event()

        def run(self) -> None:
            signal.getsignal(signal.SIGTERM)(signal.SIGTERM, None)  # type: ignore[operator]

    monkeypatch.setattr(loop.subprocess, "Popen", popen)
    monkeypatch.setattr(loop, "connect", lambda url: None)
    monkeypatch.setattr(loop, "Store", lambda *args, **kwargs: None)
    monkeypatch.setattr(loop, "InteractionConsumer", FakeConsumer)
    handlers = {s: signal.getsignal(s) for s in (signal.SIGTERM, signal.SIGINT)}
    try:
        code = loop.run_consumer(Settings(consumer_processes=2, consumer_ops_port=0))
    finally:
        for signum, handler in handlers.items():
            signal.signal(signum, handler)
    assert [member.signals for member in members] == [[signal.SIGTERM]]
    assert code == 0


class Acknowledged:
    is_done = True
    exception = None

    def failed(self) -> bool:
        return False


class RecordingProducer:
    """Every send acknowledged; remembers (topic, key, partition) and each flush."""

    def __init__(self) -> None:
        self.sent: list[tuple[str, bytes | None, int | None]] = []
        self.flushed_after: list[int] = []

    def send(self, topic: str, value: Any = None, key: Any = None, headers: Any = None,
             partition: Any = None) -> Acknowledged:  # fmt: skip
        self.sent.append((topic, key, partition))
        return Acknowledged()

    def flush(self, timeout: float | None = None) -> None:
        self.flushed_after.append(len(self.sent))


class OneOwnerStore:
    """What an interactions step asks of the store: u1 is owned here, u2 by partition 2."""

    def __init__(self) -> None:
        self.client = type("Client", (), {"register_script": lambda self, s: None})()
        self.applied: list[Any] = []

    def stored_offset(self, topic: str, partition: int) -> int | None:
        return None

    def claim_owners(self, user_ids: list[str], partition: int) -> list[int]:
        return [partition if user == "u1" else 2 for user in user_ids]

    def apply_interactions(self, batch: Any, now: float, compact: Any = None) -> Any:
        self.applied.append(batch)
        return loop.StepResult(applied=len(batch.row_users), duplicates=0)


def test_outcomes_dead_letters_and_routes_go_out_together_in_the_step_once() -> None:
    from kafka import TopicPartition

    settings = Settings(topic_interactions="ix", topic_impressions="imp", topic_dlq="dlq")
    store = OneOwnerStore()
    consumer = loop.InteractionConsumer(settings, store)  # type: ignore[arg-type]
    producer = RecordingProducer()
    consumer._producer = producer  # type: ignore[assignment]
    steps: list[Any] = []
    consumer._writer = type("W", (), {"submit": lambda self, step: steps.append(step)})()  # type: ignore[assignment]

    def interaction(user: str, interaction_id: str) -> bytes:
        return (
            f'{{"schema_version": 1, "interaction_id": "{interaction_id}", "user_id": "{user}",'
            f' "event_id": "e1", "type": "view", "recommendation_id": "r1",'
            f' "occurred_at": "2026-11-30T10:00:00+00:00"}}'
        ).encode()

    class Msg:
        def __init__(self, offset: int, key: bytes, value: bytes) -> None:
            self.offset, self.key, self.value = offset, key, value

    messages = [
        Msg(0, b"u1", interaction("u1", "i1")),  # applied here: its outcome goes out
        Msg(1, b"u2", interaction("u2", "i2")),  # routed: its owner forwards the outcome
        Msg(2, b"u1", b"not json"),  # dead-lettered
    ]
    consumer._apply(TopicPartition("ix", 0), messages)  # type: ignore[arg-type]
    assert producer.sent == []  # nothing leaves on the poll thread
    (step,) = steps
    step.apply()
    assert producer.sent == [("dlq", b"u1", None), ("ix", b"u2", 2), ("imp", b"u1", None)]
    assert producer.flushed_after == [3]  # one delivery, acknowledged before the step
    assert len(store.applied) == 1
    step.apply()  # the writer retries a step after a Redis error: nothing is sent again
    assert len(producer.sent) == 3
    assert len(store.applied) == 2


def test_a_partition_whose_stored_offset_went_back_is_replayed_with_no_new_message() -> None:
    """Redis lost writes (a failover to a replica behind): the periodic check re-seeks
    each such partition to what Redis holds, the earliest offset when nothing is left."""
    client = fakeredis.FakeRedis()
    store = Store(client, "t")
    settings = Settings(consumer_loss_check_seconds=5)
    consumer = loop.InteractionConsumer(settings, store)
    seeks: list[tuple[TopicPartition, int | None]] = []

    class Kafka:
        def seek(self, tp: TopicPartition, offset: int) -> None:
            seeks.append((tp, offset))

        def seek_to_beginning(self, tp: TopicPartition) -> None:
            seeks.append((tp, None))

    consumer._consumer = Kafka()  # type: ignore[assignment]
    topic = settings.topic_interactions
    tps = [TopicPartition(topic, p) for p in range(3)]
    for tp, offset in zip(tps, (100, 200, 300), strict=True):
        client.set(store.keys.offset(topic, tp.partition), offset)
        consumer.positions[tp] = consumer.applied[tp] = offset
    client.set(store.keys.offset(topic, 1), 150)  # partition 1 lost its last 50 offsets
    client.delete(store.keys.offset(topic, 2))  # partition 2 lost every step

    consumer._last_loss_check = time.monotonic()
    consumer._check_for_lost_writes()
    assert seeks == []  # not before the interval
    consumer._last_loss_check -= 5
    consumer._check_for_lost_writes()
    assert seeks == [(tps[1], 150), (tps[2], None)]
    assert consumer.positions == {tps[0]: 100, tps[1]: 150, tps[2]: None}
    assert consumer.counters.lost == 2
    consumer._last_loss_check -= 5
    consumer._check_for_lost_writes()
    assert len(seeks) == 2  # nothing lost since: nothing replayed again
