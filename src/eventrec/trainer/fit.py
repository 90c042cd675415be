"""One fit, store-free: a snapshot in, the arrays and metadata of a model version out.

Validation replays time inside the training data: a cut ``validation_days`` before the
snapshot's latest interaction, the protocol of ``eventrec evaluate --split time``
(:mod:`eventrec.model.timecut`: candidates on sale at the cut, what users booked, saved
or rated well in the days after it). The search (``EventrecSearch``) picks its
configuration there; that configuration is then fitted on the records before the cut and
scored as serving would answer at the cut (content-mapped vectors of new events
included), beside trending (its half-life tuned one window earlier) and the current
version's configuration refitted on the same records. The gate publishes only a version
that beats trending and is not worse than the current configuration, each by a paired
bootstrap over the validation users at 95 %; with no current version, or one of an older
kind, only trending gates; with too few validation users it publishes ``gated: false``.
What is published is the validated configuration refitted on all data, with a content map
and trending at the snapshot's end, and the blend with the weight of ``new`` raised at the
snapshot's clock (:func:`~eventrec.model.hybrid.expose_blend`: never-touched events on
sale get, in the top 10 of users with a record, the exposure content alone would give
them; the gate judges the blend raised the same way at the cut).
"""

from __future__ import annotations

import copy
import json
import logging
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import numpy as np

from eventrec.evaluation.hybrid import AtCut, HybridEventrec
from eventrec.evaluation.time_protocol import (
    ServedEventrec,
    ServedOptions,
    TimeContext,
    TimeModel,
    TimePopularity,
    Trending,
    documents_at,
    rank,
)
from eventrec.model.aggregate import InteractionWeights, aggregate
from eventrec.model.blend import HybridBlend
from eventrec.model.content_map import ContentMap
from eventrec.model.errors import ModelFitError
from eventrec.model.hybrid import blend_metadata, collaborative_only, fit_blend
from eventrec.model.hybrid_features import TextModel, event_text
from eventrec.model.metrics import rmse
from eventrec.model.rating import BiasedRatingPredictor
from eventrec.model.recommender import EventrecModel
from eventrec.model.records import (
    TYPE_RATING,
    InteractionLog,
)
from eventrec.model.search import EventrecSearch
from eventrec.model.timecut import (
    EventDates,
    TimeCut,
    bootstrap_difference,
    time_cut,
    time_cut_metrics,
)
from eventrec.model.trending import trending_scores
from eventrec.model.version import ServedModel, fit_served

__all__ = [
    "MIN_GATE_USERS",
    "MODEL_KIND",
    "Comparison",
    "FitOptions",
    "FittedVersion",
    "event_dates",
    "fit_version",
    "publish_gate",
    "trending_scores",
]

log = logging.getLogger("eventrec.trainer")

MIN_GATE_USERS = 50
# Versions whose metadata carry this kind were validated and gated on a time cut.
MODEL_KIND = "hybrid: pure_svd+content_map+tfidf+context, learned blend, time-gated"
# Earlier kinds whose configuration (factors, weights) the gate still compares with.
EARLIER_KINDS = ("pure_svd+content_map, time-gated",)
# The validation users whose relevant pairs teach the blend; the others judge it.
BLEND_SHARE = 0.5
GATE_CONFIDENCE = 0.95
GATE_RESAMPLES = 1000
SECONDS_PER_DAY = 86_400.0
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
    validation_days: float = 7.0
    min_records: int = 1
    hide_viewed: bool = False
    random_state: int = 0


@dataclass
class FittedVersion:
    """What one fit produced; ``publish`` says whether the gate lets it through."""

    arrays: dict[str, Any]
    metadata: dict[str, Any]
    publish: bool
    reason: str
    timings: dict[str, float] = field(default_factory=dict)


