"""PureSVD's event-side solver (tall matrices) against an exact dense SVD."""

from __future__ import annotations

import numpy as np
import scipy.sparse as sp

from eventrec.model.svd import GRAM_MIN_ROW_RATIO, PureSVD


def tall_matrix(n_users: int = 600, n_events: int = 60, seed: int = 0) -> sp.csr_matrix:
    rng = np.random.default_rng(seed)
    # Six tastes of decreasing strength plus a little noise, kept sparse.
    strengths = np.array([12.0, 8.0, 6.0, 4.5, 3.5, 2.5])
    taste = (rng.standard_normal((n_users, 6)) * strengths) @ rng.standard_normal((6, n_events))
    noisy = taste + 0.3 * rng.standard_normal((n_users, n_events))
    return sp.csr_matrix(np.where(rng.random((n_users, n_events)) < 0.5, noisy, 0.0))


def test_event_side_solver_matches_the_exact_svd() -> None:
    matrix = tall_matrix()
    assert matrix.shape[0] > GRAM_MIN_ROW_RATIO * matrix.shape[1]
    model = PureSVD(n_factors=6, n_iter=6).fit(matrix)
    _, s, vt = np.linalg.svd(matrix.toarray(), full_matrices=False)
    np.testing.assert_allclose(model.singular_values_, s[:6], rtol=1e-3)
    # Same subspace: the projections onto the exact and the fitted V agree.
    exact = vt[:6].T @ vt[:6]
    fitted = model.item_factors_ @ model.item_factors_.T
    np.testing.assert_allclose(fitted, exact, atol=2e-3)
    np.testing.assert_allclose(model.item_factors_.T @ model.item_factors_, np.eye(6), atol=1e-5)
    assert np.all(np.diff(model.singular_values_) <= 0)


def test_event_side_solver_scores_like_the_wide_solver() -> None:
    matrix = tall_matrix(seed=1)
    tall = PureSVD(n_factors=5, n_iter=6).fit(matrix)
    # The same rows as a wide problem (fewer users than events) take sklearn's path.
    wide = PureSVD(n_factors=5, n_iter=6).fit(matrix[:100])
    assert wide.item_factors_.shape == tall.item_factors_.shape
    np.testing.assert_allclose(
        tall.score(matrix[:3]),
        matrix[:3] @ (tall.item_factors_ @ tall.item_factors_.T),
        rtol=1e-4,
        atol=1e-4,
    )
