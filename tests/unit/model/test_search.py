"""EventrecSearch on planted clusters: the grid, the winner, the refit."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import pytest

from eventrec.model.aggregate import InteractionWeights
from eventrec.model.errors import ModelFitError
from eventrec.model.metrics import ndcg_at_k, top_k
from eventrec.model.records import TYPE_SAVE, InteractionLog, event_popularity, interacted_pairs
from eventrec.model.search import EventrecSearch
from eventrec.model.validation import validation_split

MakeLog = Callable[..., InteractionLog]


@pytest.fixture(scope="module")
def planted_search(make_planted_log: MakeLog) -> tuple[InteractionLog, EventrecSearch]:
    log = make_planted_log(n_users=300)
    return log, EventrecSearch(random_state=0, n_jobs=2).fit(log)


def test_beats_popularity_twice_on_held_out_events(make_planted_log: MakeLog) -> None:
    log = make_planted_log(seed=1)
    # A test split the search never sees: each user's latest positive pairs.
    test = validation_split(log, max_users=10_000, random_state=7)
    search = EventrecSearch(random_state=0).fit(test.train)
    model = search.best_estimator_
    exclude = interacted_pairs(test.train)[test.users]
    model_ndcg = ndcg_at_k(top_k(model.score(test.users), 10, exclude), test.relevant, 10).mean()
    popularity = np.broadcast_to(event_popularity(test.train), (len(test.users), log.n_events))
    popularity_ndcg = ndcg_at_k(top_k(popularity, 10, exclude), test.relevant, 10).mean()
    assert model_ndcg >= 2 * popularity_ndcg
    assert search.validation_ndcg_ > search.popularity_validation_ndcg_


def test_search_records_every_grid_point_and_refits_the_winner(
    planted_search: tuple[InteractionLog, EventrecSearch],
) -> None:
    _, search = planted_search
    grid = {(r["weights_name"], r["beta"], r["n_factors"]) for r in search.search_results_}
    assert grid == {
        (name, beta, k)
        for name in ("given", "binary")
        for beta in (0.0, 0.25, 0.5)
        for k in (8, 16, 32, 64, 128, 256)
    }
    best = search.search_results_[0]
    model = search.best_estimator_
    assert best["ndcg@10"] == max(r["ndcg@10"] for r in search.search_results_)
    assert search.params_["n_factors"] == best["n_factors"] == model.n_factors_
    assert search.params_["beta"] == best["beta"] == model.beta_
    assert search.validation_ndcg_ == best["ndcg@10"]
    assert 0 < search.n_validation_users_ <= 300
    assert InteractionWeights.from_dict(search.params_["weights"]) == model.weights_


def test_without_search_uses_the_defaults_and_still_compares_with_popularity(
    make_planted_log: MakeLog,
) -> None:
    search = EventrecSearch(search=False, n_factors=8).fit(make_planted_log(n_users=100))
    assert search.params_["n_factors"] == 8
    assert search.params_["beta"] == 0.25
    assert len(search.search_results_) == 1
    assert search.popularity_validation_ndcg_ >= 0


def test_too_small_log_raises_model_fit_error() -> None:
    log = InteractionLog.from_columns(
        np.array([0]), np.array([0]), np.array([TYPE_SAVE]), np.array([1]), np.array([1])
    )
    with pytest.raises(ModelFitError):
        EventrecSearch().fit(log)