@dataclass(frozen=True)
class Comparison:
    """Validation NDCG@10 of the model against another, paired per user, with its interval."""

    against: str
    model_ndcg: float
    other_ndcg: float
    difference: float
    low: float
    high: float

    @classmethod
    def of(cls, against: str, model: np.ndarray, other: np.ndarray, seed: int) -> Comparison:
        difference, low, high = bootstrap_difference(
            model, other, GATE_RESAMPLES, GATE_CONFIDENCE, seed
        )
        return cls(against, float(np.mean(model)), float(np.mean(other)), difference, low, high)

    def to_dict(self) -> dict[str, Any]:
        return {
            "against": self.against,
            "ndcg@10": _finite(self.model_ndcg),
            "other_ndcg@10": _finite(self.other_ndcg),
            "difference": _finite(self.difference),
            "interval": [_finite(self.low), _finite(self.high)],
            "confidence": GATE_CONFIDENCE,
        }

    def __str__(self) -> str:
        return (
            f"NDCG@10 {self.model_ndcg:.4f} vs {self.against}'s {self.other_ndcg:.4f} "
            f"(difference {self.difference:+.4f}, {GATE_CONFIDENCE:.0%} interval "
            f"[{self.low:+.4f}, {self.high:+.4f}])"
        )


def publish_gate(
    n_validation_users: int, versus_trending: Comparison, versus_current: Comparison | None
) -> tuple[bool, bool, str]:
    """(publish, gated, reason): publish only a model that beats trending and is not worse
    than the current configuration.

    Beating trending means the whole bootstrap interval of the difference is above zero;
    worse than the current configuration means the whole interval is below zero (a
    difference within the margin is accepted). With fewer than :data:`MIN_GATE_USERS`
    validation users the comparison means nothing: publish, marked ``gated: false``.
    """
    users = f"over {n_validation_users} validation users"
    if n_validation_users < MIN_GATE_USERS:
        return (
            True,
            False,
            f"{n_validation_users} validation users (< {MIN_GATE_USERS}): too few to compare "
            f"with trending, published ungated",
        )
    if not versus_trending.low > 0:
        return False, True, f"does not beat trending: {versus_trending} {users}"
    if versus_current is not None and versus_current.high < 0:
        return (
            False,
            True,
            f"worse than the current version's configuration refitted on the same data: "
            f"{versus_current} {users}",
        )
    reason = f"beats trending: {versus_trending}"
    if versus_current is not None:
        reason += f"; not worse than the current configuration: {versus_current}"
    return True, True, reason + f" {users}"


def event_dates(documents: Sequence[Mapping[str, Any] | None]) -> EventDates:
    """Publication, start and cancellation of each event from its catalogue document."""

    def epoch(value: Any) -> float:
        if not value:
            return float("nan")
        return datetime.fromisoformat(str(value).replace("Z", "+00:00")).timestamp()

    published = np.full(len(documents), np.nan)
    starts = np.full(len(documents), np.nan)
    cancelled = np.zeros(len(documents), dtype=bool)
    for index, document in enumerate(documents):
        if document is None:
            continue
        try:
            published[index] = epoch(document.get("published_at"))
            starts[index] = epoch(document.get("starts_at"))
        except ValueError:
            continue
        cancelled[index] = document.get("status") == "cancelled"
    return EventDates(published, starts, cancelled)


def _parse(document: bytes | str | None) -> dict[str, Any] | None:
    if document is None:
        return None
    try:
        parsed = json.loads(document)
    except ValueError:
        return None
    return parsed if isinstance(parsed, dict) else None


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
    text: TextModel | None = None,
) -> dict[str, Any]:
    """The arrays a model version stores (see ``store.versions.ARRAY_DTYPES``); with
    ``text``, the hybrid's TF-IDF vocabulary (terms in column order) and idf."""
    arrays = {
        "item_factors": model.item_factors_,
        "singular_values": model.svd_.singular_values_,
        "column_scale": model.column_scale_,
        "popularity": model.popularity_,
        "trending": trending,
        "content_coef": content_map.coef_,
        "event_ids": np.array(event_ids, dtype=np.str_),
    }
    if text is not None:
        terms = sorted(text.vocabulary_, key=text.vocabulary_.__getitem__)
        arrays["text_terms"] = np.array(terms, dtype=np.str_)
        arrays["text_idf"] = np.asarray(text.idf_, dtype=np.float64)
    return arrays


def fit_text(documents: Sequence[Mapping[str, Any] | None]) -> TextModel:
    """The hybrid's TF-IDF of the catalogue's texts (:func:`event_text`)."""
    return TextModel().fit([event_text(d) for d in documents])


def _per_user_ndcg(
    model: TimeModel, cut: TimeCut, users: np.ndarray, relevant: list[np.ndarray]
) -> dict[str, Any]:
    recommended = rank(model, users, cut, 10)
    return time_cut_metrics(recommended, relevant, cut.interactions_before, 10)


