"""From interaction records to per-(user, event) confidences, hidden events and ratings.

Rules, per (user, event) pair ("earlier"/"later" is the order records were applied, i.e.
their position in the log; ``time`` is ``occurred_at``):

* **views** add ``view * min(count, view_saturation)``, where ``count`` sums the
  ``value`` of the pair's view records (a compacted view record stands for ``value``
  views). The linear-then-flat form is used because it is exactly preserved by
  compaction and easy to reason about: the fourth look at an event says nothing new.
* **saves** add ``save`` once, however often the event was saved.
* **bookings** add ``booking`` once if at least one booking of the pair is not cancelled
  (quantity is ignored). Cancellations are matched in (time, position) order. A
  ``booking_cancelled`` record cancels the latest uncancelled booking of the pair with
  the same ``aux`` (booking hash), whichever of the two came first; if its hash matches
  bookings that are all cancelled already, it is a repeated cancellation and does
  nothing; with ``aux == 0`` or no booking with that hash, it cancels the latest
  uncancelled booking of the pair earlier in (time, position); with none, it does nothing.
* **ratings**: only the latest valid rating (value 1..5) counts, latest by ``time``
  with ties broken by the later position; it adds ``rating_weights[value - 1]``.
* **dismiss** hides the event and zeroes the pair's confidence, whatever else happened.
* **time decay** (``half_life_days``): each component is multiplied by
  ``0.5 ** (age_days / half_life_days)`` where ``age`` is ``now`` minus the time of the
  component's latest record (latest view, latest save, latest uncancelled booking, the
  winning rating), never negative.

Hidden events (never to be recommended to that user again) are those booked and not
cancelled, dismissed, or rated.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import scipy.sparse as sp

from eventrec.model.records import (
    MAX_VALUE,
    TYPE_BOOKING,
    TYPE_BOOKING_CANCELLED,
    TYPE_DISMISS,
    TYPE_RATING,
    TYPE_SAVE,
    TYPE_VIEW,
    InteractionLog,
    pair_keys,
)

__all__ = [
    "Aggregate",
    "InteractionWeights",
    "aggregate",
    "compact",
    "compact_row",
]

SECONDS_PER_DAY = 86400.0
POSITIVE_RATING = 4


@dataclass(frozen=True)
class InteractionWeights:
    """How much confidence each kind of interaction gives.

    Parameters
    ----------
    view : float
        Confidence per view, up to ``view_saturation`` views.
    view_saturation : int
        Number of views beyond which more views add nothing (1..255).
    save : float
        Confidence of having saved the event.
    booking : float
        Confidence of an uncancelled booking.
    rating_weights : tuple of 5 floats
        Confidence of the latest rating 1..5; low ratings give little or none.
    half_life_days : float or None
        Time decay half-life relative to ``now``; ``None`` means no decay.
    """

    view: float = 1.0
    view_saturation: int = 3
    save: float = 2.0
    booking: float = 5.0
    rating_weights: tuple[float, float, float, float, float] = field(
        default=(0.0, 0.0, 1.0, 3.0, 5.0)
    )
    half_life_days: float | None = None

    def __post_init__(self) -> None:
        if len(self.rating_weights) != 5:
            raise ValueError(f"rating_weights needs 5 values, got {len(self.rating_weights)}")
        weights = (self.view, self.save, self.booking, *self.rating_weights)
        if not all(np.isfinite(w) and w >= 0.0 for w in weights):
            raise ValueError(f"weights must be finite and non-negative: {self}")
        if not 1 <= self.view_saturation <= MAX_VALUE:
            raise ValueError(f"view_saturation must be in 1..{MAX_VALUE}")
        if self.half_life_days is not None and not self.half_life_days > 0.0:
            raise ValueError("half_life_days must be positive or None")

    def to_dict(self) -> dict[str, Any]:
        """Plain values (JSON-serialisable) for storing with a model."""
        values = dataclasses.asdict(self)
        values["rating_weights"] = list(self.rating_weights)
        return values

    @classmethod
    def from_dict(cls, values: dict[str, Any]) -> InteractionWeights:
        """Inverse of :meth:`to_dict`."""
        values = dict(values)
        rating_weights = tuple(float(w) for w in values.pop("rating_weights"))
        if len(rating_weights) != 5:
            raise ValueError(f"rating_weights needs 5 values, got {len(rating_weights)}")
        return cls(rating_weights=rating_weights, **values)


@dataclass(frozen=True)
class Aggregate:
    """What the records of a log amount to, per (user, event) pair.

    Attributes
    ----------
    confidence : csr_matrix of shape (n_users, n_events), float32
        Non-negative confidences; pairs with none are not stored.
    hidden : csr_matrix of shape (n_users, n_events), bool
        Events never to show the user again (booked, dismissed or rated).
    booked : csr_matrix of shape (n_users, n_events), bool
        Pairs with at least one uncancelled booking.
    rating_user, rating_event : ndarray of shape (n_ratings,), int32
        Pairs with a rating, sorted by user then event.
    rating_value : ndarray of shape (n_ratings,), uint8
        The latest rating of each pair, 1..5.
    rating_time : ndarray of shape (n_ratings,), uint32
        When that rating was given.
    positive_user, positive_event : ndarray of shape (n_positive,), int32
        Pairs with a positive signal (save, uncancelled booking, latest rating >= 4) and
        no dismissal, sorted by user then event.
    positive_time : ndarray of shape (n_positive,), uint32
        Time of the pair's latest positive record.
    """

    confidence: sp.csr_matrix
    hidden: sp.csr_matrix
    booked: sp.csr_matrix
    rating_user: np.ndarray
    rating_event: np.ndarray
    rating_value: np.ndarray
    rating_time: np.ndarray
    positive_user: np.ndarray
    positive_event: np.ndarray
    positive_time: np.ndarray


def _uncancelled_bookings(pair_key: np.ndarray, records: np.ndarray) -> np.ndarray:
    """Mask of booking records that no later cancellation cancels (see module rules)."""
    kind = records["type"]
    uncancelled: np.ndarray = kind == TYPE_BOOKING
    cancel_positions = np.flatnonzero(kind == TYPE_BOOKING_CANCELLED)
    if not len(cancel_positions):
        return uncancelled
    # Cancellations are rare: match them one by one, only against their own pairs' bookings.
    booking_positions = np.flatnonzero(uncancelled & np.isin(pair_key, pair_key[cancel_positions]))
    bookings_of_pair: dict[int, list[int]] = {}
    for position, key in zip(
        booking_positions.tolist(), pair_key[booking_positions].tolist(), strict=True
    ):
        bookings_of_pair.setdefault(key, []).append(position)
    aux = records["aux"]
    time = records["time"]
    # Arrival order must not matter (a routed message may arrive late): cancellations are
    # matched in (time, position) order; one naming its booking cancels it whenever sent.
    cancel_positions = cancel_positions[np.lexsort((cancel_positions, time[cancel_positions]))]
    for position, key in zip(
        cancel_positions.tolist(), pair_key[cancel_positions].tolist(), strict=True
    ):
        moment = (int(time[position]), position)
        pair_bookings = bookings_of_pair.get(key, [])
        booking_hash = int(aux[position])
        same_booking = (
            [b for b in pair_bookings if int(aux[b]) == booking_hash] if booking_hash else []
        )
        candidates = same_booking or [b for b in pair_bookings if (int(time[b]), b) < moment]
        live = sorted((b for b in candidates if uncancelled[b]), key=lambda b: (int(time[b]), b))
        if live:
            uncancelled[live[-1]] = False
    return uncancelled


def _winning_ratings(pair_key: np.ndarray, records: np.ndarray) -> np.ndarray:
    """Positions of each pair's latest valid rating (by time, then position)."""
    value = records["value"]
    positions = np.flatnonzero((records["type"] == TYPE_RATING) & (value >= 1) & (value <= 5))
    # lexsort is stable, so equal (pair, time) keep log order and the last one wins.
    order = np.lexsort((records["time"][positions], pair_key[positions]))
    positions = positions[order]
    keys = pair_key[positions]
    is_last = np.ones(len(positions), dtype=bool)
    is_last[:-1] = keys[1:] != keys[:-1]
    winners: np.ndarray = positions[is_last]
    return winners


