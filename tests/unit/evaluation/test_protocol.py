"""The protocol on a case small enough to compute by hand."""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import pytest

from eventrec.evaluation.loader import EvaluationInputError
from eventrec.evaluation.protocol import evaluate_log, latest_ratings, ranking_task, rating_errors
from eventrec.model.records import (
    TYPE_BOOKING,
    TYPE_DISMISS,
    TYPE_RATING,
    TYPE_SAVE,
    TYPE_VIEW,
    InteractionLog,
)

N_USERS, N_EVENTS = 4, 6


def log_of(rows: list[tuple[int, int, int, float]]) -> tuple[InteractionLog, np.ndarray]:
    """A log of (user, event, type, raw rating) rows, and its raw ratings."""
    user, event, kind, raw = (np.array(column) for column in zip(*rows, strict=True))
    raw = np.where(kind == TYPE_RATING, raw, np.nan)
    value = np.where(kind == TYPE_RATING, np.nan_to_num(raw), 1).astype(int)
    log = InteractionLog.from_columns(
        user, event, kind, value, np.arange(len(rows)), n_users=N_USERS, n_events=N_EVENTS
    )
    return log, raw


# Catalogue (events seen in training): 0..4. Event 5 appears only in the test side.
TRAIN = [
    (0, 0, TYPE_VIEW, 0),
    (0, 1, TYPE_RATING, 5),
    (1, 0, TYPE_BOOKING, 0),
    (1, 2, TYPE_SAVE, 0),
    (2, 3, TYPE_VIEW, 0),
    (2, 4, TYPE_DISMISS, 0),
]
TEST = [
    (0, 2, TYPE_BOOKING, 0),  # relevant
    (0, 3, TYPE_RATING, 3),  # below 4: not relevant
    (0, 5, TYPE_SAVE, 0),  # relevant, never seen in training: cannot be hit
    (1, 1, TYPE_RATING, 4),  # relevant
    (1, 3, TYPE_VIEW, 0),  # a view is not relevant
    (2, 1, TYPE_VIEW, 0),  # user 2 has nothing relevant: not evaluated
    (3, 0, TYPE_BOOKING, 0),  # user 3 has no training interaction: not evaluated
]
SCORES = np.array(
    [
        # user 0: events 0 and 1 are its own, 5 is outside the catalogue -> ranks 2, 3.
        [9.0, 8.0, 7.0, 6.0, 5.0, 10.0],
        # user 1: events 0 and 2 are its own, 5 is outside -> ranks 3, 1.
        [0.0, 4.0, 9.0, 5.0, 1.0, 99.0],
        [1.0, 1.0, 1.0, 1.0, 1.0, 1.0],
        [1.0, 1.0, 1.0, 1.0, 1.0, 1.0],
    ]
)


class FixedScores:
    """A ranker whose scores are given: the protocol, not a model, is under test."""

    def __init__(self) -> None:
        self.params_: dict[str, Any] = {"fixed": True}
        self.scored_users: list[int] = []

    def fit(self, log: InteractionLog, raw_rating: np.ndarray) -> FixedScores:
        return self

    def score(self, users: np.ndarray) -> np.ndarray:
        self.scored_users.extend(users.tolist())
        return SCORES[users]


def test_metrics_match_the_hand_computation() -> None:
    train, train_raw = log_of(TRAIN)
    test, test_raw = log_of(TEST)
    ranker = FixedScores()
    result = evaluate_log(
        train,
        test,
        k=2,
        train_raw_rating=train_raw,
        test_raw_rating=test_raw,
        rankers={"fixed": lambda seed, n_jobs: ranker},
        with_rmse=False,
    )
    assert ranker.scored_users == [0, 1]
    assert result["data"] == {"users": 4, "events": 6, "train": 6, "test": 7, "eval_users": 2}
    metrics = result["models"]["fixed"]
    # User 0 gets [2, 3], relevant {2, 5}: one hit at rank 1.
    # User 1 gets [3, 1], relevant {1}: one hit at rank 2.
    assert metrics["precision@2"] == pytest.approx((1 / 2 + 1 / 2) / 2)
    assert metrics["recall@2"] == pytest.approx((1 / 2 + 1 / 1) / 2)
    assert metrics["f1@2"] == pytest.approx(2 * 0.5 * 0.75 / (0.5 + 0.75))
    ndcg_user0 = 1.0 / (1.0 + 1.0 / math.log2(3))
    ndcg_user1 = (1.0 / math.log2(3)) / 1.0
    assert metrics["ndcg@2"] == pytest.approx((ndcg_user0 + ndcg_user1) / 2)
    assert metrics["coverage"] == pytest.approx(3 / 5)  # events 1, 2, 3 of catalogue 0..4
    assert metrics["params"] == {"fixed": True}
    assert metrics["fit_seconds"] >= 0


