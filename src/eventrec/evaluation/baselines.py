"""The rankers an evaluation compares: baselines, and eventrec's model behind the same face.

Every ranker is fitted on a training log (with each record's raw rating) and scores events
for training users; the protocol masks and ranks the scores.
"""

from __future__ import annotations

from typing import Any, Protocol

import numpy as np
import scipy.sparse as sp
from sklearn.decomposition import TruncatedSVD

from eventrec.model.records import TYPE_DISMISS, TYPE_RATING, InteractionLog

__all__ = ["GuideSvdCosine", "Popularity", "Ranker", "guide_matrix"]


class Ranker(Protocol):
    """What the protocol needs of a recommender: fit on a log, score training users."""

    params_: dict[str, Any]

    def fit(self, log: InteractionLog, raw_rating: np.ndarray) -> object:
        """Fit on ``log``; ``raw_rating[i]`` is record i's rating on its own scale (or NaN)."""

    def score(self, users: np.ndarray) -> np.ndarray:
        """Scores of shape (len(users), log.n_events); higher is better."""


class Popularity:
    """Every user gets the events the most training users interacted with.

    An event's score is the number of distinct users with an interaction other than a
    dismiss, so one user's repeated views count once.
    """

    def __init__(self) -> None:
        self.params_: dict[str, Any] = {"score": "distinct training users per event"}

    def fit(self, log: InteractionLog, raw_rating: np.ndarray) -> Popularity:
        keep = log.records["type"] != TYPE_DISMISS
        events = log.records["event"][keep].astype(np.int64)
        pairs = np.unique(log.user[keep].astype(np.int64) * max(log.n_events, 1) + events)
        self.user_count_ = np.bincount(pairs % max(log.n_events, 1), minlength=log.n_events)
        return self

    def score(self, users: np.ndarray) -> np.ndarray:
        counts = self.user_count_.astype(np.float64)
        return np.broadcast_to(counts, (len(users), len(counts)))


def guide_matrix(
    log: InteractionLog, raw_rating: np.ndarray
) -> tuple[sp.csr_matrix, np.ndarray, np.ndarray]:
    """The original guide's ``pivot_table``, built sparse.

    A record's value is its rating where it has one, else 1; a (user, event) cell is the
    mean of its records' values (``pivot_table``'s default ``aggfunc``); other cells are 0.
    Rows are the users and columns the events present in ``log``, in index order, as the
    pivot table's index and columns are.

    Returns
    -------
    matrix : csr_matrix of shape (n_present_users, n_present_events), float64
    users : ndarray of the user index of each row
    events : ndarray of the event index of each column
    """
    value = np.where(log.records["type"] == TYPE_RATING, raw_rating, 1.0).astype(np.float64)
    users, row = np.unique(log.user, return_inverse=True)
    events, column = np.unique(log.records["event"], return_inverse=True)
    keys = row.astype(np.int64) * len(events) + column
    cells, cell = np.unique(keys, return_inverse=True)
    mean = np.bincount(cell, weights=value) / np.bincount(cell)
    matrix = sp.csr_matrix(
        (mean, (cells // len(events), cells % len(events))), shape=(len(users), len(events))
    )
    return matrix, users.astype(np.int64), events.astype(np.int64)


def _unit_rows(matrix: np.ndarray) -> np.ndarray:
    """Rows scaled to unit length; zero rows stay zero (as sklearn's ``cosine_similarity``)."""
    norms = np.linalg.norm(matrix, axis=1, keepdims=True)
    result: np.ndarray = matrix / np.where(norms > 0, norms, 1.0)
    return result


class GuideSvdCosine:
    """The original guide's recommender, exactly: the baseline eventrec must beat.

    ``TruncatedSVD(n_components)`` of :func:`guide_matrix` (fewer components when the
    matrix is smaller); an event's score for a user is the cosine similarity between the
    user's row of U·Σ (``fit_transform``) and the event's row of V (``components_.T``).
    Events absent from training score ``-inf``; users absent from training score 0.
    """

    def __init__(self, n_components: int = 50, random_state: int = 42) -> None:
        self.n_components = n_components
        self.random_state = random_state

    def fit(self, log: InteractionLog, raw_rating: np.ndarray) -> GuideSvdCosine:
        matrix, users, events = guide_matrix(log, raw_rating)
        n_components = max(1, min(self.n_components, *matrix.shape))
        svd = TruncatedSVD(n_components=n_components, random_state=self.random_state)
        self.user_features_ = _unit_rows(svd.fit_transform(matrix))
        self.event_features_ = _unit_rows(np.asarray(svd.components_).T)
        self.user_row_ = np.full(log.n_users, -1, dtype=np.int64)
        self.user_row_[users] = np.arange(len(users))
        self.events_ = events
        self.n_events_ = log.n_events
        self.params_: dict[str, Any] = {
            "n_components": n_components,
            "random_state": self.random_state,
            "matrix": "rating where given else 1, mean per (user, event)",
        }
        return self

    def score(self, users: np.ndarray) -> np.ndarray:
        rows = self.user_row_[np.asarray(users, dtype=np.int64)]
        cosine = self.user_features_[np.maximum(rows, 0)] @ self.event_features_.T
        cosine[rows < 0] = 0.0
        scores = np.full((len(rows), self.n_events_), -np.inf)
        scores[:, self.events_] = cosine
        return scores
