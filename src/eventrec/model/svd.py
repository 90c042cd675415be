"""PureSVD: a truncated SVD of the sparse confidence matrix, R ≈ U Σ Vᵀ.

A user's vector is ``r_u V`` and their scores are ``r_u V Vᵀ``, so any current row can be
scored without refitting, and the user × event matrix is never made dense.
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt
import scipy.sparse as sp
from scipy import linalg
from sklearn.utils.extmath import randomized_svd

from eventrec.model.errors import ModelFitError

__all__ = ["PureSVD"]


# With many more users than events, find V on the event side (see _event_side_svd).
GRAM_MIN_ROW_RATIO = 2


def _event_side_svd(
    matrix: sp.csr_matrix, n_factors: int, n_oversamples: int, n_iter: int, random_state: int
) -> tuple[npt.NDArray[np.float32], npt.NDArray[np.float32]]:
    """Top right singular vectors and values by a randomized range finder on RᵀR.

    Same subspace iteration as ``randomized_svd`` (power iterations normalised by LU, a
    final QR), but every dense step is on the (n_events, l) side; Σ and V then come from
    the eigendecomposition of the small Gram matrix (RQ)ᵀ(RQ) in float64. For a tall
    matrix this skips the QR, LU and SVD of (n_users, l) blocks that dominate sklearn's.
    """
    n_events = matrix.shape[1]
    size = min(n_factors + n_oversamples, n_events)
    rng = np.random.default_rng(random_state)
    transposed = matrix.T.tocsr()
    basis = rng.standard_normal((n_events, size)).astype(np.float32)
    for step in range(max(n_iter, 1)):
        projected = np.asarray(transposed @ (matrix @ basis), dtype=np.float32)
        if step < max(n_iter, 1) - 1:
            basis = np.asarray(linalg.lu(projected, permute_l=True)[0], dtype=np.float32)
        else:
            basis = np.asarray(np.linalg.qr(projected)[0], dtype=np.float32)
    users_side = np.asarray(matrix @ basis, dtype=np.float64)
    eigenvalues, rotation = np.linalg.eigh(users_side.T @ users_side)
    top = np.argsort(eigenvalues)[::-1][:n_factors]
    singular_values = np.sqrt(np.maximum(eigenvalues[top], 0.0)).astype(np.float32)
    item_factors = np.ascontiguousarray(basis.astype(np.float64) @ rotation[:, top])
    return item_factors.astype(np.float32), singular_values


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
        if matrix.shape[0] > GRAM_MIN_ROW_RATIO * matrix.shape[1]:
            item_factors, singular_values = _event_side_svd(
                matrix, n_factors, self.n_oversamples, self.n_iter, self.random_state
            )
        else:
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
