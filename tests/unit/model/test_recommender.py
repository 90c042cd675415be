"""EventrecModel end to end on planted clusters, and its contracts."""

from __future__ import annotations

import io
from collections.abc import Callable

import numpy as np
import pytest

from eventrec.model.aggregate import InteractionWeights
from eventrec.model.errors import ModelFitError
from eventrec.model.metrics import ndcg_at_k, top_k
from eventrec.model.recommender import EventrecModel
from eventrec.model.records import TYPE_SAVE, InteractionLog
from eventrec.model.search import event_popularity, interacted_pairs, validation_split

MakeLog = Callable[..., InteractionLog]


@pytest.fixture(scope="module")
def planted_fit(make_planted_log: MakeLog) -> tuple[InteractionLog, EventrecModel]:
    log = make_planted_log(n_users=300)
    return log, EventrecModel(random_state=0, n_jobs=2).fit(log)


def test_beats_popularity_twice_on_held_out_events(make_planted_log: MakeLog) -> None:
    log = make_planted_log(seed=1)
    # A test split the model never sees: each user's latest positive pairs.
    test = validation_split(log, max_users=10_000, random_state=7)
    model = EventrecModel(random_state=0).fit(test.train)
    exclude = interacted_pairs(test.train)[test.users]
    model_ndcg = ndcg_at_k(top_k(model.score(test.users), 10, exclude), test.relevant, 10).mean()
    popularity = np.broadcast_to(event_popularity(test.train), (len(test.users), log.n_events))
    popularity_ndcg = ndcg_at_k(top_k(popularity, 10, exclude), test.relevant, 10).mean()
    assert model_ndcg >= 2 * popularity_ndcg
    assert model.validation_ndcg_ > model.popularity_validation_ndcg_


def test_search_records_every_grid_point_and_the_winner(
    planted_fit: tuple[InteractionLog, EventrecModel],
) -> None:
    _, model = planted_fit
    grid = {(r["weights_name"], r["beta"], r["n_factors"]) for r in model.search_results_}
    assert grid == {
        (name, beta, k)
        for name in ("given", "binary")
        for beta in (0.0, 0.25, 0.5)
        for k in (16, 32, 64, 128, 256)
    }
    best = model.search_results_[0]
    assert best["ndcg@10"] == max(r["ndcg@10"] for r in model.search_results_)
    assert model.params_["n_factors"] == best["n_factors"] == model.n_factors_
    assert model.params_["beta"] == best["beta"]
    assert model.validation_ndcg_ == best["ndcg@10"]
    assert 0 < model.n_validation_users_ <= 300
    assert InteractionWeights.from_dict(model.params_["weights"]) == model.weights_


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


def test_without_search_uses_the_defaults_and_still_compares_with_popularity(
    make_planted_log: MakeLog,
) -> None:
    model = EventrecModel(search=False, n_factors=8).fit(make_planted_log(n_users=100))
    assert model.params_["n_factors"] == 8
    assert model.params_["beta"] == 0.25
    assert len(model.search_results_) == 1
    assert model.popularity_validation_ndcg_ >= 0


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