def _configuration(model: EventrecModel) -> tuple[str, int, float]:
    weights = (model.weights or InteractionWeights()).to_dict()
    return json.dumps(weights, sort_keys=True), int(model.n_factors), float(model.beta)


def _current_params(current: Mapping[str, Any] | None) -> dict[str, Any] | None:
    """The current version's configuration, when it is of this kind (else None)."""
    if not current or current.get("kind") not in (MODEL_KIND, *EARLIER_KINDS):
        return None
    params = current.get("params") or {}
    if not {"n_factors", "beta", "weights"} <= set(params):
        return None
    return dict(params)


def _validate(
    cut: TimeCut,
    documents: list[dict[str, Any] | None],
    dates: EventDates,
    search: EventrecSearch,
    current: Mapping[str, Any] | None,
    options: FitOptions,
    profiles: list[dict[str, Any] | None] | None = None,
) -> tuple[dict[str, Any], Comparison, Comparison | None, HybridBlend]:
    """The chosen configuration as served at the cut (the hybrid, its blend taught on a
    share of the validation users), against trending and the current one on the others."""
    served_options = ServedOptions(
        trending_half_life_days=options.trending_half_life_days,
        min_records=options.min_records,
        hide_viewed=options.hide_viewed,
    )
    context = TimeContext(
        cut=cut,
        raw_rating=cut.train.records["value"].astype(np.float64),
        documents=documents_at(documents, dates, cut),
        profiles=list(profiles or []),
        dates=dates,
        horizon_days=options.validation_days,
        relevant_min_rating=4.0,
        seed=options.random_state,
        n_jobs=options.n_jobs,
        served=served_options,
    )
    split = search.cut_split(cut)
    seed = options.random_state
    # Disjoint users teach the blend and judge it: the gate never scores what taught it.
    teaching = np.random.default_rng(seed).random(len(split.users)) < BLEND_SHARE
    users = split.users[~teaching]
    relevant = [r for r, t in zip(split.relevant, teaching.tolist(), strict=True) if not t]
    # Users new at the cut with a profile teach it too: the blend answers them as well.
    profiled = [
        i
        for i, u in enumerate(cut.new_users.tolist())
        if u < len(context.profiles) and context.profiles[u]
    ][: max(len(split.users), 1)]
    teachers = np.concatenate((split.users[teaching], cut.new_users[profiled])).astype(np.int64)
    taught = [r for r, t in zip(split.relevant, teaching.tolist(), strict=True) if t]
    taught += [cut.new_relevant[i] for i in profiled]
    blends: dict[str, HybridBlend] = {}

    def as_served(params: Mapping[str, Any] | None) -> dict[str, Any]:
        base = ServedEventrec(random_state=seed, estimator=search.estimator(params))
        base.fit(context)
        at = AtCut.of(base, context)
        try:
            blend = fit_blend(
                at.features, teachers, taught, np.flatnonzero(cut.candidates), cut.exclude, seed
            )
        except ModelFitError as exc:
            blend = collaborative_only(f"{len(teachers)} validation users taught nothing: {exc}")
        blends[json.dumps(params, sort_keys=True, default=str)] = blend
        # Judged as it will be served: new's weight raised at the cut (publish raises the
        # learned one again at the version's clock).
        judged = at.expose(copy.deepcopy(blend), cut, seed)
        hybrid = HybridEventrec.of(base, context, judged)
        return _per_user_ndcg(hybrid, cut, users, relevant)

    chosen = as_served(None)
    blend = blends[json.dumps(None)]
    trending = Trending().fit(context)
    versus_trending = Comparison.of(
        "trending",
        chosen["per_user_ndcg"],
        _per_user_ndcg(trending, cut, users, relevant)["per_user_ndcg"],
        seed,
    )
    popularity = _per_user_ndcg(TimePopularity().fit(context), cut, users, relevant)
    current_params = _current_params(current)
    versus_current = None
    current_info: dict[str, Any] | None = None
    if current_params is not None:
        same = _configuration(search.estimator(current_params)) == _configuration(
            search.estimator()
        )
        # The same configuration on the same records fits the same model: no second fit.
        other = chosen if same else as_served(current_params)
        versus_current = Comparison.of(
            "the current configuration", chosen["per_user_ndcg"], other["per_user_ndcg"], seed
        )
        current_info = {
            "version": (current or {}).get("version"),
            "params": current_params,
            "same_configuration": same,
        }
    figures = {
        "protocol": "time",
        "cut": datetime.fromtimestamp(cut.cut, UTC).isoformat().replace("+00:00", "Z"),
        "horizon_days": options.validation_days,
        "users": len(users),
        "blend_users": len(teachers),
        "candidates": int(cut.candidates.sum()),
        "as_served": {
            "ndcg@10": _finite(chosen["ndcg@10"]),
            "precision@10": _finite(chosen["precision@10"]),
            "recall@10": _finite(chosen["recall@10"]),
            "buckets": chosen["buckets"],
        },
        "trending": {
            "ndcg@10": _finite(versus_trending.other_ndcg),
            "half_life_days": trending.params_.get("half_life_days"),
        },
        "popularity": {
            "ndcg@10": _finite(popularity["ndcg@10"]),
            "precision@10": _finite(popularity["precision@10"]),
            "recall@10": _finite(popularity["recall@10"]),
        },
        "current": current_info,
        "versus_trending": versus_trending.to_dict(),
        "versus_current": versus_current.to_dict() if versus_current is not None else None,
    }
    return figures, versus_trending, versus_current, blend


