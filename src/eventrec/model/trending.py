"""Trending: recent bookings, saves and views per event, decayed to an instant."""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

from eventrec.model.records import (
    TYPE_BOOKING,
    TYPE_BOOKING_CANCELLED,
    TYPE_SAVE,
    TYPE_VIEW,
    InteractionLog,
)

__all__ = ["TRENDING_WEIGHTS", "trending_scores"]

SECONDS_PER_DAY = 86_400.0
# Trending: a booking counts fully, a save a little, a view barely; cancellations undo.
TRENDING_WEIGHTS = {
    TYPE_BOOKING: 1.0,
    TYPE_BOOKING_CANCELLED: -1.0,
    TYPE_SAVE: 0.3,
    TYPE_VIEW: 0.05,
}


def trending_scores(
    log: InteractionLog, now: float | None = None, half_life_days: float = 7.0
) -> npt.NDArray[np.float32]:
    """Per event: recent bookings (minus cancellations), saves and views, decayed.

    Each record weighs ``TRENDING_WEIGHTS[type] * 0.5 ** (age_days / half_life_days)``;
    ``now`` defaults to the latest record, so a quiet week does not zero every score.
    A record after ``now`` (within the consumer's clock-skew allowance) counts as fresh,
    never as older. Returns shape (n_events,), never negative.
    """
    if not len(log):
        return np.zeros(log.n_events, dtype=np.float32)
    times = log.records["time"].astype(np.float64)
    reference = log.latest_time() if now is None else float(now)
    kinds = log.records["type"]
    weight = np.zeros(len(log), dtype=np.float64)
    for kind, value in TRENDING_WEIGHTS.items():
        weight[kinds == kind] = value
    age_days = np.maximum(reference - times, 0.0) / SECONDS_PER_DAY
    weight *= 0.5 ** (age_days / half_life_days)
    scores = np.bincount(log.records["event"], weights=weight, minlength=log.n_events)
    return np.maximum(scores, 0.0).astype(np.float32)
