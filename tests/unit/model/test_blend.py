"""The hybrid's blend: learned weights, plain-JSON metadata, and an exact pruned top-k."""

from __future__ import annotations

import json

import numpy as np
import pytest

from eventrec.model.blend import HybridBlend, sample_pairs
from eventrec.model.errors import ModelFitError
from eventrec.model.hybrid_features import FEATURES


def _planted(seed: int, n: int = 4000) -> tuple[np.ndarray, np.ndarray]:
    """Pairs whose label depends on ``content`` and ``trending`` only."""
    rng = np.random.default_rng(seed)
    pairs = rng.random((n, len(FEATURES)))
    content, trending = FEATURES.index("content"), FEATURES.index("trending")
    logit = 4.0 * pairs[:, content] + 2.0 * pairs[:, trending] - 3.0
    labels = (rng.random(n) < 1 / (1 + np.exp(-logit))).astype(int)
    return pairs, labels


def test_the_blend_learns_which_features_tell_relevant_from_sampled_pairs() -> None:
    pairs, labels = _planted(0)
    blend = HybridBlend().fit(pairs, labels)
    weights = dict(zip(FEATURES, blend.weights_, strict=True))
    assert weights["content"] > weights["trending"] > 1.0
    for name in set(FEATURES) - {"content", "trending"}:
        assert abs(weights[name]) < 0.5 * weights["trending"]
    assert max(blend.shares_, key=lambda name: blend.shares_[name]) == "content"
    assert sum(blend.shares_.values()) == pytest.approx(1.0)


def test_the_blend_round_trips_through_plain_json() -> None:
    pairs, labels = _planted(1)
    blend = HybridBlend().fit(pairs, labels)
    restored = HybridBlend.from_dict(json.loads(json.dumps(blend.to_dict())))
    np.testing.assert_array_equal(restored.score(pairs), blend.score(pairs))
    assert restored.shares_ == blend.shares_


def test_the_blend_refuses_pairs_of_one_label() -> None:
    with pytest.raises(ModelFitError):
        HybridBlend().fit(np.zeros((5, len(FEATURES))), np.ones(5))


def test_sampled_negatives_come_from_the_candidates_and_never_are_positives() -> None:
    rng = np.random.default_rng(0)
    relevant = [np.array([1, 2]), np.array([], dtype=np.int64), np.array([7])]
    candidates = [np.arange(10), np.arange(10), np.array([7])]
    rows, events, labels = sample_pairs(relevant, candidates, 3, rng)
    assert sorted(events[(rows == 0) & (labels == 1)].tolist()) == [1, 2]
    negatives = events[(rows == 0) & (labels == 0)]
    assert len(negatives) == 6
    assert not set(negatives.tolist()) & {1, 2}
    assert set(negatives.tolist()) <= set(range(10))
    # No user without a positive, none without a negative left to sample.
    assert set(rows.tolist()) == {0}


def test_the_strongest_signal_is_the_largest_positive_contribution() -> None:
    pairs, labels = _planted(2)
    blend = HybridBlend().fit(pairs, labels)
    content, trending = FEATURES.index("content"), FEATURES.index("trending")
    rows = np.zeros((3, len(FEATURES)))
    rows[0, content] = 1.0
    rows[1, trending] = 1.0
    rows[1, content] = 0.01
    assert blend.strongest(rows) == ["content", "trending", None]


def _new_in_top(scores: np.ndarray, is_new: np.ndarray, eligible: np.ndarray, k: int) -> float:
    ranked = np.where(eligible, scores, -np.inf)
    top = np.argsort(-ranked, axis=1, kind="stable")[:, :k]
    return float(np.take_along_axis(is_new & eligible, top, axis=1).sum(axis=1).mean())


def _users_and_catalogue(seed: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """60 users x 40 events, 8 of them never touched (no trending), content at random."""
    rng = np.random.default_rng(seed)
    block = rng.random((60, 40, len(FEATURES))) * 0.2
    new = np.zeros(40, dtype=bool)
    new[rng.choice(40, 8, replace=False)] = True
    block[:, :, FEATURES.index("new")] = new
    block[:, :, FEATURES.index("trending")] = np.where(new, 0.0, rng.random(40))[None, :]
    block[:, :, FEATURES.index("content")] = rng.random((60, 40))
    eligible = rng.random((60, 40)) > 0.2
    return block, np.broadcast_to(new, (60, 40)).copy(), eligible


def test_new_events_get_the_exposure_content_alone_would_give_them_and_no_more() -> None:
    pairs, labels = _planted(3)
    # Relevant pairs are never new ones: the learned blend buries never-touched events.
    pairs[:, FEATURES.index("new")] = (np.random.default_rng(3).random(len(labels)) < 0.3) & (
        labels == 0
    )
    blend = HybridBlend().fit(pairs, labels)
    flag, content = FEATURES.index("new"), FEATURES.index("content")
    learned = float(blend.weights_[flag])
    assert learned < 0
    block, is_new, eligible = _users_and_catalogue(4)
    target = _new_in_top(block[:, :, content], is_new, eligible, 10)
    assert _new_in_top(block @ blend.weights_, is_new, eligible, 10) < target
    blend.expose_new(block, eligible, k=10)
    raised = float(blend.weights_[flag])
    assert raised > learned
    assert _new_in_top(block @ blend.weights_, is_new, eligible, 10) >= target
    # The least such weight: a little less shows fewer new events.
    lower = blend.weights_.copy()
    lower[flag] = raised - 1e-3
    assert _new_in_top(block @ lower, is_new, eligible, 10) < target
    assert blend.exposure_["new_in_top_k"] == pytest.approx(target)
    assert sum(blend.shares_.values()) == pytest.approx(1.0)
    restored = HybridBlend.from_dict(json.loads(json.dumps(blend.to_dict())))
    np.testing.assert_array_equal(restored.score(block), blend.score(block))
    assert restored.exposure_ == blend.exposure_


def test_a_blend_that_already_shows_new_events_keeps_its_weights() -> None:
    pairs, labels = _planted(5)
    pairs[:, FEATURES.index("new")] = labels  # every relevant pair is a new event
    blend = HybridBlend().fit(pairs, labels)
    before = blend.weights_.copy()
    block, _, eligible = _users_and_catalogue(6)
    blend.expose_new(block, eligible, k=10)
    np.testing.assert_array_equal(blend.weights_, before)
    assert blend.exposure_["raised_by"] == 0.0
