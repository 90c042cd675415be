"""Rating prediction: global mean + regularised user/event biases + low-rank factors.

Biases are fitted first by alternating closed-form updates; factors are then fitted to the
residuals by alternating least squares with weighted-lambda regularisation (ALS-WR), all
vectorised: the per-user Gram matrices come from one sparse product per chunk of users.
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt
import scipy.sparse as sp

from eventrec.model.errors import ModelFitError

__all__ = ["BiasedRatingPredictor"]

# Rows per chunk of the batched ALS solve; bounds memory at rows * n_factors² floats.
ALS_CHUNK_ROWS = 20_000
BIAS_ITERATIONS = 10


def _als_half_step(
    ratings: sp.csr_matrix, fixed: np.ndarray, reg: float, counts: np.ndarray
) -> np.ndarray:
    """Least-squares factors of each row of ``ratings`` given the other side's ``fixed``."""
    n_factors = fixed.shape[1]
    outer = (fixed[:, :, None] * fixed[:, None, :]).reshape(len(fixed), n_factors * n_factors)
    indicator = ratings.copy()
    indicator.data = np.ones_like(indicator.data)
    solved = np.zeros((ratings.shape[0], n_factors), dtype=np.float64)
    identity = np.eye(n_factors)
    for start in range(0, ratings.shape[0], ALS_CHUNK_ROWS):
        stop = min(start + ALS_CHUNK_ROWS, ratings.shape[0])
        gram = np.asarray(indicator[start:stop] @ outer).reshape(-1, n_factors, n_factors)
        gram += reg * np.maximum(counts[start:stop], 1.0)[:, None, None] * identity
        right = np.asarray(ratings[start:stop] @ fixed)
        solved[start:stop] = np.linalg.solve(gram, right[:, :, None])[:, :, 0]
    return solved


class BiasedRatingPredictor:
    """Predict ratings as ``mu + b_user + b_event + p_user · q_event``.

    Parameters
    ----------
    n_factors : int
        Rank of the factor part; 0 gives the biases-only baseline.
    reg : float
        ALS-WR penalty of the factors (times each user's / event's rating count).
    bias_reg : float
        Penalty of the biases (a pseudo-count of ratings at the mean).
    n_epochs : int
        ALS sweeps (each updates users, then events).
    random_state : int
        Seed of the initial event factors.

    Attributes
    ----------
    global_mean_ : float
    user_bias_ : ndarray of shape (n_users,), float64
    event_bias_ : ndarray of shape (n_events,), float64
    user_factors_ : ndarray of shape (n_users, n_factors), float64
    event_factors_ : ndarray of shape (n_events, n_factors), float64
    rating_min_, rating_max_ : float
        The training ratings' range, to which predictions are clipped.
    """

    def __init__(
        self,
        n_factors: int = 10,
        reg: float = 0.1,
        bias_reg: float = 10.0,
        n_epochs: int = 10,
        random_state: int = 0,
    ) -> None:
        self.n_factors = n_factors
        self.reg = reg
        self.bias_reg = bias_reg
        self.n_epochs = n_epochs
        self.random_state = random_state

    def fit(
        self,
        users: npt.ArrayLike,
        events: npt.ArrayLike,
        ratings: npt.ArrayLike,
        n_users: int | None = None,
        n_events: int | None = None,
    ) -> BiasedRatingPredictor:
        """Fit on one rating per (user, event) pair.

        Parameters
        ----------
        users, events : array-like of shape (n_ratings,), int
        ratings : array-like of shape (n_ratings,), float
            On any scale; predictions are clipped to its observed range.
        n_users, n_events : int, optional
            Index space sizes; default to the largest index + 1.

        Returns
        -------
        self
        """
        user = np.asarray(users, dtype=np.int64)
        event = np.asarray(events, dtype=np.int64)
        rating = np.asarray(ratings, dtype=np.float64)
        if not len(rating) or not (user.shape == event.shape == rating.shape):
            raise ModelFitError("need aligned, non-empty users, events and ratings")
        if not np.all(np.isfinite(rating)):
            raise ModelFitError("ratings must be finite")
        n_users = int(user.max()) + 1 if n_users is None else n_users
        n_events = int(event.max()) + 1 if n_events is None else n_events
        user_count = np.bincount(user, minlength=n_users).astype(np.float64)
        event_count = np.bincount(event, minlength=n_events).astype(np.float64)

        mean = float(rating.mean())
        user_bias = np.zeros(n_users)
        event_bias = np.zeros(n_events)
        for _ in range(BIAS_ITERATIONS):
            residual = rating - mean - event_bias[event]
            user_bias = np.bincount(user, residual, n_users) / (user_count + self.bias_reg)
            residual = rating - mean - user_bias[user]
            event_bias = np.bincount(event, residual, n_events) / (event_count + self.bias_reg)

        rng = np.random.default_rng(self.random_state)
        event_factors = rng.normal(0.0, 0.1, size=(n_events, self.n_factors))
        user_factors = np.zeros((n_users, self.n_factors))
        if self.n_factors > 0:
            residual = rating - mean - user_bias[user] - event_bias[event]
            by_user = sp.csr_matrix((residual, (user, event)), shape=(n_users, n_events))
            by_event = by_user.T.tocsr()
            for _ in range(self.n_epochs):
                user_factors = _als_half_step(by_user, event_factors, self.reg, user_count)
                event_factors = _als_half_step(by_event, user_factors, self.reg, event_count)
        if not (np.all(np.isfinite(user_factors)) and np.all(np.isfinite(event_factors))):
            raise ModelFitError("rating factors are not finite")

        self.global_mean_ = mean
        self.user_bias_ = user_bias
        self.event_bias_ = event_bias
        self.user_factors_ = user_factors
        self.event_factors_ = event_factors
        self.rating_min_ = float(rating.min())
        self.rating_max_ = float(rating.max())
        return self

    def predict(self, users: npt.ArrayLike, events: npt.ArrayLike) -> npt.NDArray[np.float64]:
        """Predicted ratings, clipped to the training range.

        Users or events outside the fitted index space get no bias and no factors.

        Parameters
        ----------
        users, events : array-like of shape (n,), int

        Returns
        -------
        ndarray of shape (n,), float64
        """
        user = np.asarray(users, dtype=np.int64)
        event = np.asarray(events, dtype=np.int64)
        known_user = (user >= 0) & (user < len(self.user_bias_))
        known_event = (event >= 0) & (event < len(self.event_bias_))
        user_at = np.where(known_user, user, 0)
        event_at = np.where(known_event, event, 0)
        prediction = (
            self.global_mean_
            + np.where(known_user, self.user_bias_[user_at], 0.0)
            + np.where(known_event, self.event_bias_[event_at], 0.0)
        )
        if self.n_factors > 0:
            both = known_user & known_event
            interaction = np.einsum(
                "ij,ij->i", self.user_factors_[user_at], self.event_factors_[event_at]
            )
            prediction = prediction + np.where(both, interaction, 0.0)
        return np.clip(prediction, self.rating_min_, self.rating_max_)
