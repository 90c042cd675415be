"""The validation split of eventrec.model.validation: honest, whole pairs, latest positives."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from eventrec.model.recommender import column_scale
from eventrec.model.records import (
    TYPE_BOOKING,
    TYPE_DISMISS,
    TYPE_RATING,
    TYPE_SAVE,
    TYPE_VIEW,
    InteractionLog,
    event_popularity,
    interacted_pairs,
)
from eventrec.model.validation import popularity_ndcg, validation_split


def test_latest_positive_pairs_are_held_back_whole() -> None:
    # One user, 10 events; positives are events 0..4 at times 1..5 (event 4 latest).
    rows = [(event, TYPE_VIEW, 1, 100 + event) for event in range(10)]
    rows += [(event, TYPE_SAVE, 1, 1 + event) for event in range(5)]
    rows += [(4, TYPE_VIEW, 1, 200), (3, TYPE_RATING, 2, 300)]  # rating 2 is not positive
    event, kind, value, time = (np.array(c) for c in zip(*rows, strict=True))
    log = InteractionLog.from_columns(np.zeros(len(rows)), event, kind, value, time)
    split = validation_split(log, max_users=10, random_state=0, holdout_fraction=0.4)
    np.testing.assert_array_equal(split.users, [0])
    np.testing.assert_array_equal(np.sort(split.relevant[0]), [3, 4])
    assert not np.isin(split.train.records["event"], [3, 4]).any()
    assert len(split.train) == len(log) - 6  # 3 records each of events 3 and 4


def test_users_with_few_pairs_or_no_positives_are_not_validated() -> None:
    log = InteractionLog.from_columns(
        np.array([0] * 3 + [1] * 6),
        np.array([0, 1, 2, 0, 1, 2, 3, 4, 5]),
        np.array([TYPE_SAVE] * 3 + [TYPE_VIEW] * 6),
        np.ones(9),
        np.arange(9),
    )
    split = validation_split(log, max_users=10, random_state=0)
    assert len(split.users) == 0
    assert len(split.train) == len(log)


def test_split_samples_at_most_max_users_and_is_seeded(
    make_planted_log: Callable[..., InteractionLog],
) -> None:
    log = make_planted_log(n_users=200)
    split = validation_split(log, max_users=50, random_state=3)
    again = validation_split(log, max_users=50, random_state=3)
    assert len(split.users) == 50
    np.testing.assert_array_equal(split.users, again.users)
    held = sum(len(events) for events in split.relevant)
    assert len(split.train) < len(log)
    # Only validation users lose records.
    lost = np.setdiff1d(np.unique(log.user), np.unique(split.train.user))
    assert np.isin(lost, split.users).all()
    assert held >= 50


def test_popularity_counts_distinct_users_without_dismissals() -> None:
    log = InteractionLog.from_columns(
        np.array([0, 0, 1, 2, 2]),
        np.array([0, 0, 0, 1, 2]),
        np.array([TYPE_VIEW, TYPE_BOOKING, TYPE_VIEW, TYPE_DISMISS, TYPE_SAVE]),
        np.ones(5),
        np.arange(5),
    )
    np.testing.assert_array_equal(event_popularity(log), [2, 0, 1])
    np.testing.assert_allclose(column_scale(np.array([4, 0, 1]), 0.5), [0.5, 1.0, 1.0])
    assert interacted_pairs(log).nnz == 4


def test_popularity_ndcg_known_value() -> None:
    log = InteractionLog.from_columns(
        np.array([0, 1, 1]), np.array([0, 0, 1]), np.full(3, TYPE_SAVE), np.ones(3), np.arange(3)
    )
    split = validation_split(log, max_users=1, random_state=0, min_pairs=1)
    # Whichever user is sampled, popularity ranks its held-back event first or second.
    assert popularity_ndcg(event_popularity(split.train), split, interacted_pairs(split.train)) > 0


def test_a_random_hold_back_is_not_the_latest_pairs() -> None:
    # One user, 40 saved events at times 1..40: latest holds back 32..40 (the top 20 %).
    events = np.arange(40)
    log = InteractionLog.from_columns(
        np.zeros(40), events, np.full(40, TYPE_SAVE), np.ones(40), events + 1
    )
    latest = validation_split(log, max_users=10, random_state=0, held_back="latest")
    np.testing.assert_array_equal(np.sort(latest.relevant[0]), np.arange(32, 40))
    chosen = validation_split(log, max_users=10, random_state=0, held_back="random")
    assert len(chosen.relevant[0]) == 8
    assert set(chosen.relevant[0].tolist()) != set(range(32, 40))
