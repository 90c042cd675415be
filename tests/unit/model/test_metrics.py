"""Known-answer tests for eventrec.model.metrics."""

from __future__ import annotations

import math

import numpy as np
import pytest
import scipy.sparse as sp

from eventrec.model.metrics import (
    coverage,
    f1_from_means,
    ndcg_at_k,
    precision_at_k,
    recall_at_k,
    rmse,
    top_k,
)

RECOMMENDED = np.array(
    [
        [3, 1, 7, -1],  # hits at ranks 1 and 2 (relevant {1, 3, 9})
        [5, 6, 2, 0],  # hit at rank 3 (relevant {2})
        [-1, -1, -1, -1],  # padding only (relevant {0})
    ]
)
RELEVANT = [np.array([1, 3, 9]), {2}, np.array([0])]


def test_precision_counts_hits_over_k() -> None:
    np.testing.assert_allclose(precision_at_k(RECOMMENDED, RELEVANT, 3), [2 / 3, 1 / 3, 0.0])
    np.testing.assert_allclose(precision_at_k(RECOMMENDED, RELEVANT, 2), [1.0, 0.0, 0.0])


def test_recall_counts_hits_over_relevant() -> None:
    np.testing.assert_allclose(recall_at_k(RECOMMENDED, RELEVANT, 3), [2 / 3, 1.0, 0.0])
    np.testing.assert_allclose(recall_at_k(RECOMMENDED, RELEVANT, 1), [1 / 3, 0.0, 0.0])


def test_ndcg_known_values() -> None:
    ideal_user0 = 1.0 + 1.0 / math.log2(3) + 1.0 / math.log2(4)
    expected = [(1.0 + 1.0 / math.log2(3)) / ideal_user0, (1.0 / math.log2(4)) / 1.0, 0.0]
    np.testing.assert_allclose(ndcg_at_k(RECOMMENDED, RELEVANT, 3), expected)


def test_ndcg_ideal_uses_at_most_k_hits() -> None:
    # 3 relevant, k=2, both recommended slots hit: a perfect ranking scores 1.
    np.testing.assert_allclose(ndcg_at_k(np.array([[9, 1]]), [np.array([1, 3, 9])], 2), [1.0])


def test_padding_never_hits_even_if_relevant_contains_minus_one() -> None:
    assert precision_at_k(np.array([[-1, 4]]), [{-1, 4}], 2)[0] == 0.5


def test_user_without_relevant_events_is_rejected() -> None:
    for metric in (precision_at_k, recall_at_k, ndcg_at_k):
        with pytest.raises(ValueError, match="no relevant"):
            metric(np.array([[1, 2]]), [set()], 2)


def test_bad_shapes_are_rejected() -> None:
    with pytest.raises(ValueError, match="fewer than k"):
        precision_at_k(np.array([[1]]), [{1}], 2)
    with pytest.raises(ValueError, match="relevant has"):
        recall_at_k(np.array([[1]]), [{1}, {2}], 1)


def test_f1_is_harmonic_mean_of_means() -> None:
    assert f1_from_means(0.5, 0.25) == pytest.approx(2 * 0.5 * 0.25 / 0.75)
    assert f1_from_means(0.0, 0.0) == 0.0


def test_coverage_ignores_padding() -> None:
    assert coverage(RECOMMENDED, 10) == pytest.approx(7 / 10)  # {0, 1, 2, 3, 5, 6, 7}


def test_rmse_known_value() -> None:
    assert rmse([1.0, 2.0, 3.0], [1.0, 4.0, 3.0]) == pytest.approx(math.sqrt(4 / 3))
    with pytest.raises(ValueError, match="no values"):
        rmse([], [])


def test_top_k_orders_best_first_and_excludes() -> None:
    scores = np.array([[0.1, 0.9, 0.5, 0.7], [1.0, 2.0, 3.0, 4.0]])
    exclude = sp.csr_matrix(np.array([[0, 1, 0, 0], [0, 0, 0, 0]], dtype=bool))
    np.testing.assert_array_equal(top_k(scores, 2, exclude), [[3, 2], [3, 2]])
    np.testing.assert_array_equal(top_k(scores, 2), [[1, 3], [3, 2]])


def test_top_k_pads_when_too_few_candidates() -> None:
    scores = np.array([[0.3, 0.2, 0.1]])
    exclude = sp.csr_matrix(np.array([[1, 0, 1]], dtype=bool))
    np.testing.assert_array_equal(top_k(scores, 2, exclude), [[1, -1]])
    np.testing.assert_array_equal(top_k(scores, 5), [[0, 1, 2, -1, -1]])


def test_top_k_breaks_ties_by_event_index() -> None:
    np.testing.assert_array_equal(top_k(np.array([[1.0, 2.0, 2.0, 2.0]]), 4), [[1, 2, 3, 0]])


def test_top_k_gives_ties_at_the_cut_to_the_lower_event() -> None:
    scores = np.array([[0.5, 0.9, 0.5, 0.5, 0.2, 0.5], [0.1, 0.1, 0.1, 0.1, 0.1, 0.1]])
    np.testing.assert_array_equal(top_k(scores, 3), [[1, 0, 2], [0, 1, 2]])


def test_top_k_matches_a_stable_full_sort() -> None:
    rng = np.random.default_rng(7)
    scores = rng.integers(0, 4, size=(50, 40)).astype(np.float64)
    expected = np.argsort(-scores, axis=1, kind="stable")[:, :5]
    np.testing.assert_array_equal(top_k(scores, 5), expected)
