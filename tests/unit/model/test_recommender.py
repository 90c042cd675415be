"""EventrecModel on planted clusters, and its contracts."""

from __future__ import annotations

import io
from collections.abc import Callable

import numpy as np
import pytest

from eventrec.model.aggregate import InteractionWeights
from eventrec.model.errors import ModelFitError
from eventrec.model.metrics import top_k
from eventrec.model.recommender import EventrecModel
from eventrec.model.records import TYPE_SAVE, InteractionLog

MakeLog = Callable[..., InteractionLog]


@pytest.fixture(scope="module")
def planted_fit(make_planted_log: MakeLog) -> tuple[InteractionLog, EventrecModel]:
    log = make_planted_log(n_users=300)
    return log, EventrecModel(n_factors=32, random_state=0).fit(log)


def test_score_rows_equals_score_of_the_training_users(
    planted_fit: tuple[InteractionLog, EventrecModel],
) -> None:
    log, model = planted_fit
    users = np.array([0, 5, 17])
    rows = [log.records[log.user == user] for user in users]
    np.testing.assert_allclose(model.score_rows(rows), model.score(users), rtol=1e-4, atol=1e-5)
    vectors = model.fold_in_rows(rows)
    assert vectors.shape == (3, model.n_factors_)
    np.testing.assert_allclose(
        vectors @ model.item_factors_.T, model.score(users), rtol=1e-4, atol=1e-5
    )


def test_one_interaction_personalises_and_no_interaction_gives_popularity(
    planted_fit: tuple[InteractionLog, EventrecModel],
) -> None:
    log, model = planted_fit
    one_save = np.zeros(1, dtype=log.records.dtype)
    one_save[0] = (0, 1_700_000_000, TYPE_SAVE, 1, 0)
    scores = model.score_rows([one_save, one_save[:0]])
    assert scores.shape == (2, log.n_events)
    # Event 0 is in cluster 0 (events 0-29): its neighbours should come first.
    assert set(top_k(scores[:1], 5)[0].tolist()) <= set(range(30))
    np.testing.assert_array_equal(scores[1], model.popularity_)


def test_arrays_round_trip_without_pickle(
    planted_fit: tuple[InteractionLog, EventrecModel],
) -> None:
    log, model = planted_fit
    buffer = io.BytesIO()
    np.savez(buffer, **model.to_arrays())
    buffer.seek(0)
    with np.load(buffer, allow_pickle=False) as stored:
        restored = EventrecModel.from_arrays(dict(stored))
    rows = [log.records[log.user == 3]]
    np.testing.assert_array_equal(restored.score_rows(rows), model.score_rows(rows))
    assert restored.params_ == model.params_


def test_params_name_what_was_fitted(planted_fit: tuple[InteractionLog, EventrecModel]) -> None:
    _, model = planted_fit
    assert model.params_["n_factors"] == 32 == model.n_factors_
    assert model.item_factors_.shape == (model.popularity_.shape[0], 32)
    assert model.params_["beta"] == 0.25
    assert InteractionWeights.from_dict(model.params_["weights"]) == model.weights_


def test_too_small_log_raises_model_fit_error() -> None:
    log = InteractionLog.from_columns(
        np.array([0]), np.array([0]), np.array([TYPE_SAVE]), np.array([1]), np.array([1])
    )
    with pytest.raises(ModelFitError):
        EventrecModel().fit(log)


def test_score_rejects_unknown_users(planted_fit: tuple[InteractionLog, EventrecModel]) -> None:
    _, model = planted_fit
    with pytest.raises(ValueError, match="outside"):
        model.score([10_000])
