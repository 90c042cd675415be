"""The time protocol: train on what happened before an instant T, rank what was on sale at T.

For a cut instant ``T`` and a horizon ``h``:

- training = every record before ``T``;
- candidates = the events on sale at ``T``. With catalogue dates: published before ``T``
  (first seen before ``T`` when the publication date is unknown), starting after ``T``,
  not cancelled; this includes events nobody has touched yet. Events without a start
  date, and every event when there is no catalogue, are candidates when they have at
  least one interaction in ``[T, T + h)``: an approximation of the catalogue on sale,
  the same for every model;
- excluded per user = what serving hides given the user's records before ``T``
  (uncancelled bookings, dismissals, ratings); viewed and saved events stay eligible;
- relevant = bookings, saves and ratings of at least ``relevant_min_rating`` (raw scale,
  a pair's latest rating in the window) in ``[T, T + h)`` on candidate events not excluded
  for the user. Users with a record before ``T`` are evaluated; the others with something
  relevant are the "new users" (the caller keeps those it knows a profile of).

Buckets split relevant events by their interactions (records) before ``T``: ``"0"``
(cold), ``"1-4"``, ``"5-19"``, ``"20+"``; a bucket's NDCG and recall are computed on the
same full ranking with each user's relevant set cut to the bucket, users with nothing
relevant in it left out.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt
import scipy.sparse as sp

from eventrec.model.aggregate import aggregate
from eventrec.model.metrics import ndcg_at_k, precision_at_k, recall_at_k, top_k
from eventrec.model.records import TYPE_BOOKING, TYPE_RATING, TYPE_SAVE, InteractionLog, pair_keys

__all__ = [
    "BUCKETS",
    "DEFAULT_CUT_FRACTIONS",
    "EventDates",
    "TimeCut",
    "bootstrap_difference",
    "bucket_of",
    "cut_instants",
    "rank_cut",
    "rank_shared",
    "time_cut",
    "time_cut_metrics",
]

SECONDS_PER_DAY = 86_400.0
DEFAULT_CUT_FRACTIONS = (0.7, 0.8, 0.9)
BUCKETS = ("0", "1-4", "5-19", "20+")
# Lower edge of each bucket, in interactions before the cut.
BUCKET_EDGES = np.array([0, 1, 5, 20])
# Scores of one batch stay near 64 MB of float64 (top_k copies them once more).
BATCH_CELLS = 8_000_000
MAX_BATCH_USERS = 1000

# Scores of a batch of users (indices of the log's user space), shape (len(users), n_events).
Scorer = Callable[[np.ndarray], np.ndarray]


@dataclass(frozen=True)
class EventDates:
    """What the catalogue says about each event index (NaN: unknown).

    Attributes
    ----------
    published_at, starts_at : ndarray of shape (n_events,), float64
        Seconds since the epoch.
    cancelled : ndarray of shape (n_events,), bool
    """

    published_at: npt.NDArray[np.float64]
    starts_at: npt.NDArray[np.float64]
    cancelled: npt.NDArray[np.bool_]

    @classmethod
    def unknown(cls, n_events: int) -> EventDates:
        nan = np.full(n_events, np.nan)
        return cls(nan, nan.copy(), np.zeros(n_events, dtype=bool))


@dataclass(frozen=True)
class TimeCut:
    """Who is evaluated at one cut, against what, and what each may be recommended.

    Attributes
    ----------
    cut : float
        ``T``, seconds since the epoch.
    horizon_end : float
        ``T + h``.
    train : InteractionLog
        Records before ``T`` (the log's index spaces).
    train_index : ndarray of int64
        Positions in the full log of ``train``'s records.
    candidates : ndarray of shape (n_events,), bool
    exclude : csr_matrix of shape (n_users, n_events), bool
    users : ndarray of int64
        Evaluated users (a record before ``T`` and something relevant), ascending.
    relevant : list of ndarray
        Relevant events of each evaluated user.
    new_users : ndarray of int64
        Users without a record before ``T`` but with something relevant, ascending.
    new_relevant : list of ndarray
    interactions_before : ndarray of shape (n_events,), int64
        Records of each event before ``T`` (the buckets' measure).
    """

    cut: float
    horizon_end: float
    train: InteractionLog
    train_index: npt.NDArray[np.int64]
    candidates: npt.NDArray[np.bool_]
    exclude: sp.csr_matrix
    users: npt.NDArray[np.int64]
    relevant: list[np.ndarray]
    new_users: npt.NDArray[np.int64]
    new_relevant: list[np.ndarray]
    interactions_before: npt.NDArray[np.int64]


def cut_instants(
    times: np.ndarray, fractions: Sequence[float] = DEFAULT_CUT_FRACTIONS
) -> list[float]:
    """Instants at the given fractions of the span of ``times`` (earliest to latest)."""
    if not len(times):
        raise ValueError("no interactions: no time span to cut")
    first, last = float(np.min(times)), float(np.max(times))
    return [first + float(f) * (last - first) for f in fractions]


def bucket_of(interactions: np.ndarray) -> npt.NDArray[np.int64]:
    """Index into :data:`BUCKETS` of each interaction count."""
    bucket: npt.NDArray[np.int64] = (
        np.searchsorted(BUCKET_EDGES, np.asarray(interactions), side="right") - 1
    ).astype(np.int64)
    return bucket


def _on_sale(
    log: InteractionLog, dates: EventDates, cut: float, horizon_end: float
) -> npt.NDArray[np.bool_]:
    times = log.records["time"].astype(np.float64)
    events = log.records["event"].astype(np.int64)
    seen_before = np.zeros(log.n_events, dtype=bool)
    seen_before[events[times < cut]] = True
    in_window = np.zeros(log.n_events, dtype=bool)
    in_window[events[(times >= cut) & (times < horizon_end)]] = True
    dated = ~np.isnan(dates.starts_at)
    published = np.where(np.isnan(dates.published_at), seen_before, dates.published_at < cut)
    with np.errstate(invalid="ignore"):
        upcoming = dates.starts_at > cut
    on_sale: npt.NDArray[np.bool_] = np.where(
        dated, published & upcoming & ~dates.cancelled, in_window & ~dates.cancelled
    )
    return on_sale


def _split_by_user(users: np.ndarray, events: np.ndarray) -> tuple[np.ndarray, list[np.ndarray]]:
    order = np.lexsort((events, users))
    users, events = users[order], events[order]
    unique, starts = np.unique(users, return_index=True)
    return unique.astype(np.int64), (np.split(events, starts[1:]) if len(unique) else [])


def time_cut(
    log: InteractionLog,
    cut: float,
    horizon_days: float = 30.0,
    *,
    raw_rating: np.ndarray | None = None,
    relevant_min_rating: float = 4.0,
    dates: EventDates | None = None,
) -> TimeCut:
    """The protocol's sets at one cut (see the module docstring).

    Parameters
    ----------
    log : InteractionLog
        Every interaction, before and after the cut.
    cut : float
        ``T`` in seconds since the epoch.
    horizon_days : float
        Length of the window after ``T`` whose interactions are relevant.
    raw_rating : ndarray of shape (len(log),), optional
        Each record's rating on its own scale (NaN where not a rating); default the
        records' 1..5.
    relevant_min_rating : float
        Lowest rating (raw scale) that makes an event relevant.
    dates : EventDates, optional
        Catalogue dates; without them candidates are the events interacted with in the
        window.
    """
    horizon_end = cut + horizon_days * SECONDS_PER_DAY
    times = log.records["time"].astype(np.float64)
    kinds = log.records["type"]
    before = times < cut
    train_index = np.flatnonzero(before).astype(np.int64)
    train = log.subset(before)
    candidates = _on_sale(log, dates or EventDates.unknown(log.n_events), cut, horizon_end)
    exclude = aggregate(train).hidden.tocsr().astype(bool)
    n_events = max(log.n_events, 1)

    window = (times >= cut) & (times < horizon_end)
    keys = pair_keys(log)
    interest = window & np.isin(kinds, (TYPE_BOOKING, TYPE_SAVE))
    ratings = np.flatnonzero(window & (kinds == TYPE_RATING))
    raw = log.records["value"].astype(np.float64) if raw_rating is None else raw_rating
    # The latest rating of a pair in the window decides (ties: the later record).
    order = np.lexsort((ratings, times[ratings], keys[ratings]))
    last = np.ones(len(order), dtype=bool)
    last[:-1] = keys[ratings][order][1:] != keys[ratings][order][:-1]
    latest = ratings[order][last]
    liked = latest[raw[latest] >= relevant_min_rating]
    relevant_keys = np.unique(np.concatenate([keys[interest], keys[liked]]))
    user = relevant_keys // n_events
    event = relevant_keys % n_events
    keep = candidates[event]
    if exclude.nnz and len(user):  # indexing by no pair gives no array
        keep &= ~np.asarray(exclude[user, event]).ravel().astype(bool)
    user, event = user[keep], event[keep]
    has_training = np.bincount(train.user, minlength=log.n_users) > 0
    known = has_training[user]
    users, relevant = _split_by_user(user[known], event[known])
    new_users, new_relevant = _split_by_user(user[~known], event[~known])
    interactions_before = np.bincount(train.records["event"], minlength=log.n_events)
    return TimeCut(
        cut=float(cut),
        horizon_end=float(horizon_end),
        train=train,
        train_index=train_index,
        candidates=candidates,
        exclude=exclude,
        users=users,
        relevant=relevant,
        new_users=new_users,
        new_relevant=new_relevant,
        interactions_before=interactions_before.astype(np.int64),
    )


def rank_cut(
    scorer: Scorer,
    users: np.ndarray,
    candidates: np.ndarray,
    exclude: sp.csr_matrix,
    k: int,
    progress: Callable[[int, int], None] | None = None,
) -> npt.NDArray[np.int64]:
    """Top-k candidates of shape (len(users), k) per user, excluded events masked."""
    n_events = len(candidates)
    batch_size = max(1, min(MAX_BATCH_USERS, BATCH_CELLS // max(n_events, 1)))
    recommended = np.full((len(users), k), -1, dtype=np.int64)
    outside = ~candidates
    for start in range(0, len(users), batch_size):
        batch = users[start : start + batch_size]
        scores = np.array(scorer(batch), dtype=np.float64)
        if scores.shape != (len(batch), n_events):
            raise ValueError(f"scored shape {scores.shape}, not {(len(batch), n_events)}")
        scores[:, outside] = -np.inf
        recommended[start : start + len(batch)] = top_k(scores, k, exclude=exclude[batch])
        if progress is not None:
            progress(start + len(batch), len(users))
    return recommended


def rank_shared(
    scores: np.ndarray,
    users: np.ndarray,
    candidates: np.ndarray,
    exclude: sp.csr_matrix,
    k: int,
) -> npt.NDArray[np.int64]:
    """:func:`rank_cut` of one score vector shared by every user, sorted once.

    Each user's top k is the shared order without the user's excluded events; ties are
    broken by event index, as :func:`top_k` breaks them.
    """
    eligible = np.flatnonzero(candidates & np.isfinite(scores))
    order = eligible[np.lexsort((eligible, -scores[eligible]))]
    rows = sp.csr_matrix(exclude[users])
    longest = int(np.diff(rows.indptr).max()) if len(users) else 0
    head = order[: k + longest]
    # Each user's first k events of the shared order that the user's exclusions leave.
    kept = ~rows[:, head].toarray().astype(bool)
    place = np.cumsum(kept, axis=1) - 1
    chosen = kept & (place < k)
    recommended = np.full((len(users), k), -1, dtype=np.int64)
    row, column = np.nonzero(chosen)
    recommended[row, place[row, column]] = head[column]
    return recommended


def time_cut_metrics(
    recommended: np.ndarray,
    relevant: list[np.ndarray],
    interactions_before: np.ndarray,
    k: int,
) -> dict[str, Any]:
    """Means of P, R, NDCG at k, and per bucket NDCG and recall at k with their counts.

    Returns
    -------
    dict with ``precision@k``, ``recall@k``, ``ndcg@k``, ``per_user_ndcg`` (ndarray, for a
    paired comparison) and ``buckets``: ``{name: {"ndcg@k", "recall@k", "relevant"}}``.
    """
    if not len(relevant):
        nan = float("nan")
        return {
            f"precision@{k}": nan,
            f"recall@{k}": nan,
            f"ndcg@{k}": nan,
            "per_user_ndcg": np.zeros(0),
            "buckets": {
                name: {f"ndcg@{k}": nan, f"recall@{k}": nan, "relevant": 0} for name in BUCKETS
            },
        }
    per_user_ndcg = ndcg_at_k(recommended, relevant, k)
    result: dict[str, Any] = {
        f"precision@{k}": float(np.mean(precision_at_k(recommended, relevant, k))),
        f"recall@{k}": float(np.mean(recall_at_k(recommended, relevant, k))),
        f"ndcg@{k}": float(np.mean(per_user_ndcg)),
        "per_user_ndcg": per_user_ndcg,
        "buckets": {},
    }
    for index, name in enumerate(BUCKETS):
        rows, cut_sets = [], []
        for row, events in enumerate(relevant):
            inside = events[bucket_of(interactions_before[events]) == index]
            if len(inside):
                rows.append(row)
                cut_sets.append(inside)
        count = int(sum(len(s) for s in cut_sets))
        if rows:
            chosen = recommended[np.array(rows)]
            ndcg = float(np.mean(ndcg_at_k(chosen, cut_sets, k)))
            recall = float(np.mean(recall_at_k(chosen, cut_sets, k)))
        else:
            ndcg = recall = float("nan")
        result["buckets"][name] = {f"ndcg@{k}": ndcg, f"recall@{k}": recall, "relevant": count}
    return result


def bootstrap_difference(
    first: np.ndarray,
    second: np.ndarray,
    n_resamples: int = 1000,
    confidence: float = 0.95,
    random_state: int = 0,
) -> tuple[float, float, float]:
    """Mean of ``first - second`` (paired per user) and its percentile bootstrap interval.

    Returns
    -------
    (mean difference, lower bound, upper bound)
    """
    difference = np.asarray(first, dtype=np.float64) - np.asarray(second, dtype=np.float64)
    if not len(difference):
        return float("nan"), float("nan"), float("nan")
    rng = np.random.default_rng(random_state)
    means = np.empty(n_resamples)
    step = max(1, 4_000_000 // len(difference))  # resamples per batch: ~32 MB of indices
    for start in range(0, n_resamples, step):
        count = min(step, n_resamples - start)
        samples = rng.integers(0, len(difference), size=(count, len(difference)))
        means[start : start + count] = difference[samples].mean(axis=1)
    tail = (1.0 - confidence) / 2.0
    low, high = np.quantile(means, [tail, 1.0 - tail])
    return float(difference.mean()), float(low), float(high)
