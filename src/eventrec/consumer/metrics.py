"""The consumer's Prometheus metrics: what it applied, de-duplicated and dead-lettered,
how long batches and Redis steps take, and the lag of each partition it owns.

With ``EVENTREC_CONSUMER_PROCESSES`` above 1 every member writes to the multiprocess
directory chosen by the first; that one answers ``/metrics`` for all of them.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Mapping
from typing import TypeVar

from prometheus_client import Counter, Gauge, Histogram

from eventrec.schemas import DeadLetter
from eventrec.telemetry import LATENCY_BUCKETS, dead_letter_reason

T = TypeVar("T")

APPLIED = Counter(
    "eventrec_consumer_applied_total",
    "Messages applied to Redis (interactions stored; catalog and profile upserts and "
    "deletions), by topic.",
    ["topic"],
)
DEDUPLICATED = Counter(
    "eventrec_consumer_deduplicated_total",
    "Interactions not applied because their interaction_id was already seen, by topic.",
    ["topic"],
)
DEAD_LETTERS = Counter(
    "eventrec_consumer_dead_letters_total",
    "Messages sent to the dead-letter topic, by source topic and reason (the field the "
    "reason names, unknown_field, or other).",
    ["topic", "reason"],
)
BATCH_SECONDS = Histogram(
    "eventrec_consumer_batch_duration_seconds",
    "Time to validate one partition's batch, resolve its ids and send its dead letters.",
    ["topic"],
    buckets=LATENCY_BUCKETS,
)
BATCH_MESSAGES = Histogram(
    "eventrec_consumer_batch_messages",
    "Messages in one partition's batch.",
    buckets=(1, 10, 100, 500, 1_000, 2_500, 5_000, 10_000, 50_000),
)
REDIS_STEP_SECONDS = Histogram(
    "eventrec_consumer_redis_step_duration_seconds",
    "Time of one batch's atomic Redis step (one attempt), by topic.",
    ["topic"],
    buckets=LATENCY_BUCKETS,
)
LAG = Gauge(
    "eventrec_consumer_lag_messages",
    "Messages in a partition not yet applied (end offset minus stored position), measured "
    "by the member that owns the partition with each progress line.",
    ["topic", "partition"],
    multiprocess_mode="livemax",
)

_reported: set[tuple[str, int]] = set()


def timed_step(topic: str, step: Callable[[], T]) -> Callable[[], T]:
    """``step`` that records how long each of its runs takes."""

    def timed() -> T:
        started = time.perf_counter()
        try:
            return step()
        finally:
            REDIS_STEP_SECONDS.labels(topic).observe(time.perf_counter() - started)

    return timed


def batch_prepared(topic: str, messages: int, seconds: float) -> None:
    BATCH_MESSAGES.observe(messages)
    BATCH_SECONDS.labels(topic).observe(seconds)


def batch_applied(topic: str, applied: int, duplicates: int) -> None:
    APPLIED.labels(topic).inc(applied)
    if duplicates:
        DEDUPLICATED.labels(topic).inc(duplicates)


def dead_lettered(letters: Iterable[DeadLetter]) -> None:
    for letter in letters:
        DEAD_LETTERS.labels(letter.topic, dead_letter_reason(letter.reason)).inc()


def lag_measured(lags: Mapping[tuple[str, int], int]) -> None:
    """This member's partitions' lag; a partition it no longer owns drops to 0 here."""
    for topic, partition in _reported - set(lags):
        LAG.labels(topic, str(partition)).set(0)
    for (topic, partition), lag in lags.items():
        LAG.labels(topic, str(partition)).set(lag)
    _reported.clear()
    _reported.update(lags)
