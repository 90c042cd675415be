"""Which dead letters a replay leaves alone, and why, without a broker."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from eventrec.config import Settings
from eventrec.dlq.replay import (
    ENTITY_STATE,
    OUTSIDE_WINDOW,
    TRUNCATED,
    ReplaySummary,
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