def _expose_at(
    blend: HybridBlend,
    log: InteractionLog,
    documents: list[dict[str, Any] | None],
    dates: EventDates,
    served: ServedModel,
    text: TextModel,
    clock: float,
    options: FitOptions,
    profiles: list[dict[str, Any] | None],
) -> HybridBlend:
    """The blend as published: ``new``'s weight raised at the version's clock
    (:func:`expose_blend`), on users with a record before it ranking the events on sale
    then, with the published fit's vectors and TF-IDF (no second fit)."""
    if getattr(blend, "fallback_", None) is not None:
        return blend
    # Every record up to the clock is before the cut.
    cut = time_cut(log, float(np.nextafter(clock, np.inf)), options.validation_days, dates=dates)
    context = TimeContext(
        cut=cut,
        raw_rating=cut.train.records["value"].astype(np.float64),
        documents=documents_at(documents, dates, cut),
        profiles=profiles,
        dates=dates,
        horizon_days=options.validation_days,
        relevant_min_rating=4.0,
        seed=options.random_state,
        n_jobs=options.n_jobs,
        served=ServedOptions(
            trending_half_life_days=options.trending_half_life_days,
            min_records=options.min_records,
            hide_viewed=options.hide_viewed,
        ),
    )
    base = ServedEventrec.of(served, context, options.random_state)
    return AtCut.of(base, context, text).expose(blend, cut, options.random_state)


