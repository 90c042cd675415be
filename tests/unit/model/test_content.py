"""Known-answer tests for eventrec.model.content."""

from __future__ import annotations

import json
from typing import Any

import numpy as np
import pytest
import scipy.sparse as sp

from eventrec.model.content import EventFeaturizer
from eventrec.model.content_map import ContentMap, blend

# 2026-01-03 is a Saturday; 20:00 UTC.
SATURDAY_EVENING = 1767470400

CATALOGUE: list[dict[str, Any]] = [
    {
        "category": "Concert",
        "tags": ["rock", "indie"],
        "city": "Berlin",
        "price": 10.0,
        "starts_at": SATURDAY_EVENING,
    },
    {"category": "play", "tags": ["drama"], "city": "Paris", "price": 50.0},
    {
        "category": "concert",
        "city": "Paris",
        "price": 90.0,
        "starts_at": SATURDAY_EVENING,
        "utc_offset_s": 5 * 3600,
    },
    {},
]


def features_of(featurizer: EventFeaturizer, row: sp.csr_matrix) -> set[str]:
    return {featurizer.vocabulary_[i] for i in row.indices}


def test_featurizer_one_hot_and_multi_hot() -> None:
    featurizer = EventFeaturizer(n_price_bands=3)
    matrix = featurizer.fit_transform(CATALOGUE)
    assert matrix.shape == (4, len(featurizer.vocabulary_))
    assert featurizer.vocabulary_[0] == "bias"
    assert features_of(featurizer, matrix[0]) == {
        "bias",
        "category=concert",
        "tag=rock",
        "tag=indie",
        "city=berlin",
        "price_band=0",
        "weekday=5",
        "time_of_day=evening",
    }
    # 20:00 UTC + 5 h is 01:00 on Sunday.
    assert {"weekday=6", "time_of_day=night", "price_band=2"} <= features_of(featurizer, matrix[2])
    assert features_of(featurizer, matrix[3]) == {"bias"}


def test_unseen_values_are_ignored_and_dict_round_trips() -> None:
    featurizer = EventFeaturizer().fit(CATALOGUE)
    restored = EventFeaturizer.from_dict(json.loads(json.dumps(featurizer.to_dict())))
    new_event = [{"category": "match", "city": "paris", "tags": ["drama"], "price": 60.0}]
    np.testing.assert_array_equal(
        restored.transform(new_event).toarray(), featurizer.transform(new_event).toarray()
    )
    assert features_of(restored, restored.transform(new_event)) >= {"city=paris", "tag=drama"}
    assert "category=match" not in restored.vocabulary_


def test_min_count_drops_rare_values() -> None:
    featurizer = EventFeaturizer(min_count=2).fit(CATALOGUE)
    assert "city=paris" in featurizer.vocabulary_
    assert "city=berlin" not in featurizer.vocabulary_


def test_content_map_recovers_a_linear_map_on_noise_free_data() -> None:
    rng = np.random.default_rng(0)
    features = sp.csr_matrix(rng.integers(0, 2, size=(200, 12)).astype(np.float32))
    true_map = rng.normal(size=(12, 4))
    content_map = ContentMap(alpha=1e-9).fit(features, features @ true_map)
    np.testing.assert_allclose(content_map.coef_, true_map, rtol=1e-4, atol=1e-4)
    np.testing.assert_allclose(
        content_map.predict(features[:3]), features[:3] @ true_map, atol=1e-4
    )
    restored = ContentMap.from_arrays(content_map.to_arrays())
    np.testing.assert_array_equal(restored.coef_, content_map.coef_)


def test_content_map_shrinks_with_alpha() -> None:
    features = sp.csr_matrix(np.eye(3, dtype=np.float32))
    content_map = ContentMap(alpha=1.0).fit(features, np.array([[2.0], [4.0], [6.0]]))
    np.testing.assert_allclose(content_map.coef_[:, 0], [1.0, 2.0, 3.0], rtol=1e-6)


def test_blend_moves_from_content_to_collaborative() -> None:
    collab = np.array([[1.0, 0.0]] * 3)
    content = np.array([[0.0, 1.0]] * 3)
    blended = blend(collab, content, [0, 10, 1_000_000], k0=10.0)
    np.testing.assert_allclose(blended, [[0.0, 1.0], [0.5, 0.5], [1.0, 0.0]], atol=1e-5)
    with pytest.raises(ValueError, match="k0"):
        blend(collab, content, [0, 0, 0], k0=0.0)
