"""The consumer loop's pieces that need neither Kafka nor Redis."""

from __future__ import annotations

import signal
import threading
from typing import Any

import pytest

from eventrec.config import Settings
from eventrec.consumer import loop
from eventrec.consumer.loop import _compact
from eventrec.model.records import TYPE_SAVE, TYPE_VIEW, empty_records


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
