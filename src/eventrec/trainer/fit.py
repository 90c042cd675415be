"""One fit, store-free: a snapshot in, the arrays and metadata of a model version out.

Search and refit (``EventrecModel``), the content map over the catalog, trending scores,
a rating predictor's RMSE on held-back ratings, and the publish gate: a model is only
published when it beats popularity on the validation split, unless there are too few
validation users to tell (then it is published with ``gated: false``).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import numpy as np
import numpy.typing as npt

from eventrec.model.aggregate import aggregate
from eventrec.model.content import ContentMap, EventFeaturizer
from eventrec.model.errors import ModelFitError
from eventrec.model.metrics import rmse
from eventrec.model.rating import BiasedRatingPredictor
from eventrec.model.recommender import EventrecModel
from eventrec.model.records import (
    TYPE_BOOKING,
    TYPE_BOOKING_CANCELLED,
    TYPE_RATING,
    TYPE_SAVE,
    TYPE_VIEW,
    InteractionLog,
)
from eventrec.store.versions import event_content

__all__ = [
    "MIN_GATE_USERS",
    "FitOptions",
    "FittedVersion",
    "fit_version",
    "publish_gate",
    "trending_scores",
]

log = logging.getLogger("eventrec.trainer")

MIN_GATE_USERS = 50
SECONDS_PER_DAY = 86_400.0
# Trending: a booking counts fully, a save a little, a view barely; cancellations undo.
TRENDING_WEIGHTS = {
    TYPE_BOOKING: 1.0,
    TYPE_BOOKING_CANCELLED: -1.0,
    TYPE_SAVE: 0.3,
    TYPE_VIEW: 0.05,
}
# Events need this many users before their collaborative vector teaches the content map.
CONTENT_MIN_USERS = 3
RATING_HOLDOUT = 0.1
RATING_SAMPLE = 100_000
# Validation users scored per grid point shrink as the catalogue grows (cells per point).
VALIDATION_CELLS = 100_000_000


@dataclass(frozen=True)
class FitOptions:
    """How the trainer fits (settings, passed down)."""

    n_jobs: int = 2
    search_users: int | None = 20_000
    max_validation_users: int = 5_000
    max_factor_cells: int | None = 640_000_000
    trending_half_life_days: float = 7.0
    random_state: int = 0


@dataclass
class FittedVersion:
    """What one fit produced; ``publish`` says whether the gate lets it through."""

    arrays: dict[str, Any]
    metadata: dict[str, Any]
    publish: bool
    reason: str
    timings: dict[str, float] = field(default_factory=dict)


def publish_gate(
    n_validation_users: int, model_ndcg: float, popularity_ndcg: float
) -> tuple[bool, bool, str]:
    """(publish, gated, reason): publish only a model that beats popularity on validation.

    With fewer than :data:`MIN_GATE_USERS` validation users the comparison means nothing:
    publish, marked ``gated: false``.
    """
    if n_validation_users < MIN_GATE_USERS:
        return (
            True,
            False,
            f"{n_validation_users} validation users (< {MIN_GATE_USERS}): too few to compare "
            f"with popularity, published ungated",
        )
    if model_ndcg > popularity_ndcg:
        return (
            True,
            True,
            f"validation NDCG@10 {model_ndcg:.4f} beats popularity's {popularity_ndcg:.4f} "
            f"over {n_validation_users} users",
        )
    return (
        False,
        True,
        f"validation NDCG@10 {model_ndcg:.4f} does not beat popularity's "
        f"{popularity_ndcg:.4f} over {n_validation_users} users: keeping the current version",
    )


def trending_scores(
    log: InteractionLog, now: float | None = None, half_life_days: float = 7.0
) -> npt.NDArray[np.float32]:
    """Per event: recent bookings (minus cancellations), saves and views, decayed.

    Each record weighs ``TRENDING_WEIGHTS[type] * 0.5 ** (age_days / half_life_days)``;
    ``now`` defaults to the latest record, so a quiet week does not zero every score.
    Returns shape (n_events,), never negative.
    """
    if not len(log):
        return np.zeros(log.n_events, dtype=np.float32)
    times = log.records["time"].astype(np.float64)
    reference = float(times.max()) if now is None else float(now)
    kinds = log.records["type"]
    weight = np.zeros(len(log), dtype=np.float64)
    for kind, value in TRENDING_WEIGHTS.items():
        weight[kinds == kind] = value
    age_days = np.maximum(reference - times, 0.0) / SECONDS_PER_DAY
    weight *= 0.5 ** (age_days / half_life_days)
    scores = np.bincount(log.records["event"], weights=weight, minlength=log.n_events)
    return np.maximum(scores, 0.0).astype(np.float32)


def fit_content(
    event_ids: Sequence[str],
    documents: Mapping[str, bytes],
    item_factors: np.ndarray,
    popularity: np.ndarray,
) -> tuple[EventFeaturizer, ContentMap, dict[str, Any]]:
    """The content featurizer and ridge map of a version, taught on well-known events."""
    contents = []
    for event_id in event_ids:
        document = documents.get(event_id)
        try:
            contents.append(event_content(document) if document is not None else {})
        except (ValueError, TypeError):
            contents.append({})
    featurizer = EventFeaturizer(min_count=2)
    features = featurizer.fit_transform(contents)
    teaching = np.flatnonzero(popularity >= CONTENT_MIN_USERS)
    if len(teaching) < 2:
        teaching = np.flatnonzero(popularity > 0)
    content_map = ContentMap(alpha=1.0).fit(features[teaching], item_factors[teaching])
    described = sum(1 for c in contents if c)
    return featurizer, content_map, {"events_described": described, "events_taught": len(teaching)}


def _rating_errors(log: InteractionLog, random_state: int) -> dict[str, float | None]:
    """RMSE of the rating predictor and of its biases alone on a random tenth of ratings.

    At most :data:`RATING_SAMPLE` ratings take part: enough for a stable RMSE, and the
    check stays a small part of the cycle however many ratings there are.
    """
    # Only rating records decide the latest rating of a pair: aggregate just those.
    ratings = aggregate(log.subset(log.records["type"] == TYPE_RATING))
    n = len(ratings.rating_value)
    if n < 20:
        return {"rmse": None, "rmse_bias_baseline": None, "ratings": n}
    rng = np.random.default_rng(random_state)
    sample = np.arange(n)
    if n > RATING_SAMPLE:
        sample = np.sort(rng.choice(n, size=RATING_SAMPLE, replace=False))
    # Compact indices: the predictor's sweeps cost per index, rated or not.
    _, users = np.unique(ratings.rating_user[sample], return_inverse=True)
    _, events = np.unique(ratings.rating_event[sample], return_inverse=True)
    values = ratings.rating_value[sample].astype(np.float64)
    held = rng.random(len(values)) < RATING_HOLDOUT
    if not held.any() or held.all():
        return {"rmse": None, "rmse_bias_baseline": None, "ratings": n}
    errors: dict[str, float | None] = {"ratings": n}
    for name, n_factors in (("rmse", 10), ("rmse_bias_baseline", 0)):
        predictor = BiasedRatingPredictor(n_factors=n_factors, random_state=random_state)
        predictor.fit(
            users[~held],
            events[~held],
            values[~held],
            n_users=int(users.max()) + 1,
            n_events=int(events.max()) + 1,
        )
        errors[name] = rmse(predictor.predict(users[held], events[held]), values[held])
    return errors


def _finite(value: float) -> float | None:
    return None if not np.isfinite(value) else float(value)


def version_arrays(
    model: EventrecModel,
    content_map: ContentMap,
    trending: np.ndarray,
    event_ids: Sequence[str],
) -> dict[str, Any]:
    """The arrays a model version stores (see ``store.versions.ARRAY_DTYPES``)."""
    return {
        "item_factors": model.item_factors_,
        "singular_values": model.svd_.singular_values_,
        "column_scale": model.column_scale_,
        "popularity": model.popularity_,
        "trending": trending,
        "content_coef": content_map.coef_,
        "event_ids": np.array(event_ids, dtype=np.str_),
    }


def fit_version(
    log: InteractionLog,
    event_ids: Sequence[str],
    documents: Mapping[str, bytes],
    options: FitOptions,
    now: float | None = None,
) -> FittedVersion:
    """Fit a model version from a snapshot.

    ``now`` anchors the trending decay (the snapshot's time); by default the latest record.

    Parameters
    ----------
    log : InteractionLog
    event_ids : sequence of str
        ``event_ids[i]`` is event index ``i``; at least ``log.n_events`` long.
    documents : mapping event_id -> stored event JSON
        The catalog, for the content map (events without one get only the bias feature).
    options : FitOptions

    Raises
    ------
    ModelFitError
        Too little data, or a numerical failure: nothing may be published.
    """
    timings: dict[str, float] = {}
    started = time.perf_counter()
    event_ids = list(event_ids[: log.n_events])
    if len(event_ids) != log.n_events:
        raise ModelFitError(f"{len(event_ids)} event ids for {log.n_events} events")
    validation_users = max(
        min(options.max_validation_users, VALIDATION_CELLS // max(log.n_events, 1)), 1000
    )
    model = EventrecModel(
        n_jobs=options.n_jobs,
        random_state=options.random_state,
        max_validation_users=min(validation_users, options.max_validation_users),
        search_users=options.search_users,
        search_n_iter=2,
        max_factor_cells=options.max_factor_cells,
    )
    model.fit(log)
    timings["search_and_refit"] = time.perf_counter() - started
    timings.update(model.timings_)

    step = time.perf_counter()
    featurizer, content_map, content_info = fit_content(
        event_ids, documents, model.item_factors_, model.popularity_
    )
    timings["content_map"] = time.perf_counter() - step

    step = time.perf_counter()
    trending = trending_scores(log, now=now, half_life_days=options.trending_half_life_days)
    rating = _rating_errors(log, options.random_state)
    timings["trending_and_rating"] = time.perf_counter() - step

    n_validation = model.n_validation_users_
    model_ndcg = model.validation_ndcg_
    popularity_ndcg = model.popularity_validation_ndcg_
    publish, gated, reason = publish_gate(n_validation, model_ndcg, popularity_ndcg)
    timings["fit_total"] = time.perf_counter() - started
    popularity_metrics = model.popularity_validation_metrics_
    metadata: dict[str, Any] = {
        "trained_at": datetime.now(UTC).isoformat().replace("+00:00", "Z"),
        "params": model.params_,
        "search": {**model.search_, "grid": model.search_results_, "winner": model.params_},
        "data": {
            "users": int(log.n_users),
            "users_with_interactions": int(np.count_nonzero(np.bincount(log.user))),
            "events": int(log.n_events),
            "interactions": len(log),
            "validation_users": int(n_validation),
        },
        "metrics": {
            "validation_ndcg@10": _finite(model_ndcg),
            "popularity_validation_ndcg@10": _finite(popularity_ndcg),
            "precision@10": _finite(model.validation_metrics_.get("precision@10", np.nan)),
            "recall@10": _finite(model.validation_metrics_.get("recall@10", np.nan)),
            "popularity_precision@10": _finite(popularity_metrics.get("precision@10", np.nan)),
            "popularity_recall@10": _finite(popularity_metrics.get("recall@10", np.nan)),
            **rating,
        },
        "gated": gated,
        "gate": reason,
        "model": {"now": float(model.now_), "n_factors": int(model.n_factors_)},
        "content": {
            "featurizer": featurizer.to_dict(),
            "alpha": float(content_map.alpha),
            **content_info,
        },
        "trending": {"half_life_days": options.trending_half_life_days},
        "timings": {name: round(seconds, 3) for name, seconds in timings.items()},
    }
    arrays = version_arrays(model, content_map, trending, event_ids)
    return FittedVersion(arrays, metadata, publish, reason, timings)
