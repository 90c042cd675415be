"""EventrecModel: PureSVD on weighted confidences, an estimator with fixed hyperparameters.

Scores of a user are ``x_u V Vᵀ`` where ``x_u`` is the user's confidence row with column
``j`` scaled by ``max(popularity_j, 1) ** -beta``; users with an empty row get popularity.
Choosing the hyperparameters is :class:`eventrec.model.search.EventrecSearch`'s job.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import numpy.typing as npt
import scipy.sparse as sp

from eventrec.model.aggregate import Aggregate, InteractionWeights, aggregate
from eventrec.model.errors import ModelFitError
from eventrec.model.records import RECORD_DTYPE, InteractionLog, event_popularity
from eventrec.model.svd import PureSVD

__all__ = [
    "BINARY_WEIGHTS",
    "DEFAULT_BETA",
    "DEFAULT_N_FACTORS",
    "EventrecModel",
    "column_scale",
    "max_factors",
    "score_rows",
]

DEFAULT_N_FACTORS = 64
DEFAULT_BETA = 0.25
# Classic PureSVD input: every interaction, whatever its kind, is a 1.
BINARY_WEIGHTS = InteractionWeights(
    view=1.0,
    view_saturation=1,
    save=1.0,
    booking=1.0,
    rating_weights=(1.0, 1.0, 1.0, 1.0, 1.0),
)


def max_factors(n_users: int, n_events: int) -> int:
    """The most factors a truncated SVD of an ``n_users x n_events`` matrix can have."""
    return min(n_users, n_events) - 1


def column_scale(popularity: np.ndarray, beta: float) -> npt.NDArray[np.float32]:
    """``max(popularity, 1) ** -beta``: damps popular events' columns before the SVD."""
    scale = np.maximum(popularity.astype(np.float64), 1.0) ** -beta
    return scale.astype(np.float32)


def score_rows(
    rows: sp.csr_matrix,
    item_factors: np.ndarray,
    scale: np.ndarray,
    popularity: np.ndarray,
) -> npt.NDArray[np.float32]:
    """PureSVD scores of confidence rows on scaled columns; empty rows get popularity.

    Parameters
    ----------
    rows : csr_matrix of shape (n, n_events)
    item_factors : ndarray of shape (n_events, n_factors)
    scale : ndarray of shape (n_events,)
    popularity : ndarray of shape (n_events,)

    Returns
    -------
    ndarray of shape (n, n_events), float32
    """
    scaled = sp.csr_matrix(rows.multiply(scale[None, :]), dtype=np.float32)
    scores = np.asarray((scaled @ item_factors) @ item_factors.T, dtype=np.float32)
    empty = np.diff(scaled.indptr) == 0
    if empty.any():
        scores[empty] = popularity.astype(np.float32)
    return scores