def test_relevant_sets_and_the_rating_threshold_on_the_raw_scale() -> None:
    train, _ = log_of(TRAIN)
    test, test_raw = log_of(TEST)
    task = ranking_task(train, test, test_raw, relevant_min_rating=4.0)
    assert task.users.tolist() == [0, 1]
    assert [r.tolist() for r in task.relevant] == [[2, 5], [1]]
    assert task.catalogue.tolist() == [True, True, True, True, True, False]
    lenient = ranking_task(train, test, test_raw, relevant_min_rating=3.0)
    assert [r.tolist() for r in lenient.relevant] == [[2, 3, 5], [1]]


def test_a_pairs_latest_rating_decides_relevance() -> None:
    train, _ = log_of(TRAIN)
    test, test_raw = log_of(
        [(0, 2, TYPE_RATING, 5), (0, 2, TYPE_RATING, 2), (1, 3, TYPE_RATING, 4.5)]
    )
    users, events, ratings = latest_ratings(test, test_raw)
    assert (users.tolist(), events.tolist(), ratings.tolist()) == ([0, 1], [2, 3], [2.0, 4.5])
    task = ranking_task(train, test, test_raw, relevant_min_rating=4.0)
    assert task.users.tolist() == [1]


def test_no_evaluable_user_is_an_error() -> None:
    train, _ = log_of(TRAIN)
    test, test_raw = log_of([(3, 0, TYPE_BOOKING, 0)])
    with pytest.raises(EvaluationInputError, match="nothing to rank"):
        evaluate_log(
            train,
            test,
            test_raw_rating=test_raw,
            rankers={"fixed": lambda seed, n_jobs: FixedScores()},
            with_rmse=False,
        )


def test_users_are_scored_in_batches(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("eventrec.evaluation.protocol.MAX_BATCH_USERS", 1)
    train, _ = log_of(TRAIN)
    test, test_raw = log_of(TEST)
    batches: list[list[int]] = []

    class Recording(FixedScores):
        def score(self, users: np.ndarray) -> np.ndarray:
            batches.append(users.tolist())
            return SCORES[users]

    result = evaluate_log(
        train,
        test,
        k=2,
        test_raw_rating=test_raw,
        rankers={"fixed": lambda seed, n_jobs: Recording()},
        with_rmse=False,
    )
    assert batches == [[0], [1]]
    assert result["models"]["fixed"]["recall@2"] == pytest.approx(0.75)


def test_rmse_is_on_the_raw_rating_scale() -> None:
    # Every rating is 8 on a 1..10 scale (stored as 4 in the records): predicting it is exact.
    train, train_raw = log_of(
        [(0, 0, TYPE_RATING, 8), (1, 1, TYPE_RATING, 8), (2, 0, TYPE_VIEW, 0)]
    )
    test, test_raw = log_of([(0, 1, TYPE_RATING, 8), (1, 0, TYPE_RATING, 8)])
    errors = rating_errors(train, train_raw, test, test_raw)
    assert errors["bias_baseline"] == pytest.approx(0.0)
    assert errors["eventrec"] == pytest.approx(0.0, abs=1e-6)


def test_rmse_is_absent_without_test_ratings() -> None:
    train, train_raw = log_of(TRAIN)
    test, test_raw = log_of([(0, 2, TYPE_BOOKING, 0)])
    assert rating_errors(train, train_raw, test, test_raw) == {
        "eventrec": None,
        "bias_baseline": None,
    }
