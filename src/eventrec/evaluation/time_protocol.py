"""`eventrec evaluate --split time`: replay time at a few cuts, rank what was on sale.

The sets at each cut (training, candidates on sale, exclusions, relevant events, buckets)
are :func:`eventrec.model.timecut.time_cut`'s. Every model fits on the records before the
cut and ranks the same candidates for the same users; a model's own settings (trending's
half-life, PureSVD's rank) are tuned on a validation cut one horizon before the cut,
inside its training data, like any other choice it makes. ``eventrec`` is what serving
would answer at the cut: the trainer's fit, the content-mapped vectors of new events,
serving's fold-in, the learned hybrid blend and trending fallback
(:mod:`eventrec.evaluation.hybrid`), at the cut's clock; ``hybrid`` is its alias.

Models are a registry of named factories (:data:`TIME_MODELS`); add one by name.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Protocol

import numpy as np
import numpy.typing as npt
import scipy.sparse as sp

from eventrec.evaluation.baselines import GuideSvdCosine
from eventrec.evaluation.loader import EvaluationInputError
from eventrec.model.aggregate import InteractionWeights, aggregate
from eventrec.model.metrics import coverage, f1_from_means, ndcg_at_k
from eventrec.model.recommender import BINARY_WEIGHTS, EventrecModel, max_factors
from eventrec.model.records import InteractionLog, event_popularity
from eventrec.model.search import EventrecSearch
from eventrec.model.served import aggregate_rows, fold_in, profile_trending
from eventrec.model.timecut import (
    BUCKETS,
    EventDates,
    TimeCut,
    rank_cut,
    rank_shared,
    time_cut,
    time_cut_metrics,
)
from eventrec.model.trending import trending_scores
from eventrec.model.version import ServedModel, fit_served

__all__ = [
    "TIME_MODELS",
    "ServedEventrec",
    "ServedOptions",
    "TimeContext",
    "TimeModel",
    "TimePopularity",
    "Trending",
    "documents_at",
    "evaluate_time",
    "rank",
    "served_rows",
]

logger = logging.getLogger("eventrec.evaluation")

VALIDATION_K = 10
HALF_LIFE_GRID_DAYS = (1.0, 3.0, 7.0, 14.0, 30.0, 90.0)
PURE_SVD_FACTORS = (8, 16, 32, 64, 128)


@dataclass(frozen=True)
class ServedOptions:
    """The trainer's and serving's settings that shape what ``eventrec`` answers."""

    trending_half_life_days: float = 7.0
    min_records: int = 1
    hide_viewed: bool = False
    search_users: int | None = 20_000
    max_validation_users: int = 5_000
    max_factor_cells: int | None = 640_000_000


@dataclass
class TimeContext:
    """What a model may know at a cut: the past, the catalogue on sale, profiles."""

    cut: TimeCut
    raw_rating: np.ndarray  # of cut.train's records
    documents: list[dict[str, Any] | None]  # published before the cut, by event index
    profiles: list[dict[str, Any] | None]  # by user index
    dates: EventDates
    horizon_days: float
    relevant_min_rating: float
    seed: int = 42
    n_jobs: int = 2
    served: ServedOptions = field(default_factory=ServedOptions)

    def validation_cut(self) -> TimeCut:
        """The protocol one horizon before the cut, on the training records alone."""
        return time_cut(
            self.cut.train,
            self.cut.cut - self.horizon_days * 86_400.0,
            self.horizon_days,
            raw_rating=self.raw_rating,
            relevant_min_rating=self.relevant_min_rating,
            dates=self.dates,
        )


class TimeModel(Protocol):
    """A model under the time protocol: fit at a cut, score any user of the log."""

    params_: dict[str, Any]

    def fit(self, context: TimeContext) -> object:
        """Fit on ``context.cut.train`` (and the catalogue and profiles known at the cut)."""

    def score(self, users: np.ndarray) -> np.ndarray:
        """Scores of shape (len(users), n_events); users without a record get a fallback."""


def rank(model: TimeModel, users: np.ndarray, cut: TimeCut, k: int) -> npt.NDArray[np.int64]:
    """Top-k candidates per user; a model whose scores are the same for everyone
    (``shared_scores_``) is sorted once, one with its own exact top-k (``rank_top``, the
    hybrid's pruned search) uses it."""
    top = getattr(model, "rank_top", None)
    if top is not None:
        ranked: npt.NDArray[np.int64] = top(users, cut.candidates, cut.exclude, k)
        return ranked
    shared = getattr(model, "shared_scores_", None)
    if shared is not None:
        return rank_shared(np.asarray(shared), users, cut.candidates, cut.exclude, k)
    return rank_cut(model.score, users, cut.candidates, cut.exclude, k)


def validation_ndcg(score: Callable[[np.ndarray], np.ndarray] | np.ndarray, cut: TimeCut) -> float:
    """Mean NDCG@10 of a scorer (or shared scores) on a (validation) cut; NaN without users."""
    if not len(cut.users):
        return float("nan")
    if isinstance(score, np.ndarray):
        recommended = rank_shared(score, cut.users, cut.candidates, cut.exclude, VALIDATION_K)
    else:
        recommended = rank_cut(score, cut.users, cut.candidates, cut.exclude, VALIDATION_K)
    return float(np.mean(ndcg_at_k(recommended, cut.relevant, VALIDATION_K)))


class TimePopularity:
    """All-time popularity at the cut: distinct users per event before it."""

    def __init__(self) -> None:
        self.params_: dict[str, Any] = {"score": "distinct users per event before the cut"}

    def fit(self, context: TimeContext) -> TimePopularity:
        self.shared_scores_ = event_popularity(context.cut.train).astype(np.float64)
        return self

    def score(self, users: np.ndarray) -> np.ndarray:
        return np.broadcast_to(self.shared_scores_, (len(users), len(self.shared_scores_)))


class Trending:
    """Recency-decayed popularity at the cut, its half-life tuned on the validation cut."""

    def __init__(self, half_lives: Sequence[float] = HALF_LIFE_GRID_DAYS) -> None:
        self.half_lives = half_lives
        self.params_: dict[str, Any] = {}

    def fit(self, context: TimeContext) -> Trending:
        validation = context.validation_cut()
        tried: dict[float, float] = {}
        for half_life in self.half_lives:
            scores = trending_scores(validation.train, validation.cut, half_life)
            tried[half_life] = validation_ndcg(scores.astype(np.float64), validation)
        finite = {h: v for h, v in tried.items() if np.isfinite(v)}
        chosen = max(finite, key=lambda h: (finite[h], -h)) if finite else 7.0
        self.shared_scores_ = trending_scores(context.cut.train, context.cut.cut, chosen).astype(
            np.float64
        )
        self.params_ = {
            "half_life_days": chosen,
            "validation_ndcg@10": {str(h): v for h, v in tried.items()},
        }
        return self

    def score(self, users: np.ndarray) -> np.ndarray:
        return np.broadcast_to(self.shared_scores_, (len(users), len(self.shared_scores_)))


def _event_text(document: Mapping[str, Any]) -> str:
    parts = [str(document.get(name) or "") for name in ("title", "description", "venue")]
    for name in ("category", "city"):
        if document.get(name):
            parts.append(f"{name}_{document[name]}".replace(" ", "_"))
    parts.extend(f"tag_{tag}".replace(" ", "_") for tag in document.get("tags") or [])
    return " ".join(parts)


def _profile_text(profile: Mapping[str, Any]) -> str:
    parts = [f"city_{profile['city']}".replace(" ", "_")] if profile.get("city") else []
    parts.extend(
        f"category_{c}".replace(" ", "_") for c in profile.get("preferred_categories") or []
    )
    parts.extend(str(interest) for interest in profile.get("interests") or [])
    return " ".join(parts)


class ContentProfile:
    """TF-IDF of each event's text; a user's profile is the confidence-weighted sum of the
    events they interacted with before the cut (their stated profile when they have none);
    score = cosine. Until the hybrid exists, the content component alone."""

    def __init__(self) -> None:
        self.params_: dict[str, Any] = {"features": "TF-IDF of title, description, tags, ..."}

    def fit(self, context: TimeContext) -> ContentProfile:
        from sklearn.feature_extraction.text import TfidfVectorizer
        from sklearn.preprocessing import normalize

        texts = [_event_text(d) if d is not None else "" for d in context.documents]
        self.vectorizer_ = TfidfVectorizer(sublinear_tf=True)
        if any(texts):
            self.events_ = sp.csr_matrix(self.vectorizer_.fit_transform(texts), dtype=np.float32)
        else:
            self.events_ = sp.csr_matrix((len(texts), 1), dtype=np.float32)
        confidence = aggregate(context.cut.train, InteractionWeights(), context.cut.cut).confidence
        profiles = sp.csr_matrix(confidence @ self.events_)
        empty = np.flatnonzero(np.diff(profiles.indptr) == 0)
        stated = [i for i in empty if i < len(context.profiles) and context.profiles[i] is not None]
        if stated and any(texts):
            rows = self.vectorizer_.transform(
                [_profile_text(context.profiles[i] or {}) for i in stated]
            )
            profiles = sp.lil_matrix(profiles)
            profiles[stated] = rows
        self.profiles_ = sp.csr_matrix(normalize(sp.csr_matrix(profiles)), dtype=np.float32)
        vocabulary = getattr(self.vectorizer_, "vocabulary_", {})
        self.params_ = {**self.params_, "vocabulary": len(vocabulary)}
        return self

    def score(self, users: np.ndarray) -> np.ndarray:
        scores: np.ndarray = (self.profiles_[users] @ self.events_.T).toarray()
        return scores


class PlainPureSVD:
    """Plain PureSVD: binary confidences, no popularity scaling, rank tuned on the
    validation cut. Until the hybrid exists, the collaborative component alone."""

    def __init__(self, factors: Sequence[int] = PURE_SVD_FACTORS, random_state: int = 42):
        self.factors = factors
        self.random_state = random_state
        self.params_: dict[str, Any] = {}

    def _model(self, n_factors: int) -> EventrecModel:
        return EventrecModel(
            weights=BINARY_WEIGHTS,
            n_factors=n_factors,
            beta=0.0,
            weights_name="binary",
            random_state=self.random_state,
        )

    def fit(self, context: TimeContext) -> PlainPureSVD:
        validation = context.validation_cut()
        train = validation.train
        tried: dict[int, float] = {}
        largest = max_factors(len(np.unique(train.user)), len(np.unique(train.records["event"])))
        for n_factors in sorted({min(k, max(largest, 1)) for k in self.factors}):
            if len(validation.users) and largest >= 1:
                fitted = self._model(n_factors).fit(train, validation.cut)
                tried[n_factors] = validation_ndcg(fitted.score, validation)
        finite = {k: v for k, v in tried.items() if np.isfinite(v)}
        chosen = max(finite, key=lambda k: (finite[k], -k)) if finite else 64
        self.model_ = self._model(chosen).fit(context.cut.train, context.cut.cut)
        self.params_ = {
            **self.model_.params_,
            "validation_ndcg@10": {str(k): v for k, v in tried.items()},
        }
        return self

    def score(self, users: np.ndarray) -> np.ndarray:
        return self.model_.score(users)


class GuideAtCut:
    """The original guide's SVD cosine, fitted on the records before the cut."""

    def __init__(self, random_state: int = 42) -> None:
        self.random_state = random_state
        self.params_: dict[str, Any] = {}

    def fit(self, context: TimeContext) -> GuideAtCut:
        self.guide_ = GuideSvdCosine(n_components=50, random_state=self.random_state)
        self.guide_.fit(context.cut.train, context.raw_rating)
        self.params_ = dict(self.guide_.params_)
        return self

    def score(self, users: np.ndarray) -> np.ndarray:
        return self.guide_.score(users)


def _codes(values: Sequence[str | None]) -> tuple[npt.NDArray[np.int64], dict[str, int]]:
    table: dict[str, int] = {}
    codes = np.array(
        [table.setdefault(v.casefold(), len(table)) if v else -1 for v in values], dtype=np.int64
    )
    return codes, table


def served_rows(
    served: ServedModel,
    catalogue_vectors: npt.NDArray[np.float32],
    rows: Sequence[np.ndarray],
    now: float,
    min_records: int = 1,
) -> tuple[npt.NDArray[np.float32], npt.NDArray[np.bool_]]:
    """Serving's personalised scores of every catalogue event for users' rows at ``now``.

    The catalogue is the model's event index space (``catalogue_vectors[i]`` is event
    ``i``). Returns the scores, shape (len(rows), n_events), and which users serving
    answers from trending instead (too few records, or a zero vector).
    """
    n_users = len(rows)
    vectors = np.zeros((n_users, catalogue_vectors.shape[1]), dtype=np.float32)
    usable = [i for i, r in enumerate(rows) if len(r) >= min_records]
    if usable:
        result, _, _ = aggregate_rows([rows[i] for i in usable], served.model.weights_, now)
        vectors[usable] = fold_in(
            result.confidence.tocsr(),
            served.model.item_factors_,
            served.model.column_scale_,
            catalogue_vectors,
            np.arange(len(catalogue_vectors), dtype=np.int64),
        )
    fallback = np.asarray(~vectors.any(axis=1), dtype=bool)
    scores: npt.NDArray[np.float32] = vectors @ catalogue_vectors.T
    return scores, fallback


class ServedEventrec:
    """eventrec as serving would answer at the cut (see the module docstring).

    Its search validates on the validation cut (the protocol it is evaluated by); with an
    ``estimator`` given, that configuration is fitted without a search (the trainer's gate).
    """

    def __init__(
        self,
        random_state: int = 42,
        n_jobs: int = 2,
        options: ServedOptions | None = None,
        estimator: EventrecModel | None = None,
    ) -> None:
        self.random_state = random_state
        self.n_jobs = n_jobs
        self.options = options
        self.estimator = estimator
        self.params_: dict[str, Any] = {}

    def fit(self, context: TimeContext) -> ServedEventrec:
        options = self.options or context.served
        train = context.cut.train
        estimator = self.estimator
        if estimator is None:
            search = EventrecSearch(
                random_state=self.random_state,
                n_jobs=self.n_jobs,
                max_validation_users=options.max_validation_users,
                search_users=options.search_users,
                search_n_iter=2,
                max_factor_cells=options.max_factor_cells,
                refit=False,
            )
            validation = context.validation_cut()
            search.fit(train, context.cut.cut, validation if len(validation.users) else None)
            estimator = search.estimator()
        served = fit_served(
            train,
            context.documents,
            estimator,
            now=context.cut.cut,
            trending_half_life_days=options.trending_half_life_days,
        )
        return self._attach(served, context)

    @classmethod
    def of(
        cls, served: ServedModel, context: TimeContext, random_state: int = 42
    ) -> ServedEventrec:
        """An already fitted ``served`` (fitted on ``context.cut.train``) answering at the
        cut, without a second fit (the trainer's published version)."""
        return cls(random_state=random_state, options=context.served)._attach(served, context)

    def _attach(self, served: ServedModel, context: TimeContext) -> ServedEventrec:
        options = self.options or context.served
        train = context.cut.train
        self.served_ = served
        self.now_ = context.cut.cut
        self.min_records_ = options.min_records
        self.hide_viewed_ = options.hide_viewed
        self.catalogue_vectors_ = self.served_.catalogue_vectors(
            context.documents, np.arange(train.n_events, dtype=np.int64)
        )
        order = np.argsort(train.user, kind="stable")
        bounds = np.searchsorted(train.user[order], np.arange(train.n_users + 1))
        self.records_ = train.records[order]
        self.bounds_ = bounds
        cities, city_table = _codes([(d or {}).get("city") for d in context.documents])
        categories, category_table = _codes([(d or {}).get("category") for d in context.documents])
        self.city_, self.category_ = cities, categories
        self.profile_city_ = np.full(train.n_users, -1, dtype=np.int64)
        self.profile_categories_: list[list[int]] = [[] for _ in range(train.n_users)]
        self.has_profile_ = np.zeros(train.n_users, dtype=bool)
        for user, profile in enumerate(context.profiles[: train.n_users]):
            if profile is None:
                continue
            self.has_profile_[user] = True
            city = profile.get("city")
            self.profile_city_[user] = city_table.get(city.casefold(), -1) if city else -1
            self.profile_categories_[user] = [
                category_table[c.casefold()]
                for c in profile.get("preferred_categories") or []
                if c.casefold() in category_table
            ]
        self.params_ = {**self.served_.model.params_, "served_at": "the cut"}
        return self

    def _rows(self, users: np.ndarray) -> list[np.ndarray]:
        return [self.records_[self.bounds_[u] : self.bounds_[u + 1]] for u in users.tolist()]

    def score(self, users: np.ndarray) -> np.ndarray:
        rows = self._rows(users)
        scores, fallback = served_rows(
            self.served_, self.catalogue_vectors_, rows, self.now_, self.min_records_
        )
        result = scores.astype(np.float64)
        for row in np.flatnonzero(fallback).tolist():
            user = int(users[row])
            has_profile = self.has_profile_[user]
            result[row] = profile_trending(
                self.served_.trending,
                self.city_,
                self.category_,
                int(self.profile_city_[user]) if has_profile else None,
                self.profile_categories_[user] if has_profile else [],
            )
        if self.hide_viewed_:
            for row, records in enumerate(rows):
                result[row, records["event"]] = -np.inf
        return result


TimeModelFactory = Callable[[int, int], TimeModel]


def _hybrid(seed: int, n_jobs: int) -> TimeModel:
    from eventrec.evaluation.hybrid import HybridEventrec  # it builds on this module

    return HybridEventrec(random_state=seed, n_jobs=n_jobs)


TIME_MODELS: dict[str, TimeModelFactory] = {
    "popularity": lambda seed, n_jobs: TimePopularity(),
    "trending": lambda seed, n_jobs: Trending(),
    "content": lambda seed, n_jobs: ContentProfile(),
    "cf": lambda seed, n_jobs: PlainPureSVD(random_state=seed),
    "guide_svd_cosine": lambda seed, n_jobs: GuideAtCut(random_state=seed),
    # What serving answers: the learned hybrid; ``hybrid`` is an alias (fitted once).
    "eventrec": _hybrid,
    "hybrid": _hybrid,
}


def _iso(seconds: float) -> str:
    return datetime.fromtimestamp(seconds, UTC).isoformat().replace("+00:00", "Z")


def documents_at(
    documents: Sequence[dict[str, Any] | None], dates: EventDates, cut: TimeCut
) -> list[dict[str, Any] | None]:
    """The catalogue as it stood at the cut: documents of events published (or seen) by then."""
    seen = np.zeros(len(documents), dtype=bool)
    seen[cut.train.records["event"]] = True
    published = np.where(np.isnan(dates.published_at), seen, dates.published_at < cut.cut)
    return [d if published[i] or cut.candidates[i] else None for i, d in enumerate(documents)]


def _cut_row(
    model: TimeModel, cut: TimeCut, new_users: np.ndarray, new_relevant: list[np.ndarray], k: int
) -> dict[str, Any]:
    recommended = rank(model, cut.users, cut, k)
    metrics = time_cut_metrics(recommended, cut.relevant, cut.interactions_before, k)
    metrics.pop("per_user_ndcg")
    precision, recall = metrics[f"precision@{k}"], metrics[f"recall@{k}"]
    row: dict[str, Any] = {
        f"precision@{k}": precision,
        f"recall@{k}": recall,
        f"f1@{k}": f1_from_means(precision, recall) if len(cut.users) else float("nan"),
        f"ndcg@{k}": metrics[f"ndcg@{k}"],
        "coverage": coverage(recommended, max(int(cut.candidates.sum()), 1)),
        "buckets": metrics["buckets"],
    }
    if len(new_users):
        new_recommended = rank(model, new_users, cut, k)
        new_metrics = time_cut_metrics(new_recommended, new_relevant, cut.interactions_before, k)
        row["new_users"] = {
            f"ndcg@{k}": new_metrics[f"ndcg@{k}"],
            f"recall@{k}": new_metrics[f"recall@{k}"],
            "users": len(new_users),
        }
    else:
        row["new_users"] = {f"ndcg@{k}": float("nan"), f"recall@{k}": float("nan"), "users": 0}
    return row


def _mean(values: Sequence[float]) -> float | None:
    finite = [v for v in values if v is not None and np.isfinite(v)]
    return float(np.mean(finite)) if finite else None


def _average(rows: Sequence[dict[str, Any]], k: int) -> dict[str, Any]:
    names = (f"precision@{k}", f"recall@{k}", f"f1@{k}", f"ndcg@{k}", "coverage")
    average: dict[str, Any] = {name: _mean([r[name] for r in rows]) for name in names}
    average["buckets"] = {
        bucket: {
            f"ndcg@{k}": _mean([r["buckets"][bucket][f"ndcg@{k}"] for r in rows]),
            f"recall@{k}": _mean([r["buckets"][bucket][f"recall@{k}"] for r in rows]),
            "relevant": int(sum(r["buckets"][bucket]["relevant"] for r in rows)),
        }
        for bucket in BUCKETS
    }
    average["new_users"] = {
        f"ndcg@{k}": _mean([r["new_users"][f"ndcg@{k}"] for r in rows]),
        f"recall@{k}": _mean([r["new_users"][f"recall@{k}"] for r in rows]),
        "users": int(sum(r["new_users"]["users"] for r in rows)),
    }
    return average


def _json_floats(value: Any) -> Any:
    """NaN as null, so the result is strict JSON."""
    if isinstance(value, dict):
        return {key: _json_floats(item) for key, item in value.items()}
    if isinstance(value, list):
        return [_json_floats(item) for item in value]
    if isinstance(value, float) and not np.isfinite(value):
        return None
    return value


def _rating_errors_at(
    log: InteractionLog, raw_rating: np.ndarray, cut: float, horizon_days: float, seed: int
) -> dict[str, float | None]:
    """RMSE of the rating predictors fitted before the last cut, on ratings in its window."""
    from eventrec.evaluation.protocol import rating_errors

    times = log.records["time"].astype(np.float64)
    before = times < cut
    window = ~before & (times < cut + horizon_days * 86_400.0)
    return rating_errors(
        log.subset(before), raw_rating[before], log.subset(window), raw_rating[window], seed
    )


def evaluate_time(
    log: InteractionLog,
    raw_rating: np.ndarray,
    cuts: Sequence[float],
    *,
    documents: Sequence[dict[str, Any] | None] | None = None,
    dates: EventDates | None = None,
    profiles: Sequence[dict[str, Any] | None] | None = None,
    horizon_days: float = 30.0,
    relevant_min_rating: float = 4.0,
    k: int = 10,
    seed: int = 42,
    n_jobs: int = 2,
    served: ServedOptions | None = None,
    models: Mapping[str, TimeModelFactory] | None = None,
) -> dict[str, Any]:
    """Evaluate the models at each cut; the result is what ``--json`` writes.

    Returns
    -------
    dict
        ``protocol``, ``data``, ``models`` (averaged over cuts: today's metric keys plus
        ``buckets`` and ``new_users``), ``rmse`` and ``cuts`` (each cut's own rows).
    """
    if k < 1:
        raise ValueError(f"k must be at least 1, not {k}")
    chosen_models = TIME_MODELS if models is None else models
    listed = list(documents) if documents is not None else [None] * log.n_events
    listed += [None] * (log.n_events - len(listed))
    known_profiles = list(profiles) if profiles is not None else []
    known_profiles += [None] * (log.n_users - len(known_profiles))
    dates = dates if dates is not None else EventDates.unknown(log.n_events)
    per_cut: list[dict[str, Any]] = []
    rows_by_model: dict[str, list[dict[str, Any]]] = {name: [] for name in chosen_models}
    params: dict[str, list[dict[str, Any]]] = {name: [] for name in chosen_models}
    fit_seconds: dict[str, float] = dict.fromkeys(chosen_models, 0.0)
    for number, instant in enumerate(sorted(cuts), start=1):
        cut = time_cut(
            log,
            instant,
            horizon_days,
            raw_rating=raw_rating,
            relevant_min_rating=relevant_min_rating,
            dates=dates,
        )
        with_profile = np.array(
            [known_profiles[u] is not None for u in cut.new_users.tolist()], dtype=bool
        )
        new_users = cut.new_users[with_profile] if len(with_profile) else cut.new_users
        new_relevant = [r for r, keep in zip(cut.new_relevant, with_profile, strict=True) if keep]
        logger.info(
            "cut %d of %d at %s: %d training records, %d candidates, %d users, %d new users",
            number,
            len(cuts),
            _iso(instant),
            len(cut.train),
            int(cut.candidates.sum()),
            len(cut.users),
            len(new_users),
        )
        if not len(cut.users):
            raise EvaluationInputError(
                f"no user at the cut {_iso(instant)} has a record before it and a relevant "
                f"candidate in the next {horizon_days:g} days: choose other --cuts"
            )
        context = TimeContext(
            cut=cut,
            raw_rating=raw_rating[cut.train_index],
            documents=documents_at(listed, dates, cut),
            profiles=known_profiles,
            dates=dates,
            horizon_days=horizon_days,
            relevant_min_rating=relevant_min_rating,
            seed=seed,
            n_jobs=n_jobs,
            served=served or ServedOptions(),
        )
        cut_models: dict[str, Any] = {}
        # Aliases (one factory under two names) are fitted and ranked once.
        done: dict[int, tuple[TimeModel, dict[str, Any]]] = {}
        for name, factory in chosen_models.items():
            if id(factory) in done:
                model, row = done[id(factory)]
            else:
                model = factory(seed, n_jobs)
                started = time.perf_counter()
                model.fit(context)
                fit_seconds[name] += time.perf_counter() - started
                row = _cut_row(model, cut, new_users, new_relevant, k)
                done[id(factory)] = (model, row)
            logger.info("cut %d %s: ndcg@%d %.4f", number, name, k, row[f"ndcg@{k}"])
            rows_by_model[name].append(row)
            params[name].append(dict(model.params_))
            cut_models[name] = row
        per_cut.append(
            {
                "cut": _iso(instant),
                "train": len(cut.train),
                "candidates": int(cut.candidates.sum()),
                "cold_candidates": int((cut.candidates & (cut.interactions_before == 0)).sum()),
                "eval_users": len(cut.users),
                "new_users": len(new_users),
                "relevant": int(sum(len(r) for r in cut.relevant)),
                "models": cut_models,
            }
        )
    result: dict[str, Any] = {
        "protocol": {
            "split": "time",
            "seed": seed,
            "test_fraction": None,
            "k": k,
            "relevant_min_rating": relevant_min_rating,
            "horizon_days": horizon_days,
            "cuts": [_iso(c) for c in sorted(cuts)],
            "relevant": (
                "bookings, saves and ratings >= relevant_min_rating in [T, T + horizon) on "
                "candidates the user's records before T do not hide"
            ),
            "candidates": (
                "on sale at T: published (or first seen) before T, starting after T, not "
                "cancelled; without dates, events interacted with in [T, T + horizon)"
            ),
        },
        "data": {
            "users": len(np.unique(log.user)),
            "events": int(log.n_events),
            "train": per_cut[-1]["train"],
            "test": int(len(log) - per_cut[-1]["train"]),
            "eval_users": int(sum(c["eval_users"] for c in per_cut)),
        },
        "models": {
            name: {
                **_average(rows, k),
                "fit_seconds": round(fit_seconds[name], 3),
                "params": params[name][-1] if params[name] else {},
            }
            for name, rows in rows_by_model.items()
        },
        "rmse": _rating_errors_at(log, raw_rating, max(cuts), horizon_days, seed),
        "cuts": per_cut,
    }
    return dict(_json_floats(result))