class EventrecModel:
    """The recommender the trainer fits and the server scores with.

    Parameters
    ----------
    weights : InteractionWeights, optional
        Confidence weights; defaults to ``InteractionWeights()``.
    n_factors : int
        Factors of the SVD (clipped to what the data allows).
    beta : float
        Popularity exponent of the column scale (0: plain PureSVD).
    weights_name : str
        What the weights are called in ``params_`` ("given", "binary", ...).
    n_iter : int
        Power iterations of the randomized SVD.
    random_state : int
        Seed of the SVD.

    Attributes
    ----------
    params_ : dict
        ``n_factors``, ``beta``, ``weights_name`` and ``weights`` (plain dict).
    weights_ : InteractionWeights
    beta_ : float
    n_factors_ : int
    svd_ : PureSVD
        ``svd_.item_factors_`` is V, shape (n_events, n_factors_).
    column_scale_ : ndarray of shape (n_events,), float32
    popularity_ : ndarray of shape (n_events,), int64
        Distinct users per event with a record other than a dismissal.
    confidence_ : csr_matrix of shape (n_users, n_events), float32
        Training confidences (unscaled) under ``weights_``.
    hidden_ : csr_matrix of shape (n_users, n_events), bool
        Events never to recommend to each training user again.
    now_ : float
        Reference time of the decay at fit time.
    """

    def __init__(
        self,
        weights: InteractionWeights | None = None,
        n_factors: int = DEFAULT_N_FACTORS,
        beta: float = DEFAULT_BETA,
        weights_name: str = "given",
        n_iter: int = 4,
        random_state: int = 0,
    ) -> None:
        self.weights = weights
        self.n_factors = n_factors
        self.beta = beta
        self.weights_name = weights_name
        self.n_iter = n_iter
        self.random_state = random_state

    def fit(self, log: InteractionLog, now: float | None = None) -> EventrecModel:
        """Fit the SVD on ``log``'s confidences.

        Parameters
        ----------
        log : InteractionLog
        now : float, optional
            Reference time for decay; defaults to the log's latest time.

        Returns
        -------
        self

        Raises
        ------
        ModelFitError
            When the log is too small or the SVD fails.
        """
        if now is None:
            now = log.latest_time()
        largest = max_factors(log.n_users, log.n_events)
        if largest < 1:
            raise ModelFitError(f"a {log.n_users} x {log.n_events} log is too small for one factor")
        self.weights_ = self.weights or InteractionWeights()
        self.beta_ = float(self.beta)
        self.now_ = float(now)
        full = aggregate(log, self.weights_, now)
        self.popularity_ = event_popularity(log)
        self.column_scale_ = column_scale(self.popularity_, self.beta_)
        self.confidence_ = full.confidence
        self.hidden_ = full.hidden
        self.svd_ = PureSVD(
            n_factors=min(int(self.n_factors), largest),
            n_iter=self.n_iter,
            random_state=self.random_state,
        )
        self.svd_.fit(self._scaled(full.confidence))
        self.n_factors_ = self.svd_.n_factors_
        self.params_: dict[str, Any] = {
            "n_factors": self.n_factors_,
            "beta": self.beta_,
            "weights_name": self.weights_name,
            "weights": self.weights_.to_dict(),
        }
        return self

    def _scaled(self, confidence: sp.csr_matrix) -> sp.csr_matrix:
        return sp.csr_matrix(confidence.multiply(self.column_scale_[None, :]), dtype=np.float32)

    @property
    def item_factors_(self) -> npt.NDArray[np.float32]:
        """V, shape (n_events, n_factors_): the event vectors of the fitted model."""
        return self.svd_.item_factors_

    def score(self, user_indices: npt.ArrayLike) -> npt.NDArray[np.float32]:
        """Scores of every event for training users (hidden events are not masked).

        Parameters
        ----------
        user_indices : array-like of shape (n,), int
            Indices below the training log's ``n_users``.

        Returns
        -------
        ndarray of shape (n, n_events), float32
        """
        users = np.asarray(user_indices, dtype=np.int64)
        if len(users) and (users.min() < 0 or users.max() >= self.confidence_.shape[0]):
            raise ValueError("a user index is outside the training data")
        return score_rows(
            self.confidence_[users], self.item_factors_, self.column_scale_, self.popularity_
        )

    def rows_aggregate(self, rows: Sequence[np.ndarray], now: float | None = None) -> Aggregate:
        """Aggregate of users' current rows of records (row ``i`` is user ``i``)."""
        n_events = self.item_factors_.shape[0]
        lengths = [len(row) for row in rows]
        records = (
            np.concatenate([np.asarray(row, dtype=RECORD_DTYPE) for row in rows])
            if rows
            else np.zeros(0, dtype=RECORD_DTYPE)
        )
        # Events newer than the model have no factors: their records are left out.
        user = np.repeat(np.arange(len(rows), dtype=np.int32), lengths)
        known = records["event"] < n_events
        log = InteractionLog(user[known], records[known], len(rows), n_events)
        return aggregate(log, self.weights_, self.now_ if now is None else now)

    def fold_in_rows(
        self, rows: Sequence[np.ndarray], now: float | None = None
    ) -> npt.NDArray[np.float32]:
        """User vectors ``x_u V`` of users' current rows of records.

        Parameters
        ----------
        rows : sequence of ndarray of RECORD_DTYPE
            Each user's records in applied order.
        now : float, optional
            Reference time for decay; defaults to ``now_``.

        Returns
        -------
        ndarray of shape (len(rows), n_factors_), float32
        """
        confidence = self.rows_aggregate(rows, now).confidence
        return self.svd_.fold_in(self._scaled(confidence))

    def score_rows(
        self, rows: Sequence[np.ndarray], now: float | None = None
    ) -> npt.NDArray[np.float32]:
        """Scores of every event for users' current rows (empty rows get popularity).

        Returns
        -------
        ndarray of shape (len(rows), n_events), float32
        """
        confidence = self.rows_aggregate(rows, now).confidence
        return score_rows(confidence, self.item_factors_, self.column_scale_, self.popularity_)

    def to_arrays(self) -> dict[str, np.ndarray]:
        """What serving needs, as plain arrays (``np.savez``; load with allow_pickle=False)."""
        return {
            "item_factors": self.item_factors_,
            "singular_values": self.svd_.singular_values_,
            "column_scale": self.column_scale_,
            "popularity": self.popularity_,
            "now": np.array(self.now_, dtype=np.float64),
            "params": np.array(json.dumps(self.params_)),
        }

    @classmethod
    def from_arrays(cls, arrays: Mapping[str, np.ndarray]) -> EventrecModel:
        """A model that scores rows (not training users) from :meth:`to_arrays` output."""
        params = json.loads(str(arrays["params"]))
        weights = InteractionWeights.from_dict(params["weights"])
        model = cls(
            weights=weights,
            n_factors=int(params["n_factors"]),
            beta=float(params["beta"]),
            weights_name=str(params.get("weights_name", "given")),
        )
        model.params_ = params
        model.weights_ = weights
        model.beta_ = float(params["beta"])
        model.n_factors_ = int(params["n_factors"])
        model.now_ = float(arrays["now"])
        model.column_scale_ = np.asarray(arrays["column_scale"], dtype=np.float32)
        model.popularity_ = np.asarray(arrays["popularity"], dtype=np.int64)
        svd = PureSVD(n_factors=model.n_factors_)
        svd.item_factors_ = np.asarray(arrays["item_factors"], dtype=np.float32)
        svd.singular_values_ = np.asarray(arrays["singular_values"], dtype=np.float32)
        svd.n_factors_ = model.n_factors_
        model.svd_ = svd
        return model
