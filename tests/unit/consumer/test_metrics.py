"""The consumer's metrics: dead letters by bounded reason, lag of the partitions it owns."""

from __future__ import annotations

import pytest
from prometheus_client import REGISTRY

from eventrec.consumer import metrics
from eventrec.schemas import DeadLetter


def sample(name: str, **labels: str) -> float:
    return REGISTRY.get_sample_value(name, labels) or 0.0


def letter(reason: str) -> DeadLetter:
    return DeadLetter.of(
        reason=reason, topic="unit.interactions", partition=0, offset=1, key=b"u", value=b"{}"
    )


def test_dead_letters_are_counted_by_field_not_by_text() -> None:
    name = "eventrec_consumer_dead_letters_total"
    before = {
        reason: sample(name, topic="unit.interactions", reason=reason)
        for reason in ("rating", "unknown_field", "other")
    }
    metrics.dead_lettered(
        [
            letter("rating: required for type 'rating'"),
            letter("rating: Input should be less than or equal to 5"),
            letter("nickname: Extra inputs are not permitted"),
            letter("a reason nobody planned"),
        ]
    )
    after = {
        reason: sample(name, topic="unit.interactions", reason=reason) - before[reason]
        for reason in before
    }
    assert after == {"rating": 2, "unknown_field": 1, "other": 1}


def test_a_partition_no_longer_owned_reports_no_lag() -> None:
    metrics.lag_measured({("unit.lag", 0): 40, ("unit.lag", 1): 7})
    assert sample("eventrec_consumer_lag_messages", topic="unit.lag", partition="0") == 40
    metrics.lag_measured({("unit.lag", 1): 3})
    assert sample("eventrec_consumer_lag_messages", topic="unit.lag", partition="0") == 0
    assert sample("eventrec_consumer_lag_messages", topic="unit.lag", partition="1") == 3


def test_a_redis_step_is_timed_even_when_it_fails() -> None:
    name = "eventrec_consumer_redis_step_duration_seconds_count"
    before = sample(name, topic="unit.steps")

    def failing() -> int:
        raise ConnectionError("redis went away")

    timed = metrics.timed_step("unit.steps", failing)
    with pytest.raises(ConnectionError):
        timed()
    assert metrics.timed_step("unit.steps", lambda: 5)() == 5
    assert sample(name, topic="unit.steps") == before + 2
