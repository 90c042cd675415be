"""Filtering and summarising dead letters, without a broker."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from eventrec.dlq.read import Filters, parse_since, reason_kind, summarise
from eventrec.errors import EventrecError
from eventrec.schemas import DeadLetter

NOW = datetime(2026, 11, 30, 12, tzinfo=UTC)


def letter(reason: str, topic: str = "interactions", minutes_ago: int = 0) -> DeadLetter:
    return DeadLetter(
        reason=reason,
        topic=topic,
        partition=0,
        offset=0,
        key=None,
        value=b"{}",
        failed_at=NOW - timedelta(minutes=minutes_ago),
    )


def test_since_takes_a_duration_or_an_aware_time() -> None:
    assert parse_since("90m", NOW) == NOW - timedelta(minutes=90)
    assert parse_since("2h", NOW) == NOW - timedelta(hours=2)
    assert parse_since("7d", NOW) == NOW - timedelta(days=7)
    assert parse_since("2026-11-30T08:00:00+05:30") == datetime(2026, 11, 30, 2, 30, tzinfo=UTC)
    with pytest.raises(EventrecError, match="needs a time zone"):
        parse_since("2026-11-30T08:00:00")
    with pytest.raises(EventrecError, match="or a duration such as 90m"):
        parse_since("yesterday")


def test_reasons_are_grouped_without_their_particulars() -> None:
    assert (
        reason_kind("key: user_id 'u-1' has its row on partition 3, not 1; producers must key")
        == "key: user_id '…' has its row on partition N, not N; producers must key"
    )
    assert reason_kind("rating: required for type 'rating'") == "rating: required for type '…'"


def test_filters_combine_reason_time_and_source_topic() -> None:
    letters = [
        letter("rating: Input should be less than or equal to 5", minutes_ago=5),
        letter("rating: required for type 'rating'", minutes_ago=300),
        letter("Invalid JSON: expected value", topic="events", minutes_ago=5),
    ]
    by_reason = Filters.of("^RATING", None, None)
    assert [by_reason.match(x) for x in letters] == [True, True, False]
    recent = Filters(since=NOW - timedelta(hours=1))
    assert [recent.match(x) for x in letters] == [True, False, True]
    both = Filters(reason=by_reason.reason, since=NOW - timedelta(hours=1), topic="interactions")
    assert [both.match(x) for x in letters] == [True, False, False]
    assert all(Filters().match(x) for x in letters)
    with pytest.raises(EventrecError, match="not a regular expression"):
        Filters.of("(", None, None)


def test_summary_counts_by_topic_and_reason_with_first_and_last_times() -> None:
    letters = [
        letter("key: user_id 'u-1' has its row on partition 3, not 1", minutes_ago=10),
        letter("key: user_id 'u-2' has its row on partition 2, not 5", minutes_ago=1),
        letter("key: user_id 'u-3' has its row on partition 0, not 1", minutes_ago=30),
        letter("Invalid JSON: eof", topic="events", minutes_ago=3),
    ]
    groups = summarise(letters)
    assert [(g.topic, g.reason, g.count) for g in groups] == [
        ("interactions", "key: user_id '…' has its row on partition N, not N", 3),
        ("events", "Invalid JSON: eof", 1),
    ]
    assert groups[0].first == NOW - timedelta(minutes=30)
    assert groups[0].last == NOW - timedelta(minutes=1)
