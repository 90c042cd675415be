"""The hybrid as served: the fast non-collaborative part equals the features' blend, the
pruned top-k equals scoring every event, and the fallback blend is marked as such."""

from __future__ import annotations

import dataclasses
import json
from typing import Any

import numpy as np
import pytest
import scipy.sparse as sp
from hypothesis import given, settings
from hypothesis import strategies as st

from eventrec.model.blend import HybridBlend
from eventrec.model.geo import CityCentroids
from eventrec.model.hybrid import (
    COLLABORATIVE_ONLY,
    blend_from_metadata,
    blend_metadata,
    catalogue_interactions,
    collaborative_only,
    expose_blend,
    pair_features,
    signals_of,
)
from eventrec.model.hybrid_features import (
    FEATURES,
    HybridCatalogue,
    TextModel,
    UserSignals,
    event_text,
    feature_block,
    rest_scores,
)
from eventrec.model.hybrid_topk import best_hybrid, hybrid_scores, vector_dots

DAY = 86_400.0
NOW = 1_800_000_000.0
CITIES = ["Colombo", "Kandy", "Galle", "Jaffna"]
CATEGORIES = ["music", "comedy", "sports", "theatre"]
CENTROIDS = CityCentroids({"Colombo": (6.93, 79.85), "Kandy": (7.29, 80.63), "Galle": (6.03, 80.2)})


def _platform(
    seed: int, n_events: int, n_users: int
) -> tuple[HybridCatalogue, TextModel, UserSignals]:
    """A random catalogue (some prices, cities, dates unknown, some events never touched)
    and users with random histories, profiles (budgets, cities, categories, interests) and
    searches."""
    rng = np.random.default_rng(seed)
    documents: list[dict[str, Any] | None] = []
    for i in range(n_events):
        if rng.random() < 0.05:
            documents.append(None)
            continue
        document: dict[str, Any] = {
            "title": f"event {rng.choice(['jazz', 'rock', 'laughs', 'final', 'play'])} {i}",
            "category": str(rng.choice(CATEGORIES)),
            "tags": [str(rng.choice(["jazz", "standup", "cricket", "drama", "indie"]))],
            "venue": f"venue {rng.integers(0, 5)}",
        }
        if rng.random() < 0.9:
            document["city"] = str(rng.choice(CITIES))
        if rng.random() < 0.9:
            document["price"] = {"amount": float(rng.integers(0, 10) * 1000), "currency": "LKR"}
        documents.append(document)
    texts = [event_text(d) for d in documents]
    text = TextModel().fit(texts)
    vectors = (rng.normal(size=(n_events, 4)) * rng.pareto(1.5, size=(n_events, 1))).astype(
        np.float32
    )
    vectors[rng.random(n_events) < 0.1] = 0.0
    starts = NOW + rng.uniform(-5, 90, n_events) * DAY
    starts[rng.random(n_events) < 0.1] = np.nan
    published = NOW - rng.uniform(0, 30, n_events) * DAY
    published[rng.random(n_events) < 0.2] = np.nan
    catalogue = HybridCatalogue.build(
        documents,
        vectors,
        rng.pareto(1.0, n_events),
        starts,
        text.transform(texts),
        CENTROIDS,
        published_at=published,
        # A third of the events never touched (`new`), drawn apart: the rest stays as it was.
        interactions=np.random.default_rng(seed + 1).integers(0, 3, n_events),
    )
    profiles: list[dict[str, Any] | None] = []
    searches: list[list[str]] = []
    for _ in range(n_users):
        if rng.random() < 0.3:
            profiles.append(None)
        else:
            profile: dict[str, Any] = {
                "preferred_categories": list(rng.choice(CATEGORIES, rng.integers(0, 3))),
                "interests": list(rng.choice(["jazz", "drama", "cricket"], rng.integers(0, 2))),
            }
            if rng.random() < 0.7:
                profile["city"] = str(rng.choice([*CITIES, "Nowhere"]))
            if rng.random() < 0.7:
                profile["budget"] = {"min": 0, "max": float(rng.integers(0, 8) * 1000)}
            profiles.append(profile)
        searches.append(list(rng.choice(["jazz", "comedy night", "final"], rng.integers(0, 3))))
    history = sp.random(n_users, n_events, density=0.05, random_state=seed, format="csr")
    user_vectors = (rng.normal(size=(n_users, 4)) * (rng.random((n_users, 1)) < 0.8)).astype(
        np.float32
    )
    users = signals_of(catalogue, text, user_vectors, history, None, profiles, searches)
    return catalogue, text, users