def _decay(times: np.ndarray, now: float, half_life_days: float | None) -> np.ndarray:
    if half_life_days is None:
        return np.ones(len(times), dtype=np.float64)
    age_days = np.maximum(now - times.astype(np.float64), 0.0) / SECONDS_PER_DAY
    decay: np.ndarray = np.exp2(-age_days / half_life_days)
    return decay


def _pairs_to_csr(
    user: np.ndarray, event: np.ndarray, values: np.ndarray, shape: tuple[int, int]
) -> sp.csr_matrix:
    """CSR from pairs already sorted by (user, event) with no duplicates."""
    indptr = np.zeros(shape[0] + 1, dtype=np.int64)
    np.cumsum(np.bincount(user, minlength=shape[0]), out=indptr[1:])
    matrix = sp.csr_matrix((values, event.astype(np.int32), indptr), shape=shape)
    matrix.has_sorted_indices = True
    return matrix


def aggregate(
    log: InteractionLog, weights: InteractionWeights | None = None, now: float | None = None
) -> Aggregate:
    """Turn a log's records into confidences, hidden events and latest ratings.

    Parameters
    ----------
    log : InteractionLog
        All records; per user in applied order.
    weights : InteractionWeights, optional
        Defaults to ``InteractionWeights()``.
    now : float, optional
        Reference time (seconds since the epoch) for decay; defaults to the log's
        latest time. Ignored without ``half_life_days``.

    Returns
    -------
    Aggregate
    """
    weights = weights or InteractionWeights()
    shape = (log.n_users, log.n_events)
    records = log.records
    n_events = max(log.n_events, 1)
    pair_key = pair_keys(log)
    if now is None:
        now = float(records["time"].max()) if len(records) else 0.0

    order = np.argsort(pair_key, kind="stable")
    sorted_key = pair_key[order]
    starts_pair = np.ones(len(order), dtype=bool)
    starts_pair[1:] = sorted_key[1:] != sorted_key[:-1]
    pair_starts = np.flatnonzero(starts_pair)
    unique_keys = sorted_key[pair_starts]
    n_pairs = len(unique_keys)
    pair_of_sorted = np.cumsum(starts_pair) - 1
    pair_user = (unique_keys // n_events).astype(np.int32)
    pair_event = (unique_keys % n_events).astype(np.int32)

    kind = records["type"][order]
    time = records["time"][order].astype(np.int64)

    def count_per_pair(mask: np.ndarray, amount: np.ndarray | None = None) -> np.ndarray:
        counted = mask if amount is None else np.where(mask, amount, 0)
        return np.bincount(pair_of_sorted, weights=counted, minlength=n_pairs)

    def latest_time(mask: np.ndarray) -> np.ndarray:
        if not n_pairs:
            return np.zeros(0, dtype=np.int64)
        result: np.ndarray = np.maximum.reduceat(np.where(mask, time, 0), pair_starts)
        return result

    is_view = kind == TYPE_VIEW
    view_count = count_per_pair(is_view, records["value"][order])
    is_save = kind == TYPE_SAVE
    has_save = count_per_pair(is_save) > 0
    dismissed = count_per_pair(kind == TYPE_DISMISS) > 0
    live_booking = _uncancelled_bookings(pair_key, records)[order]
    booked = count_per_pair(live_booking) > 0

    rating_positions = _winning_ratings(pair_key, records)
    rating_pairs = np.searchsorted(unique_keys, pair_key[rating_positions])
    rating_value = np.zeros(n_pairs, dtype=np.int64)
    rating_value[rating_pairs] = records["value"][rating_positions]
    rating_time = np.zeros(n_pairs, dtype=np.int64)
    rating_time[rating_pairs] = records["time"][rating_positions]
    has_rating = rating_value > 0

    half_life = weights.half_life_days
    view_part = (
        weights.view
        * np.minimum(view_count, weights.view_saturation)
        * _decay(latest_time(is_view), now, half_life)
    )
    save_part = weights.save * has_save * _decay(latest_time(is_save), now, half_life)
    booking_part = weights.booking * booked * _decay(latest_time(live_booking), now, half_life)
    rating_table = np.array((0.0, *weights.rating_weights))
    rating_part = rating_table[rating_value] * _decay(rating_time, now, half_life)
    confidence = (view_part + save_part + booking_part + rating_part) * ~dismissed

    stored = confidence > 0
    hidden = booked | dismissed | has_rating
    positive = ~dismissed & (booked | has_save | (rating_value >= POSITIVE_RATING))
    positive_time = np.maximum(
        np.maximum(np.where(booked, latest_time(live_booking), 0), latest_time(is_save)),
        np.where(rating_value >= POSITIVE_RATING, rating_time, 0),
    )
    true = np.ones(n_pairs, dtype=bool)
    return Aggregate(
        confidence=_pairs_to_csr(
            pair_user[stored], pair_event[stored], confidence[stored].astype(np.float32), shape
        ),
        hidden=_pairs_to_csr(pair_user[hidden], pair_event[hidden], true[hidden], shape),
        booked=_pairs_to_csr(pair_user[booked], pair_event[booked], true[booked], shape),
        rating_user=pair_user[has_rating],
        rating_event=pair_event[has_rating],
        rating_value=rating_value[has_rating].astype(np.uint8),
        rating_time=rating_time[has_rating].astype(np.uint32),
        positive_user=pair_user[positive],
        positive_event=pair_event[positive],
        positive_time=positive_time[positive].astype(np.uint32),
    )


def compact(log: InteractionLog) -> InteractionLog:
    """The same log with fewer records and the same :func:`aggregate` result.

    Each pair's view records collapse into one at the position of its last view
    (``value`` = summed count capped at 255, ``time`` = latest view time); rating records
    other than each pair's winning rating are dropped; everything else stays in order.
    Equality of aggregates needs ``view_saturation <= 255``, which weights enforce.

    Parameters
    ----------
    log : InteractionLog

    Returns
    -------
    InteractionLog
        Records in their original relative order, per user.
    """
    records = log.records
    pair_key = pair_keys(log)
    kind = records["type"]
    is_view = kind == TYPE_VIEW
    keep = ~is_view & (kind != TYPE_RATING)
    keep[_winning_ratings(pair_key, records)] = True

    compacted = records.copy()
    view_positions = np.flatnonzero(is_view)
    if len(view_positions):
        # Positions ascend within each pair after this stable sort by pair.
        view_positions = view_positions[np.argsort(pair_key[view_positions], kind="stable")]
        view_keys = pair_key[view_positions]
        starts = np.ones(len(view_positions), dtype=bool)
        starts[1:] = view_keys[1:] != view_keys[:-1]
        group_starts = np.flatnonzero(starts)
        group_ends = np.append(group_starts[1:], len(view_positions)) - 1
        last_positions = view_positions[group_ends]
        total = np.add.reduceat(records["value"][view_positions].astype(np.int64), group_starts)
        compacted["value"][last_positions] = np.minimum(total, MAX_VALUE)
        compacted["time"][last_positions] = np.maximum.reduceat(
            records["time"][view_positions], group_starts
        )
        keep[last_positions] = True
    return InteractionLog(log.user[keep], compacted[keep], log.n_users, log.n_events)


def compact_row(records: np.ndarray, n_events: int | None = None) -> np.ndarray:
    """:func:`compact` for one user's row of records (in applied order).

    Parameters
    ----------
    records : ndarray of shape (n_records,), RECORD_DTYPE
    n_events : int, optional
        Size of the event index space; defaults to the largest event index + 1.

    Returns
    -------
    ndarray of shape (n_kept,), RECORD_DTYPE
    """
    if n_events is None:
        n_events = int(records["event"].max()) + 1 if len(records) else 0
    user = np.zeros(len(records), dtype=np.int32)
    compacted: np.ndarray = compact(InteractionLog(user, records, 1, n_events)).records
    return compacted
