"""Which dead letters a replay leaves alone, and why, without a broker."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from eventrec.client import check
from eventrec.config import Settings
from eventrec.dlq import replay as replay_module
from eventrec.dlq.read import Filters, ReadCounts, Stored
from eventrec.dlq.replay import (
    COPY,
    ENTITY_STATE,
    OUTSIDE_WINDOW,
    TRUNCATED,
    ReplaySummary,
    replay_dead_letters,
    skip_reason,
    topic_kinds,
)
from eventrec.schemas import DeadLetter

NOW = datetime(2026, 11, 30, 12, tzinfo=UTC)
SETTINGS = Settings(dedup_window_seconds=3600)


def letter(topic: str = "interactions", minutes_ago: float = 0, **fields: object) -> DeadLetter:
    values: dict[str, object] = {
        "reason": "why",
        "topic": topic,
        "partition": 1,
        "offset": 7,
        "key": b"u-1",
        "value": b"{}",
        "failed_at": NOW - timedelta(minutes=minutes_ago),
    }
    values.update(fields)
    return DeadLetter(**values)  # type: ignore[arg-type]


def why(dead: DeadLetter, force: bool = False) -> str | None:
    return skip_reason(dead, topic_kinds(SETTINGS).get(dead.topic), SETTINGS, NOW, force)


def test_an_interaction_inside_the_window_is_replayed() -> None:
    assert why(letter(minutes_ago=59)) is None


def test_outside_the_window_it_is_refused_unless_forced_saying_why() -> None:
    old = letter(minutes_ago=61)
    assert why(old) == OUTSIDE_WINDOW
    assert "would count it twice" in OUTSIDE_WINDOW
    assert "--force" in OUTSIDE_WINDOW
    assert why(old, force=True) is None


def test_catalog_and_profile_messages_need_force() -> None:
    assert why(letter("events")) == ENTITY_STATE
    assert why(letter("users")) == ENTITY_STATE
    assert why(letter("users"), force=True) is None


def test_truncated_copies_and_foreign_topics_are_never_replayed() -> None:
    assert why(letter(original_size=5_000_000), force=True) == TRUNCATED
    assert (
        why(letter("orders"), force=True) == "source topic 'orders' is not one the consumer reads"
    )


def test_the_summary_says_what_happened_to_each() -> None:
    summary = ReplaySummary(replayed=3)
    summary.still_invalid["rating: required for type '…'"] = 2
    summary.skipped[OUTSIDE_WINDOW] = 4
    summary.counts.matched, summary.counts.read = 9, 12
    text = summary.report()
    assert text.splitlines()[0] == (
        "replayed 3, still invalid 2, skipped 4 (of 9 matching dead letters; 12 read)"
    )
    assert "rating: required for type '…'" in text
    assert summary.refused == 4


class RecordingProducer:
    max_message_bytes = 1_000_000

    def __init__(self) -> None:
        self.sent: list[tuple[str, bytes | None, bytes, list[tuple[str, bytes]]]] = []
        self.flushed = 0

    def latest(self) -> float:
        return NOW.timestamp() + 600

    def send(self, kind: str, value: bytes, *, key: bytes | None, headers: Any) -> None:
        check(kind, key, value, latest=self.latest())  # type: ignore[arg-type]
        self.sent.append((kind, key, value, headers))

    def flush(self) -> None:
        self.flushed += 1


VALID = (
    b'{"schema_version": 1, "interaction_id": "i-1", "user_id": "u-1", "event_id": "e-1", '
    b'"type": "view", "occurred_at": "2026-11-30T11:00:00Z"}'
)


def test_a_replays_own_dead_letter_is_sent_once_per_run(monkeypatch: pytest.MonkeyPatch) -> None:
    letters = [
        letter(minutes_ago=30, value=VALID),
        # The same message dead-lettered again after an earlier replay: other coordinates.
        letter(minutes_ago=10, value=VALID, partition=3, offset=99),
        letter(minutes_ago=120, value=VALID, key=b"u-1", offset=1),
        letter(minutes_ago=5, value=b'{"schema_version": 1', reason="value: Invalid JSON"),
        letter(minutes_ago=5, value=b"x" * 100, original_size=3_000_000),
        letter(minutes_ago=5, value=None, key=None),
    ]

    def read(settings: Settings, filters: Filters, counts: ReadCounts, **_: Any) -> Any:
        for offset, dead in enumerate(letters):
            counts.read += 1
            counts.matched += 1
            yield Stored(0, offset, dead)

    monkeypatch.setattr(replay_module, "read_dead_letters", read)
    producer = RecordingProducer()
    summary = replay_dead_letters(SETTINGS, Filters(), producer, now=NOW)  # type: ignore[arg-type]
    assert summary.replayed == 1
    assert summary.skipped == {COPY: 1, OUTSIDE_WINDOW: 1, TRUNCATED: 1}
    assert sum(summary.still_invalid.values()) == 2
    [(kind, key, value, headers)] = producer.sent
    assert (kind, key, value) == ("interactions", b"u-1", VALID)
    assert dict(headers) == {
        "eventrec.replay_of": f"{SETTINGS.topic_dlq}/0/0".encode(),
        "eventrec.original": b"interactions/1/7",
    }
    assert producer.flushed == 1