def fit_version(
    log: InteractionLog,
    event_ids: Sequence[str],
    documents: Mapping[str, bytes],
    options: FitOptions,
    current: Mapping[str, Any] | None = None,
    now: float | None = None,
    user_ids: Sequence[str] | None = None,
    profiles: Mapping[str, bytes] | None = None,
) -> FittedVersion:
    """Fit a model version from a snapshot.

    ``now`` anchors every decay (the snapshot's time); by default the latest record.

    Parameters
    ----------
    log : InteractionLog
    event_ids : sequence of str
        ``event_ids[i]`` is event index ``i``; at least ``log.n_events`` long.
    documents : mapping event_id -> stored event JSON
        The catalog, for the content map (events without one get only the bias feature).
    options : FitOptions
    current : mapping, optional
        The current version's metadata (its ``kind`` and ``params``), for the gate.
    user_ids, profiles : optional
        ``user_ids[u]`` is user index ``u``; ``profiles`` maps a user id to its stored
        profile JSON (the hybrid's stated tastes, budget and city).

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
    parsed = [_parse(documents.get(event_id)) for event_id in event_ids]
    dates = event_dates(parsed)
    end = float(log.records["time"].max()) if len(log) else 0.0
    cut = time_cut(
        log, end - options.validation_days * SECONDS_PER_DAY, options.validation_days, dates=dates
    )
    timed = len(cut.users) >= MIN_GATE_USERS
    search = EventrecSearch(
        n_jobs=options.n_jobs,
        random_state=options.random_state,
        max_validation_users=min(validation_users, options.max_validation_users),
        search_users=options.search_users,
        search_n_iter=2,
        max_factor_cells=options.max_factor_cells,
        refit=False,
    )
    # Too few users after the cut: the search falls back on each user's latest pairs.
    search.fit(log, end, cut if timed else None)
    timings["search"] = time.perf_counter() - started
    timings.update(search.timings_)

    validation: dict[str, Any] = {
        "protocol": "latest pairs",
        "users": search.n_validation_users_,
    }
    versus_trending: Comparison | None = None
    versus_current: Comparison | None = None
    blend = collaborative_only(
        f"{len(cut.users)} users with something relevant in the last "
        f"{options.validation_days:g} days (< {MIN_GATE_USERS}): too few to learn a blend"
    )
    user_profiles: list[dict[str, Any] | None] = []
    if user_ids is not None and profiles:
        user_profiles = [_parse(profiles.get(u)) for u in user_ids[: log.n_users]]
    if timed:
        step = time.perf_counter()
        validation, versus_trending, versus_current, blend = _validate(
            cut, parsed, dates, search, current, options, user_profiles
        )
        timings["validation_as_served"] = time.perf_counter() - step
    n_validation = int(validation["users"])
    if versus_trending is not None:
        publish, gated, reason = publish_gate(n_validation, versus_trending, versus_current)
    else:
        publish, gated, reason = (
            True,
            False,
            f"{len(cut.users)} users with something relevant in the last "
            f"{options.validation_days:g} days (< {MIN_GATE_USERS}): too few to compare with "
            f"trending, published ungated",
        )

    step = time.perf_counter()
    # Decays are anchored to the snapshot's time; the validation cut to the data's end.
    served = fit_served(
        log,
        parsed,
        search.estimator(),
        end if now is None else now,
        options.trending_half_life_days,
    )
    model, content_map, trending = served.model, served.content_map, served.trending
    timings["refit_and_content_map"] = time.perf_counter() - step
    step = time.perf_counter()
    text = fit_text(parsed)
    timings["text"] = time.perf_counter() - step

    step = time.perf_counter()
    blend = _expose_at(
        blend, log, parsed, dates, served, text, end if now is None else now, options, user_profiles
    )
    timings["exposure"] = time.perf_counter() - step

    step = time.perf_counter()
    rating = _rating_errors(log, options.random_state)
    timings["rating"] = time.perf_counter() - step
    timings["fit_total"] = time.perf_counter() - started
    # Without a time cut, the figures are the search's own on each user's latest pairs.
    as_served = validation.get("as_served") or {
        name: _finite(value) for name, value in search.validation_metrics_.items()
    }
    popularity_figures = validation.get("popularity") or {
        name: _finite(value) for name, value in search.popularity_validation_metrics_.items()
    }
    metadata: dict[str, Any] = {
        "kind": MODEL_KIND,
        "trained_at": datetime.now(UTC).isoformat().replace("+00:00", "Z"),
        "params": model.params_,
        "search": {**search.search_, "grid": search.search_results_, "winner": model.params_},
        "data": {
            "users": int(log.n_users),
            "users_with_interactions": int(np.count_nonzero(np.bincount(log.user))),
            "events": int(log.n_events),
            "interactions": len(log),
            "validation_users": n_validation,
        },
        "metrics": {
            "validation_ndcg@10": as_served.get("ndcg@10"),
            "trending_validation_ndcg@10": (validation.get("trending") or {}).get("ndcg@10"),
            "popularity_validation_ndcg@10": popularity_figures.get("ndcg@10"),
            "precision@10": as_served.get("precision@10"),
            "recall@10": as_served.get("recall@10"),
            "popularity_precision@10": popularity_figures.get("precision@10"),
            "popularity_recall@10": popularity_figures.get("recall@10"),
            **rating,
        },
        "validation": validation,
        "gated": gated,
        "gate": reason,
        "model": {"now": float(model.now_), "n_factors": int(model.n_factors_)},
        "content": {
            "featurizer": served.featurizer.to_dict(),
            "alpha": float(content_map.alpha),
            **served.content_info,
        },
        "trending": {"half_life_days": options.trending_half_life_days},
        "hybrid": {
            "blend": blend_metadata(blend),
            "text": {"min_df": text.min_df, "terms": len(text.vocabulary_)},
        },
        "timings": {name: round(seconds, 3) for name, seconds in timings.items()},
    }
    arrays = version_arrays(model, content_map, trending, event_ids, text)
    return FittedVersion(arrays, metadata, publish, reason, timings)
