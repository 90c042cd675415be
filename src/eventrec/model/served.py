"""What serving answers, as pure functions of (model, catalogue arrays, user rows, now).

Serving (``eventrec.serving``) and the offline evaluation (``eventrec.evaluation``) both
call these, so the evaluation's ``eventrec`` row is exactly what serving would answer at
the cut: the same decay at the same clock, the same fold-in (events newer than the model
count through their catalogue vectors), the same blended catalogue vectors, the same
hidden events, the same trending fallback (boosted by the user's profile).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import numpy.typing as npt
import scipy.sparse as sp

from eventrec.model.aggregate import Aggregate, InteractionWeights, aggregate
from eventrec.model.records import RECORD_DTYPE, InteractionLog

__all__ = ["PROFILE_BOOST", "aggregate_rows", "fold_in", "profile_trending"]

# A profile match outranks any trend; the trend orders the matches (and the others).
PROFILE_BOOST = 1e6


def aggregate_rows(
    rows: Sequence[np.ndarray], weights: InteractionWeights, now: float
) -> tuple[Aggregate, npt.NDArray[np.int32], np.ndarray]:
    """Aggregate of several users' rows (row ``i`` is user ``i``) at the clock ``now``.

    Returns the aggregate (event indices as the rows name them), each record's user and
    the records concatenated.
    """
    n_users = len(rows)
    lengths = np.fromiter((len(r) for r in rows), dtype=np.int64, count=n_users)
    records = (
        np.concatenate([np.asarray(r, dtype=RECORD_DTYPE) for r in rows])
        if n_users
        else np.zeros(0, dtype=RECORD_DTYPE)
    )
    users = np.repeat(np.arange(n_users, dtype=np.int32), lengths)
    n_events = max(int(records["event"].max()) + 1, 1) if len(records) else 1
    log = InteractionLog(users, records, n_users, n_events)
    return aggregate(log, weights, now=now), users, records


def fold_in(
    confidence: sp.csr_matrix,
    item_factors: npt.NDArray[np.float32],
    column_scale: npt.NDArray[np.float32],
    catalogue_vectors: npt.NDArray[np.float32] | None,
    catalogue_positions: npt.NDArray[np.int64],
) -> npt.NDArray[np.float32]:
    """Every user's vector: confidences times column scales times item vectors, summed.

    Events newer than the model (index >= ``len(item_factors)``) count through their
    catalogue (content) vectors at once.

    Parameters
    ----------
    confidence : csr_matrix of shape (n_users, n_events)
    item_factors : ndarray of shape (n_model_events, n_factors)
    column_scale : ndarray of shape (n_model_events,)
    catalogue_vectors : ndarray of shape (n_catalogue, n_factors), optional
    catalogue_positions : ndarray of int64
        Catalogue position of each event index named in ``confidence`` (-1: none).

    Returns
    -------
    ndarray of shape (n_users, n_factors), float32
    """
    n_users = confidence.shape[0]
    n_model = item_factors.shape[0]
    events, values, indptr = confidence.indices, confidence.data, confidence.indptr
    known = events < n_model
    safe = np.where(known, events, 0)
    weights = np.where(known, values * column_scale[safe], 0).astype(np.float32)
    vectors = np.zeros((n_users, item_factors.shape[1]), dtype=np.float32)
    starts = indptr[:-1]
    nonempty = np.flatnonzero(indptr[1:] > starts)
    if len(nonempty):
        # Empty rows contribute nothing, so each nonempty row's segment ends where the
        # next nonempty row's begins.
        contributions = weights[:, None] * item_factors[safe]
        vectors[nonempty] = np.add.reduceat(contributions, starts[nonempty], axis=0)
    new = np.flatnonzero(~known)
    if len(new) and catalogue_vectors is not None:
        inside = events[new] < len(catalogue_positions)
        positions = np.full(len(new), -1, dtype=np.int64)
        positions[inside] = catalogue_positions[events[new][inside]]
        found = positions >= 0
        owners = np.searchsorted(indptr, new[found], side="right") - 1
        np.add.at(
            vectors, owners, values[new[found]][:, None] * catalogue_vectors[positions[found]]
        )
    return vectors


def profile_trending(
    trending: np.ndarray,
    city: np.ndarray,
    category: np.ndarray,
    profile_city: int | None,
    profile_categories: Sequence[int],
) -> npt.NDArray[np.float64]:
    """Trending scores with events in the user's city and categories first.

    Parameters
    ----------
    trending : ndarray of shape (n_catalogue,)
    city, category : ndarray of shape (n_catalogue,), int
        Codes of each event's city and category.
    profile_city : int or None
        Code of the user's city (None or -1: none known).
    profile_categories : sequence of int
        Codes of the user's preferred categories.
    """
    boost = np.ones(len(trending))
    if profile_city is not None:
        boost += city == profile_city
    if len(profile_categories):
        boost += np.isin(category, list(profile_categories))
    scores: npt.NDArray[np.float64] = boost * PROFILE_BOOST + trending.astype(np.float64)
    return scores