def _blend(weights: list[float]) -> HybridBlend:
    blend = HybridBlend()
    blend.weights_ = np.asarray(weights, dtype=np.float64)
    blend.intercept_ = 0.0
    blend.shares_ = dict.fromkeys(FEATURES, 1.0 / len(FEATURES))
    blend.n_pairs_ = 0
    return blend


@settings(max_examples=40, deadline=None)
@given(
    seed=st.integers(0, 2**32 - 1),
    weights=st.lists(st.floats(-5.0, 5.0), min_size=len(FEATURES), max_size=len(FEATURES)),
    subset=st.booleans(),
)
def test_the_fast_rest_is_the_blend_of_every_non_collaborative_feature(
    seed: int, weights: list[float], subset: bool
) -> None:
    catalogue, _, users = _platform(seed, 60, 7)
    rng = np.random.default_rng(seed)
    positions = (
        np.sort(rng.choice(60, 25, replace=False)).astype(np.int64)
        if subset
        else np.arange(60, dtype=np.int64)
    )
    named = dict(zip(FEATURES, weights, strict=True))
    block = feature_block(catalogue, users, positions, NOW)
    expected = sum(
        named[name] * block[:, :, column]
        for column, name in enumerate(FEATURES)
        if name != "collaborative"
    )
    found = rest_scores(catalogue, users, named, positions, NOW)
    np.testing.assert_allclose(found, expected, rtol=1e-6, atol=1e-6)
    for row in range(len(users)):  # one user alone: the very same values as in the batch
        alone = rest_scores(catalogue, users, named, positions, NOW, user=row)
        np.testing.assert_array_equal(alone, found[row : row + 1])
        np.testing.assert_allclose(  # float32 products: BLAS may round by the batch's shape
            feature_block(catalogue, users, positions, NOW, row),
            block[row : row + 1],
            rtol=1e-5,
            atol=1e-6,
        )


def test_the_full_hybrid_score_is_the_blend_of_the_feature_block() -> None:
    catalogue, _, users = _platform(5, 80, 6)
    weights = np.linspace(-1.0, 2.0, len(FEATURES))
    blend = _blend(list(weights))
    block = feature_block(catalogue, users, np.arange(80), NOW)
    np.testing.assert_allclose(
        hybrid_scores(blend, catalogue, users, NOW), block @ weights, rtol=1e-5, atol=1e-6
    )


