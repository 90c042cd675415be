"""The planted truth of a synthetic platform as plain arrays, and the oracle that ranks by it.

Pure numpy, no I/O but :meth:`PlantedTastes.save` / :meth:`PlantedTastes.load` (an
``.npz`` read with ``allow_pickle=False``), so an evaluation can load a platform's truth
next to its files and call :func:`oracle_scores` like any model's scoring function.
"""

from __future__ import annotations

from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

Float = npt.NDArray[np.float64]
Int = npt.NDArray[np.int64]

DAY = 86_400
# How sharply latent affinity falls off with the angle between user and event vectors.
LATENT_SHARPNESS = 5.0
TRUTH_FILE = "truth.npz"


def budget_fit(price: Float, budget_max: Float) -> Float:
    """1 within budget, fading fast above it; free events always fit (broadcasts)."""
    ratio = price / budget_max
    result: Float = np.where(ratio <= 1.0, 1.0, np.exp(-2.5 * (np.maximum(ratio, 1.0) - 1.0)))
    return result


def taste(
    category_affinity: Float,
    event_category: Int,
    user_latent: Float,
    event_latent: Float,
    latent_share: float,
) -> Float:
    """Category affinity^(1 − s) × latent affinity^s: shape (n_users, n_events), in (0, 1].

    ``category_affinity`` is (n_users, n_categories); computed as one ``exp`` of the logs.
    """
    log_visible = np.log(category_affinity)[:, event_category]
    cosine = user_latent @ event_latent.T
    result: Float = np.exp(
        (1.0 - latent_share) * log_visible + latent_share * LATENT_SHARPNESS * (cosine - 1.0)
    )
    return result


def window_mass(near_days: Float, far_days: Float, lead_days: Float, mean_days: float) -> Float:
    """Share of an event's engagement made between ``near_days`` and ``far_days`` before it.

    Engagement is exponential in days before the start (mean ``mean_days``), truncated to
    the ``lead_days`` the event was on sale.
    """
    near = np.clip(near_days, 0.0, lead_days)
    far = np.clip(far_days, 0.0, lead_days)
    total = 1.0 - np.exp(-lead_days / mean_days)
    mass: Float = (np.exp(-near / mean_days) - np.exp(-far / mean_days)) / np.where(
        total > 0, total, 1.0
    )
    result: Float = np.maximum(mass, 0.0)
    return result


@dataclass(frozen=True)
class PlantedTastes:
    """What the generator planted, enough to recompute every propensity at any instant.

    Users and events are rows in the order of ``user_ids`` and ``event_ids``; cities and
    categories are the generator's own indices (only compared, never named).
    """

    user_ids: npt.NDArray[np.str_]
    event_ids: npt.NDArray[np.str_]
    latent_share: float
    booking_days: float
    user_category_affinity: Float  # (n_users, n_categories)
    user_latent: Float  # (n_users, n_dimensions), unit rows
    user_city: Int
    user_budget: Float
    event_category: Int
    event_latent: Float  # (n_events, n_dimensions), unit rows
    event_city: Int
    event_price: Float
    event_popularity: Float
    event_starts_at: Int  # epoch seconds
    event_published_at: Int
    city_reach: Float  # (n_cities, n_cities): how far users travel from one to the other

    def save(self, path: str | Path) -> Path:
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        arrays: dict[str, Any] = {
            item.name: np.asarray(getattr(self, item.name)) for item in fields(self)
        }
        with path.open("wb") as out:
            np.savez_compressed(out, **arrays)
        return path

    @classmethod
    def load(cls, path: str | Path) -> PlantedTastes:
        with np.load(Path(path), allow_pickle=False) as arrays:
            values = {item.name: arrays[item.name] for item in fields(cls)}
        values["latent_share"] = float(values["latent_share"])
        values["booking_days"] = float(values["booking_days"])
        return cls(**values)


def propensities(truth: PlantedTastes, users: Int, events: Int) -> Float:
    """The planted propensity of user rows ``users`` for event rows ``events``."""
    result: Float = (
        taste(
            truth.user_category_affinity[users],
            truth.event_category[events],
            truth.user_latent[users],
            truth.event_latent[events],
            truth.latent_share,
        )
        * truth.city_reach[truth.user_city[users]][:, truth.event_city[events]]
        * budget_fit(truth.event_price[events][None, :], truth.user_budget[users][:, None])
        * truth.event_popularity[events][None, :]
    )
    return result


def oracle_scores(
    truth: PlantedTastes,
    user_ids: list[str],
    event_ids: list[str],
    at: float,
    horizon_days: float = 30.0,
) -> Float:
    """Scores of shape (len(user_ids), len(event_ids)): the expected bookings in the horizon.

    Planted propensity × the share of the event's bookings made in [``at``, ``at`` +
    ``horizon_days``) (its last days on sale count most; nothing once it has started or
    before it was announced). Users or events the truth does not know score 0.
    """
    user_row = {user_id: row for row, user_id in enumerate(truth.user_ids.tolist())}
    event_row = {event_id: row for row, event_id in enumerate(truth.event_ids.tolist())}
    users = np.array([user_row.get(u, -1) for u in user_ids], dtype=np.int64)
    events = np.array([event_row.get(e, -1) for e in event_ids], dtype=np.int64)
    scores = np.zeros((len(users), len(events)))
    known_users, known_events = np.flatnonzero(users >= 0), np.flatnonzero(events >= 0)
    if not len(known_users) or not len(known_events):
        return scores
    rows = events[known_events]
    starts = truth.event_starts_at[rows]
    lead = (starts - truth.event_published_at[rows]) / DAY
    mass = window_mass(
        (starts - at - horizon_days * DAY) / DAY, (starts - at) / DAY, lead, truth.booking_days
    )
    # Not on sale at `at`: announced later, or already started.
    mass = np.where((truth.event_published_at[rows] <= at) & (starts > at), mass, 0.0)
    scores[np.ix_(known_users, known_events)] = (
        propensities(truth, users[known_users], rows) * mass[None, :]
    )
    return scores
