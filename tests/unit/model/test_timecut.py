"""The time protocol on a hand-made platform whose right answers are known."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.sparse as sp

from eventrec.model.records import TYPE_BOOKING, TYPE_RATING, TYPE_SAVE, TYPE_VIEW, InteractionLog
from eventrec.model.timecut import (
    EventDates,
    bootstrap_difference,
    bucket_of,
    cut_instants,
    rank_cut,
    rank_shared,
    time_cut,
    time_cut_metrics,
)

T = 1_000_000
DAY = 86_400
NAN = float("nan")

# Events: 0 on sale and busy; 1 published after T; 2 started before T; 3 on sale, never
# touched before T; 4 cancelled; 5 on sale, no publication date but seen before T;
# 6 no dates at all (candidate only through an interaction in the window).
DATES = EventDates(
    published_at=np.array([T - 500, T + 100, T - 900, T - 10, T - 500, NAN, NAN]),
    starts_at=np.array([T + 5 * DAY, T + 5 * DAY, T - 100, T + 2 * DAY, T + 5 * DAY, T + DAY, NAN]),
    cancelled=np.array([False, False, False, False, True, False, False]),
)
ROWS = [
    # user, event, type, value, time
    (0, 0, TYPE_VIEW, 1, T - 50),
    (1, 0, TYPE_BOOKING, 1, T - 40),
    (3, 0, TYPE_VIEW, 1, T - 30),
    (3, 0, TYPE_VIEW, 1, T - 29),
    (3, 0, TYPE_VIEW, 1, T - 28),
    (3, 0, TYPE_VIEW, 1, T - 27),
    (3, 5, TYPE_VIEW, 1, T - 20),
    (3, 2, TYPE_BOOKING, 1, T - 300),
    (0, 3, TYPE_BOOKING, 1, T + 10),  # relevant: on sale, never touched before T
    (0, 1, TYPE_BOOKING, 1, T + 20),  # not a candidate: published after T
    (0, 5, TYPE_RATING, 2, T + 30),  # a low rating is not relevant
    (1, 0, TYPE_BOOKING, 1, T + 40),  # booked before T: serving hides it
    (1, 5, TYPE_SAVE, 1, T + 50),  # relevant
    (2, 3, TYPE_SAVE, 1, T + 60),  # a user without a record before T: a new user
    (3, 6, TYPE_VIEW, 1, T + 70),  # makes event 6 a candidate (no dates)
    (3, 4, TYPE_BOOKING, 1, T + 80),  # cancelled event: not a candidate
    (3, 3, TYPE_SAVE, 1, T + 2 * DAY),  # after the one-day horizon
]


def _log() -> InteractionLog:
    user, event, kind, value, time = (np.array(c) for c in zip(*ROWS, strict=True))
    order = np.argsort(time, kind="stable")
    return InteractionLog.from_columns(
        user[order], event[order], kind[order], value[order], time[order], n_events=7
    )


def test_candidates_are_the_events_on_sale_at_the_cut() -> None:
    cut = time_cut(_log(), T, horizon_days=1, dates=DATES)
    # Published after T (1), started before T (2) and cancelled (4) are not on sale; the
    # never-touched event 3 is; 6 has no dates but an interaction in the window.
    np.testing.assert_array_equal(cut.candidates, [True, False, False, True, False, True, True])
    assert len(cut.train) == 8
    np.testing.assert_array_equal(cut.interactions_before, [6, 0, 1, 0, 0, 1, 0])


def test_relevant_users_new_users_and_exclusions() -> None:
    cut = time_cut(_log(), T, horizon_days=1, dates=DATES)
    np.testing.assert_array_equal(cut.users, [0, 1])
    assert [r.tolist() for r in cut.relevant] == [[3], [5]]
    np.testing.assert_array_equal(cut.new_users, [2])
    assert [r.tolist() for r in cut.new_relevant] == [[3]]
    assert cut.exclude[1, 0]
    assert not cut.exclude[0, 0]


def test_without_dates_the_candidates_are_the_events_interacted_with_after_the_cut() -> None:
    cut = time_cut(_log(), T, horizon_days=1)
    np.testing.assert_array_equal(cut.candidates, [True, True, False, True, True, True, True])
    # Events 1 and 4 are now candidates, so their bookings are relevant.
    np.testing.assert_array_equal(cut.users, [0, 1, 3])
    assert [r.tolist() for r in cut.relevant] == [[1, 3], [5], [4]]


def test_buckets_count_and_score_each_relevant_event_by_its_past() -> None:
    cut = time_cut(_log(), T, horizon_days=1, dates=DATES)
    recommended = np.array([[3, 0, -1], [0, 5, -1]])
    metrics = time_cut_metrics(recommended, cut.relevant, cut.interactions_before, k=3)
    assert metrics["ndcg@3"] == pytest.approx((1.0 + 1 / np.log2(3)) / 2)
    buckets = metrics["buckets"]
    assert buckets["0"] == {"ndcg@3": 1.0, "recall@3": 1.0, "relevant": 1}
    assert buckets["1-4"]["ndcg@3"] == pytest.approx(1 / np.log2(3))
    assert buckets["1-4"]["relevant"] == 1
    assert buckets["5-19"]["relevant"] == buckets["20+"]["relevant"] == 0
    assert np.isnan(buckets["5-19"]["ndcg@3"])
    np.testing.assert_array_equal(
        bucket_of(np.array([0, 1, 4, 5, 19, 20, 500])), [0, 1, 1, 2, 2, 3, 3]
    )


def test_cut_instants_are_fractions_of_the_span() -> None:
    assert cut_instants(np.array([100, 200, 1100])) == pytest.approx([800.0, 900.0, 1000.0])


def test_paired_bootstrap_interval() -> None:
    rng = np.random.default_rng(0)
    base = rng.random(400)
    mean, low, high = bootstrap_difference(base, base)
    assert mean == low == high == 0.0
    mean, low, high = bootstrap_difference(base + 0.05, base)
    assert low == pytest.approx(0.05)
    assert high == pytest.approx(0.05)
    noisy = base + rng.normal(0.0, 0.2, size=400)
    mean, low, high = bootstrap_difference(noisy, base)
    assert low < mean < high
    assert low < 0 < high


def test_shared_scores_rank_as_the_batch_ranking_does() -> None:
    rng = np.random.default_rng(4)
    n_users, n_events = 60, 40
    scores = rng.random(n_events)
    candidates = rng.random(n_events) < 0.7
    exclude = sp.csr_matrix(rng.random((n_users, n_events)) < 0.2)
    users = np.arange(n_users)
    shared = rank_shared(scores, users, candidates, exclude, 10)
    batch = rank_cut(
        lambda batch_users: np.broadcast_to(scores, (len(batch_users), n_events)),
        users,
        candidates,
        exclude,
        10,
    )
    np.testing.assert_array_equal(shared, batch)
    # Ties go to the lower event index.
    tied = rank_shared(np.ones(5), np.array([0]), np.ones(5, dtype=bool), exclude[:, :5], 3)
    np.testing.assert_array_equal(tied[0], np.setdiff1d(np.arange(5), exclude[0, :5].indices)[:3])
