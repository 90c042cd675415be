"""PureSVD: a truncated SVD of the sparse confidence matrix, R ≈ U Σ Vᵀ.

A user's vector is ``r_u V`` and their scores are ``r_u V Vᵀ``, so any current row can be
scored without refitting, and the user × event matrix is never made dense.
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt
import scipy.sparse as sp
from sklearn.utils.extmath import randomized_svd

from eventrec.model.errors import ModelFitError

__all__ = ["PureSVD"]


def _as_float32_csr(rows: sp.spmatrix | sp.sparray | np.ndarray) -> sp.csr_matrix:
    return sp.csr_matrix(rows, dtype=np.float32)


class PureSVD:
    """Truncated SVD of a sparse user × event confidence matrix (randomized algorithm).

    Parameters
    ----------
    n_factors : int
        Requested number of factors; clipped to ``min(n_users, n_events) - 1``.
    n_oversamples : int
        Extra random vectors of the randomized range finder.
    n_iter : int
        Power iterations of the randomized range finder.
    random_state : int
        Seed of the random projection.

    Attributes
    ----------
    item_factors_ : ndarray of shape (n_events, n_factors_), float32
        V, the right singular vectors (orthonormal columns).
    singular_values_ : ndarray of shape (n_factors_,), float32
        Σ, descending.
    n_factors_ : int
        The number of factors actually fitted.
    """

    def __init__(
        self, n_factors: int = 64, n_oversamples: int = 10, n_iter: int = 4, random_state: int = 0
    ) -> None:
        self.n_factors = n_factors
        self.n_oversamples = n_oversamples
        self.n_iter = n_iter
        self.random_state = random_state

    def fit(self, confidence: sp.spmatrix | sp.sparray) -> PureSVD:
        """Fit V and Σ.

        Parameters
        ----------
        confidence : sparse matrix of shape (n_users, n_events)

        Returns
        -------
        self

        Raises
        ------
        ModelFitError
            When the matrix is empty, too small for one factor, or not finite, or the
            factors come out non-finite.
        """
        matrix = _as_float32_csr(confidence)
        n_factors = min(int(self.n_factors), min(matrix.shape) - 1)
        if matrix.nnz == 0 or n_factors < 1:
            raise ModelFitError(
                f"cannot fit {self.n_factors} factors to a {matrix.shape} matrix "
                f"with {matrix.nnz} stored values"
            )
        if not np.all(np.isfinite(matrix.data)):
            raise ModelFitError("the confidence matrix has non-finite values")
        _, singular_values, components = randomized_svd(
            matrix,
            n_factors,
            n_oversamples=self.n_oversamples,
            n_iter=self.n_iter,
            random_state=self.random_state,
        )
        item_factors = np.ascontiguousarray(np.asarray(components).T, dtype=np.float32)
        singular_values = np.asarray(singular_values, dtype=np.float32)
        if not (np.all(np.isfinite(item_factors)) and np.all(np.isfinite(singular_values))):
            raise ModelFitError("the SVD produced non-finite factors")
        self.item_factors_: npt.NDArray[np.float32] = item_factors
        self.singular_values_: npt.NDArray[np.float32] = singular_values
        self.n_factors_ = n_factors
        return self

    def fold_in(self, rows: sp.spmatrix | sp.sparray | np.ndarray) -> npt.NDArray[np.float32]:
        """User vectors ``r_u V`` of confidence rows.

        Parameters
        ----------
        rows : sparse matrix or ndarray of shape (n_rows, n_events)

        Returns
        -------
        ndarray of shape (n_rows, n_factors_), float32
        """
        vectors = _as_float32_csr(rows) @ self.item_factors_
        return np.asarray(vectors, dtype=np.float32)

    def score_vectors(self, user_vectors: np.ndarray) -> npt.NDArray[np.float32]:
        """Scores ``x V^T`` of user vectors of shape (n_rows, n_factors_)."""
        return np.asarray(user_vectors @ self.item_factors_.T, dtype=np.float32)

    def score(self, rows: sp.spmatrix | sp.sparray | np.ndarray) -> npt.NDArray[np.float32]:
        """Scores ``r_u V Vᵀ`` of every event for confidence rows.

        Parameters
        ----------
        rows : sparse matrix or ndarray of shape (n_rows, n_events)

        Returns
        -------
        ndarray of shape (n_rows, n_events), float32
        """
        return self.score_vectors(self.fold_in(rows))
