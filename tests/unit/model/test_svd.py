"""Known-answer tests for eventrec.model.svd."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.sparse as sp

from eventrec.model.errors import ModelFitError
from eventrec.model.metrics import top_k
from eventrec.model.svd import PureSVD


def block_matrix() -> sp.csr_matrix:
    """Users 0-3 like events 0-3, users 4-7 like events 4-7; each misses one of its block."""
    dense = np.zeros((8, 8), dtype=np.float32)
    dense[:4, :4] = 1.0
    dense[4:, 4:] = 1.0
    for user in range(8):
        dense[user, user] = 0.0
    return sp.csr_matrix(dense)


def test_top_recommendation_is_the_missing_event_of_the_users_block() -> None:
    matrix = block_matrix()
    model = PureSVD(n_factors=2, random_state=0).fit(matrix)
    recommended = top_k(model.score(matrix), 1, exclude=matrix.astype(bool))
    np.testing.assert_array_equal(recommended[:, 0], np.arange(8))


def test_factors_are_orthonormal_and_shaped() -> None:
    model = PureSVD(n_factors=3).fit(block_matrix())
    assert model.item_factors_.shape == (8, 3)
    assert model.item_factors_.dtype == np.float32
    np.testing.assert_allclose(model.item_factors_.T @ model.item_factors_, np.eye(3), atol=1e-5)
    assert np.all(np.diff(model.singular_values_) <= 1e-6)


def test_fold_in_equals_the_fitted_users_projection() -> None:
    rng = np.random.default_rng(1)
    matrix = sp.random(30, 20, density=0.3, format="csr", random_state=rng, dtype=np.float32)
    model = PureSVD(n_factors=5, n_iter=10).fit(matrix)
    u, s, vt = np.linalg.svd(matrix.toarray())
    np.testing.assert_allclose(
        np.abs(model.fold_in(matrix)), np.abs(u[:, :5] * s[:5]), rtol=1e-3, atol=1e-4
    )
    np.testing.assert_allclose(model.singular_values_, s[:5], rtol=1e-4)
    scores = model.score(matrix[:2])
    np.testing.assert_allclose(scores, (u[:2, :5] * s[:5]) @ vt[:5], rtol=1e-3, atol=1e-4)


def test_factors_are_clipped_to_the_matrix() -> None:
    model = PureSVD(n_factors=64).fit(block_matrix())
    assert model.n_factors_ == 7
    assert model.item_factors_.shape == (8, 7)


@pytest.mark.parametrize(
    "matrix",
    [
        sp.csr_matrix((5, 4), dtype=np.float32),
        sp.csr_matrix(np.ones((1, 4), dtype=np.float32)),
        sp.csr_matrix(np.array([[1.0, np.nan], [0.0, 1.0], [1.0, 0.0]], dtype=np.float32)),
    ],
    ids=["empty", "one-user", "nan"],
)
def test_unfittable_matrices_raise_model_fit_error(matrix: sp.csr_matrix) -> None:
    with pytest.raises(ModelFitError):
        PureSVD(n_factors=2).fit(matrix)