@settings(max_examples=60, deadline=None)
@given(
    seed=st.integers(0, 2**32 - 1),
    n_events=st.integers(1, 300),
    limit=st.integers(1, 25),
    weights=st.lists(st.floats(-4.0, 4.0), min_size=len(FEATURES), max_size=len(FEATURES)),
    eligible_share=st.floats(0.0, 1.0),
    ties=st.booleans(),
)
def test_the_pruned_hybrid_top_k_is_exactly_every_event_scored(
    seed: int,
    n_events: int,
    limit: int,
    weights: list[float],
    eligible_share: float,
    ties: bool,
) -> None:
    catalogue, _, users = _platform(seed, n_events, 4)
    if ties:  # equal vectors and equal rests: ties go to the lower position
        vectors = catalogue.vectors.copy()
        vectors[: n_events // 2] = vectors[0]
        shared = ("collaborative", "trending")
        weights = [w if n in shared else 0.0 for n, w in zip(FEATURES, weights, strict=True)]
        catalogue = dataclasses.replace(
            catalogue, vectors=vectors, trending=np.round(catalogue.trending, 1)
        )
    blend = _blend(weights)
    rng = np.random.default_rng(seed)
    budget = users.budget.copy()  # unknown, unbounded, zero and negative budgets too
    budget[rng.random(len(budget)) < 0.4] = rng.choice([np.inf, np.nan, 0.0, -5.0])
    users = dataclasses.replace(users, budget=budget)
    masks = [rng.random(n_events) < eligible_share for _ in range(len(users))]
    norms = np.linalg.norm(catalogue.vectors.astype(np.float64), axis=1)
    found, scanned = best_hybrid(blend, catalogue, norms, users, masks, [limit] * len(users), NOW)
    full = hybrid_scores(blend, catalogue, users, NOW)
    for row, (positions, scores) in enumerate(found):
        eligible = np.flatnonzero(masks[row])
        expected = eligible[np.lexsort((eligible, -full[row, eligible]))][:limit]
        assert positions.tolist() == expected.tolist()
        np.testing.assert_array_equal(scores, full[row, expected])
    assert scanned <= sum(int(m.sum()) for m in masks)  # eligible events only, once each


def test_a_nan_score_ranks_below_every_number_as_in_the_reference() -> None:
    # A NaN gets through from an infinite trending count (inf / inf) or a NaN vector.
    catalogue, _, users = _platform(8, 150, 3)
    trending = catalogue.trending.copy()
    trending[[3, 40, 41, 99]] = np.nan
    catalogue = dataclasses.replace(catalogue, trending=trending)
    blend = _blend([1.0 if name in ("collaborative", "trending") else 0.0 for name in FEATURES])
    norms = np.linalg.norm(catalogue.vectors.astype(np.float64), axis=1)
    masks = [np.ones(150, dtype=bool)] * len(users)
    for limit in (5, 148):  # the NaNs out of the top, and in it (last, by position)
        found, _ = best_hybrid(blend, catalogue, norms, users, masks, [limit] * 3, NOW)
        full = hybrid_scores(blend, catalogue, users, NOW)
        for row, (positions, scores) in enumerate(found):
            expected = np.lexsort((np.arange(150), -full[row]))[:limit]
            assert positions.tolist() == expected.tolist()
            np.testing.assert_array_equal(scores, full[row, expected])


def test_a_profile_with_negative_weights_still_gets_exact_answers() -> None:
    # Confidences are positive where serving computes them; a negative one (a dismissal
    # weighed below zero) must not make the blocks' text bounds too low.
    catalogue, _, users = _platform(9, 300, 4)
    history = users.history.copy()
    history.data = np.where(np.arange(history.nnz) % 3 == 0, -history.data, history.data)
    users = dataclasses.replace(users, history=history)
    blend = _blend([1.0 if name == "content" else 0.0 for name in FEATURES])
    norms = np.linalg.norm(catalogue.vectors.astype(np.float64), axis=1)
    masks = [np.ones(300, dtype=bool)] * len(users)
    found, _ = best_hybrid(blend, catalogue, norms, users, masks, [10] * len(users), NOW)
    full = hybrid_scores(blend, catalogue, users, NOW)
    for row, (positions, _) in enumerate(found):
        assert positions.tolist() == np.lexsort((np.arange(300), -full[row]))[:10].tolist()


def test_the_pruned_hybrid_scores_a_small_part_of_a_large_catalogue() -> None:
    # Alike events have alike vectors (one taste per venue, plus noise), as in a fitted
    # model: the blocks of events at one venue have tight bounds. (On vectors drawn with
    # no structure at all the bounds are loose and most blocks are scored: still exact.)
    catalogue, _, users = _platform(11, 20_000, 3)
    rng = np.random.default_rng(11)
    venue = rng.integers(0, 200, 20_000)
    vectors = rng.normal(size=(200, 4))[venue] + 0.1 * rng.normal(size=(20_000, 4))
    catalogue = dataclasses.replace(
        catalogue,
        vectors=vectors.astype(np.float32),
        max_norm=float(np.linalg.norm(vectors, axis=1).max()),
        venue=venue,
    )
    # The other features here are drawn at random per event (no block can be told apart
    # by them): they get small weights, the taste decides.
    blend = _blend([3.0 if name == "collaborative" else 0.05 for name in FEATURES])
    norms = np.linalg.norm(catalogue.vectors.astype(np.float64), axis=1)
    masks = [np.ones(20_000, dtype=bool)] * len(users)
    _, scanned = best_hybrid(blend, catalogue, norms, users, masks, [10] * len(users), NOW)
    # About 28 % here, most of it the best venues' blocks, told apart only by the random
    # features; on benchmarks/hybrid_topk.py's platform about 2 % (docs/benchmarks.md).
    assert scanned < 0.35 * 20_000 * len(users)


def test_features_of_chosen_pairs_are_those_of_the_whole_catalogue() -> None:
    catalogue, _, users = _platform(3, 50, 3)
    whole = feature_block(catalogue, users, np.arange(50), NOW)
    positions = [7, 3, 41]
    chosen = [positions, [], positions[::-1]]  # one row's own positions each
    for row, features in enumerate(pair_features(catalogue, users, chosen, NOW)):
        assert features.shape == (len(chosen[row]), len(FEATURES))
        np.testing.assert_allclose(features, whole[row, chosen[row]], rtol=1e-5, atol=1e-6)


def test_features_of_a_pair_do_not_depend_on_the_pairs_computed_with_it() -> None:
    catalogue, _, users = _platform(4, 60, 5)
    chosen = [[5, 9, 2], [40, 41], [], [59, 0, 33, 12], [7]]
    together = pair_features(catalogue, users, chosen, NOW)
    for row, positions in enumerate(chosen):
        alone = pair_features(
            catalogue, users, [[] if r != row else positions for r in range(5)], NOW
        )
        assert together[row].shape == (len(positions), len(FEATURES))
        np.testing.assert_array_equal(alone[row], together[row])


def test_vector_dots_give_a_row_the_same_value_whichever_rows_come_with_it() -> None:
    rng = np.random.default_rng(6)
    vectors = rng.normal(size=(300, 67))  # not a multiple of 4 factors: the tail too
    user = rng.normal(size=67)
    whole = vector_dots(vectors, user)
    np.testing.assert_allclose(whole, vectors @ user, rtol=1e-12, atol=1e-12)
    for _ in range(20):
        rows = rng.choice(300, size=int(rng.integers(1, 40)), replace=False)
        np.testing.assert_array_equal(vector_dots(vectors[rows], user), whole[rows])
    with pytest.raises(ValueError, match="factors"):
        vector_dots(vectors, user[:5])


def test_the_fallback_blend_is_collaborative_only_and_says_so() -> None:
    blend = collaborative_only("3 validation users taught nothing")
    document = json.loads(json.dumps(blend_metadata(blend)))
    assert document["model"] == COLLABORATIVE_ONLY
    assert document["fallback"] == "3 validation users taught nothing"
    assert document["weights"]["collaborative"] == 1.0
    assert sum(abs(w) for n, w in document["weights"].items() if n != "collaborative") == 0
    restored = blend_from_metadata(document)
    pairs = np.random.default_rng(0).random((5, len(FEATURES)))
    np.testing.assert_array_equal(restored.score(pairs), pairs[:, 0])


def test_a_catalogue_event_counts_what_the_version_knew_of_it_and_newer_ones_zero() -> None:
    popularity = np.array([3, 0, 5])
    # Model index per catalogue event: -1 (newer than the version) or past the model: 0.
    counts = catalogue_interactions(popularity, [2, -1, 0, 1, 7])
    assert counts.tolist() == [5, 0, 3, 0, 0]


def test_the_exposure_rule_leaves_the_fallback_blend_as_it_is_and_samples_its_users() -> None:
    calls: list[tuple[int, int]] = []

    def features(users: np.ndarray, positions: np.ndarray) -> np.ndarray:
        calls.append((len(users), len(positions)))
        block = np.zeros((len(users), len(positions), len(FEATURES)))
        block[:, :, FEATURES.index("content")] = 1.0 / (1.0 + positions)[None, :]
        block[:, :, FEATURES.index("trending")] = (positions / 30.0)[None, :]
        block[:, :, FEATURES.index("new")] = (positions % 3 == 0)[None, :]
        return block

    exclude = sp.csr_matrix((50, 30))
    fallback = collaborative_only("nothing to learn from")
    expose_blend(fallback, features, np.arange(50), np.arange(30), exclude)
    assert not calls
    assert blend_metadata(fallback)["weights"]["new"] == 0.0
    learned = _blend([1.0 if name == "trending" else 0.0 for name in FEATURES])
    learned.mean_abs_ = np.ones(len(FEATURES))
    expose_blend(learned, features, np.arange(50), np.arange(30), exclude, max_users=20)
    assert calls == [(20, 30)]
    assert learned.exposure_["users"] == 20
    # Content's top 10 hold events 0, 3, 6, 9; trending's (20-29) only three new ones.
    assert learned.exposure_["new_in_top_k"] == 4.0
    assert learned.weights_[FEATURES.index("new")] > 0
