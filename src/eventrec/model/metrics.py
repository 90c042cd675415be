"""Ranking and rating metrics, and the top-k selection every recommender shares.

``recommended`` arrays are int arrays of shape ``(n_users, >= k)`` holding event indices
ranked best first; ``-1`` is padding and never counts as a hit. A row is expected to hold
distinct events (``top_k`` guarantees it); a repeated event would be counted twice.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import numpy.typing as npt
import scipy.sparse as sp

__all__ = [
    "coverage",
    "f1_from_means",
    "ndcg_at_k",
    "precision_at_k",
    "recall_at_k",
    "rmse",
    "top_k",
]

RelevantSets = Sequence[np.ndarray] | Sequence[set[int]]


def _hits(recommended: np.ndarray, relevant: RelevantSets, k: int) -> tuple[np.ndarray, np.ndarray]:
    """Hit mask of shape (n_users, k) and the number of relevant events per user."""
    recommended = np.asarray(recommended)
    if recommended.ndim != 2:
        raise ValueError(f"recommended must be 2-d (n_users, k), not shape {recommended.shape}")
    if k < 1:
        raise ValueError(f"k must be at least 1, not {k}")
    if recommended.shape[1] < k:
        raise ValueError(f"recommended has {recommended.shape[1]} columns, fewer than k={k}")
    n_users = recommended.shape[0]
    if len(relevant) != n_users:
        raise ValueError(f"relevant has {len(relevant)} users, recommended has {n_users}")
    relevant_arrays = [
        np.unique(np.fromiter(events, dtype=np.int64, count=len(events)))
        if isinstance(events, set)
        else np.unique(np.asarray(events, dtype=np.int64))
        for events in relevant
    ]
    n_relevant = np.array([len(events) for events in relevant_arrays], dtype=np.int64)
    if n_users and n_relevant.min() == 0:
        user = int(np.argmin(n_relevant))
        raise ValueError(f"user at position {user} has no relevant events: do not evaluate it")
    top = recommended[:, :k].astype(np.int64)
    # One key space for (user position, event) pairs makes membership a single np.isin.
    stride = int(max(top.max(initial=0), max((int(a.max()) for a in relevant_arrays), default=0)))
    stride += 1
    user_position = np.arange(n_users, dtype=np.int64)
    relevant_events = np.concatenate([np.zeros(0, dtype=np.int64), *relevant_arrays])
    relevant_keys = np.repeat(user_position, n_relevant) * stride + relevant_events
    recommended_keys = user_position[:, None] * stride + top
    hits = np.isin(recommended_keys, relevant_keys) & (top >= 0)
    return hits, n_relevant


def precision_at_k(recommended: np.ndarray, relevant: RelevantSets, k: int) -> np.ndarray:
    """Fraction of the top ``k`` recommendations that are relevant, per user.

    Parameters
    ----------
    recommended : ndarray of shape (n_users, >= k)
        Event indices ranked best first; ``-1`` pads and is never a hit.
    relevant : list of ndarray or set of int, length n_users
        Each user's relevant (held-out) events. A user with none raises ``ValueError``.
    k : int
        Cut-off; the denominator is always ``k``, even when a row is padded.

    Returns
    -------
    ndarray of shape (n_users,), float64
    """
    hits, _ = _hits(recommended, relevant, k)
    precision: np.ndarray = hits.sum(axis=1) / float(k)
    return precision


def recall_at_k(recommended: np.ndarray, relevant: RelevantSets, k: int) -> np.ndarray:
    """Fraction of each user's relevant events found in the top ``k``.

    Parameters
    ----------
    recommended : ndarray of shape (n_users, >= k)
        Event indices ranked best first; ``-1`` pads.
    relevant : list of ndarray or set of int, length n_users
        Each user's relevant events; a user with none raises ``ValueError``.
    k : int
        Cut-off.

    Returns
    -------
    ndarray of shape (n_users,), float64
        ``hits / len(relevant)``.
    """
    hits, n_relevant = _hits(recommended, relevant, k)
    recall: np.ndarray = hits.sum(axis=1) / n_relevant
    return recall


def ndcg_at_k(recommended: np.ndarray, relevant: RelevantSets, k: int) -> np.ndarray:
    """Normalised discounted cumulative gain at ``k`` with binary gains, per user.

    DCG is ``sum(1 / log2(rank + 1))`` over hits with ranks starting at 1; the ideal DCG
    puts ``min(len(relevant), k)`` hits at the top.

    Parameters
    ----------
    recommended : ndarray of shape (n_users, >= k)
        Event indices ranked best first; ``-1`` pads.
    relevant : list of ndarray or set of int, length n_users
        Each user's relevant events; a user with none raises ``ValueError``.
    k : int
        Cut-off.

    Returns
    -------
    ndarray of shape (n_users,), float64, in [0, 1]
    """
    hits, n_relevant = _hits(recommended, relevant, k)
    discounts = 1.0 / np.log2(np.arange(2, k + 2, dtype=np.float64))
    dcg = hits @ discounts
    ideal = np.cumsum(discounts)[np.minimum(n_relevant, k) - 1]
    result: np.ndarray = dcg / ideal
    return result


def f1_from_means(mean_precision: float, mean_recall: float) -> float:
    """Harmonic mean of mean precision and mean recall (0 when both are 0)."""
    total = mean_precision + mean_recall
    if total <= 0.0:
        return 0.0
    return float(2.0 * mean_precision * mean_recall / total)


def coverage(recommended: np.ndarray, n_events: int) -> float:
    """Distinct events recommended to anyone, as a fraction of ``n_events``.

    Parameters
    ----------
    recommended : ndarray of shape (n_users, k)
        Event indices; ``-1`` padding is ignored.
    n_events : int
        Size of the catalogue.
    """
    if n_events <= 0:
        raise ValueError(f"n_events must be positive, not {n_events}")
    events = np.asarray(recommended).ravel()
    return float(len(np.unique(events[events >= 0])) / n_events)


def rmse(predicted: npt.ArrayLike, actual: npt.ArrayLike) -> float:
    """Root mean squared error between two equally shaped arrays."""
    predicted_values = np.asarray(predicted, dtype=np.float64)
    actual_values = np.asarray(actual, dtype=np.float64)
    if predicted_values.shape != actual_values.shape:
        raise ValueError(f"shapes differ: {predicted_values.shape} and {actual_values.shape}")
    if predicted_values.size == 0:
        raise ValueError("rmse of no values")
    return float(np.sqrt(np.mean((predicted_values - actual_values) ** 2)))


def top_k(scores: np.ndarray, k: int, exclude: sp.csr_matrix | None = None) -> np.ndarray:
    """The ``k`` best-scoring events per user, best first.

    Parameters
    ----------
    scores : ndarray of shape (n_users, n_events)
        Higher is better. ``-inf`` and NaN scores are never returned.
    k : int
        How many events per user.
    exclude : sparse matrix of shape (n_users, n_events), bool, optional
        Stored true entries are never returned (e.g. events already booked).

    Returns
    -------
    ndarray of shape (n_users, k), int64
        Event indices; rows with fewer than ``k`` candidates are padded with ``-1``.
        Ties go to the lower event index, both in the order and in which of several
        events tied at the ``k``-th score are returned.
    """
    scores = np.asarray(scores)
    if scores.ndim != 2:
        raise ValueError(f"scores must be 2-d (n_users, n_events), not shape {scores.shape}")
    if k < 1:
        raise ValueError(f"k must be at least 1, not {k}")
    n_users, n_events = scores.shape
    candidate_scores = np.array(scores, dtype=np.float64)
    candidate_scores[np.isnan(candidate_scores)] = -np.inf
    if exclude is not None:
        if exclude.shape != scores.shape:
            raise ValueError(f"exclude shape {exclude.shape} differs from scores {scores.shape}")
        excluded = sp.csr_matrix(exclude)
        excluded.eliminate_zeros()
        rows, columns = excluded.nonzero()
        candidate_scores[rows, columns] = -np.inf
    n_candidates = min(k, n_events)
    if n_candidates == 0:
        return np.full((n_users, k), -1, dtype=np.int64)
    if n_candidates < n_events:
        best = _best_unsorted(candidate_scores, n_candidates)
    else:
        best = np.broadcast_to(np.arange(n_events), (n_users, n_events)).copy()
    best_scores = np.take_along_axis(candidate_scores, best, axis=1)
    # Sort by score descending, then event index ascending, so ties are deterministic.
    order = np.lexsort((best, -best_scores), axis=1)
    best = np.take_along_axis(best, order, axis=1).astype(np.int64)
    best_scores = np.take_along_axis(best_scores, order, axis=1)
    best[np.isneginf(best_scores)] = -1
    if n_candidates < k:
        best = np.hstack([best, np.full((n_users, k - n_candidates), -1, dtype=np.int64)])
    return best


def _best_unsorted(scores: npt.NDArray[np.float64], k: int) -> npt.NDArray[np.int64]:
    """Each row's ``k`` best columns in no order; of the columns tied at the ``k``-th
    score, the lowest (argpartition alone would pick any of them)."""
    kth = -np.partition(-scores, k - 1, axis=1)[:, k - 1]
    above = scores > kth[:, None]
    tied = scores == kth[:, None]
    wanted = k - above.sum(axis=1)
    chosen = above | tied
    # Only rows with more ties at the cut than places left need the tie ranks.
    crowded = np.flatnonzero(tied.sum(axis=1) > wanted)
    if len(crowded):
        ties = tied[crowded]
        chosen[crowded] = above[crowded] | (
            ties & (np.cumsum(ties, axis=1) <= wanted[crowded, None])
        )
    columns = np.nonzero(chosen)[1]
    return columns.reshape(len(scores), k).astype(np.int64)
