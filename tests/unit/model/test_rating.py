"""eventrec.model.rating on synthetic ratings with planted biases and taste factors."""

from __future__ import annotations

import numpy as np
import pytest

from eventrec.model.errors import ModelFitError
from eventrec.model.metrics import rmse
from eventrec.model.rating import BiasedRatingPredictor


def planted_ratings(
    seed: int = 0,
) -> tuple[tuple[np.ndarray, np.ndarray, np.ndarray], tuple[np.ndarray, np.ndarray, np.ndarray]]:
    """Train and test ratings: 3.5 + user bias + event bias + rank-3 taste + noise."""
    rng = np.random.default_rng(seed)
    n_users, n_events, n_ratings = 300, 200, 12_000
    keys = rng.choice(n_users * n_events, size=n_ratings, replace=False)
    user, event = keys // n_events, keys % n_events
    user_taste = rng.normal(0, 0.6, (n_users, 3))
    event_taste = rng.normal(0, 0.6, (n_events, 3))
    rating = (
        3.5
        + rng.normal(0, 0.5, n_users)[user]
        + rng.normal(0, 0.5, n_events)[event]
        + np.einsum("ij,ij->i", user_taste[user], event_taste[event])
        + rng.normal(0, 0.3, n_ratings)
    )
    rating = np.clip(np.round(rating), 1, 5)
    train = slice(0, 10_000)
    test = slice(10_000, None)
    return (user[train], event[train], rating[train]), (user[test], event[test], rating[test])


def test_factors_beat_biases_which_beat_the_global_mean() -> None:
    (train_users, train_events, train_ratings), (users, events, ratings) = planted_ratings()
    full = BiasedRatingPredictor(n_factors=5, random_state=0).fit(
        train_users, train_events, train_ratings
    )
    biases = BiasedRatingPredictor(n_factors=0).fit(train_users, train_events, train_ratings)
    full_error = rmse(full.predict(users, events), ratings)
    bias_error = rmse(biases.predict(users, events), ratings)
    mean_error = rmse(np.full(len(ratings), train_ratings.mean()), ratings)
    assert bias_error < 0.9 * mean_error
    assert full_error < 0.9 * bias_error


def test_predictions_are_clipped_and_unknowns_get_the_mean() -> None:
    predictor = BiasedRatingPredictor(n_factors=2).fit([0, 0, 1, 1], [0, 1, 0, 1], [1, 5, 1, 5])
    predicted = predictor.predict([0, 1, 7, 0], [1, 0, 0, 9])
    assert np.all((predicted >= 1) & (predicted <= 5))
    assert predictor.predict([7], [9])[0] == pytest.approx(3.0)


def test_biases_are_shrunk_toward_zero() -> None:
    predictor = BiasedRatingPredictor(n_factors=0, bias_reg=1.0).fit([0, 1], [0, 0], [5.0, 3.0])
    # One rating per user: bias = (r - mu - b_event) / (1 + 1), so it is halved.
    assert predictor.user_bias_[0] == pytest.approx(-predictor.user_bias_[1])
    assert abs(predictor.user_bias_[0]) < 1.0


def test_bad_input_raises() -> None:
    with pytest.raises(ModelFitError):
        BiasedRatingPredictor().fit([], [], [])
    with pytest.raises(ModelFitError):
        BiasedRatingPredictor().fit([0], [0], [np.nan])
