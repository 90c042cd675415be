"""The offline evaluation protocol: full ranking of the training catalogue at k.

For every evaluated user a ranker scores every event seen in training; the user's own
training events are excluded and the top k are compared with the user's relevant test
events: bookings, saves and ratings of at least ``relevant_min_rating`` on the file's own
scale (a pair's latest rating counts). Evaluated users have at least one training
interaction and one relevant test event. A relevant event never seen in training cannot
be recommended but stays in recall's denominator, as it would in production.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Mapping
from typing import Any

import numpy as np
import scipy.sparse as sp

from eventrec.evaluation.baselines import GuideSvdCosine, Popularity, Ranker
from eventrec.evaluation.loader import EvaluationInputError
from eventrec.model.metrics import (
    coverage,
    f1_from_means,
    ndcg_at_k,
    precision_at_k,
    recall_at_k,
    rmse,
    top_k,
)
from eventrec.model.records import TYPE_BOOKING, TYPE_RATING, TYPE_SAVE, InteractionLog, pair_keys

__all__ = [
    "EventrecRanker",
    "RankingTask",
    "evaluate_log",
    "evaluate_ranker",
    "latest_ratings",
    "ranking_task",
    "record_ratings",
]

logger = logging.getLogger("eventrec.evaluation")

# Scores of one batch stay near 64 MB of float64 (top_k copies them once more).
BATCH_CELLS = 8_000_000
MAX_BATCH_USERS = 1000
PROGRESS_SECONDS = 2.0


def record_ratings(log: InteractionLog) -> np.ndarray:
    """Each record's rating as stored (1..5), NaN for records that are not ratings."""
    return np.where(log.records["type"] == TYPE_RATING, log.records["value"], np.nan)


def latest_ratings(log: InteractionLog, raw_rating: np.ndarray) -> tuple[np.ndarray, ...]:
    """Users, events and raw ratings of each pair's latest rating.

    Latest by ``time``, ties broken by the later position, as the model's aggregation does.
    """
    is_rating = np.flatnonzero(log.records["type"] == TYPE_RATING)
    keys = pair_keys(log)[is_rating]
    order = np.lexsort((is_rating, log.records["time"][is_rating], keys))
    sorted_keys = keys[order]
    is_last = np.ones(len(order), dtype=bool)
    is_last[:-1] = sorted_keys[1:] != sorted_keys[:-1]
    chosen = np.sort(is_rating[order[is_last]])
    return (
        log.user[chosen].astype(np.int64),
        log.records["event"][chosen].astype(np.int64),
        raw_rating[chosen].astype(np.float64),
    )


class RankingTask:
    """The users to evaluate, their relevant events, and what each may be recommended."""

    def __init__(
        self,
        users: np.ndarray,
        relevant: list[np.ndarray],
        catalogue: np.ndarray,
        train_pairs: sp.csr_matrix,
    ) -> None:
        self.users = users  # evaluated user indices, ascending
        self.relevant = relevant  # relevant test events per evaluated user
        self.catalogue = catalogue  # bool (n_events,): seen in training
        self.train_pairs = train_pairs  # bool csr (n_users, n_events): excluded per user


def ranking_task(
    train: InteractionLog,
    test: InteractionLog,
    test_raw_rating: np.ndarray,
    relevant_min_rating: float,
) -> RankingTask:
    """Who is evaluated against what under the protocol (see the module docstring)."""
    n_users, n_events = train.n_users, train.n_events
    if (test.n_users, test.n_events) != (n_users, n_events):
        raise ValueError("train and test must share one user and one event index space")
    train_pairs = sp.csr_matrix(
        (
            np.ones(len(train), dtype=bool),
            (train.user, train.records["event"].astype(np.int64)),
        ),
        shape=(n_users, n_events),
        dtype=bool,
    )
    train_pairs.sum_duplicates()
    catalogue = np.zeros(n_events, dtype=bool)
    catalogue[train.records["event"]] = True
    kind = test.records["type"]
    interest = np.isin(kind, (TYPE_BOOKING, TYPE_SAVE))
    rating_users, rating_events, ratings = latest_ratings(test, test_raw_rating)
    relevant_keys = np.unique(
        np.concatenate(
            [
                pair_keys(test)[interest],
                (rating_users * max(n_events, 1) + rating_events)[ratings >= relevant_min_rating],
            ]
        )
    )
    relevant_user = relevant_keys // max(n_events, 1)
    relevant_event = relevant_keys % max(n_events, 1)
    has_training = np.bincount(train.user, minlength=n_users) > 0
    keep = has_training[relevant_user]
    relevant_user, relevant_event = relevant_user[keep], relevant_event[keep]
    users, starts = np.unique(relevant_user, return_index=True)
    relevant = np.split(relevant_event, starts[1:]) if len(users) else []
    return RankingTask(users, relevant, catalogue, train_pairs)


def recommend(ranker: Ranker, task: RankingTask, k: int, name: str = "ranker") -> np.ndarray:
    """Top-k recommendations of shape (len(task.users), k) for the evaluated users, in batches."""
    n_events = len(task.catalogue)
    batch_size = max(1, min(MAX_BATCH_USERS, BATCH_CELLS // max(n_events, 1)))
    recommended = np.full((len(task.users), k), -1, dtype=np.int64)
    outside = ~task.catalogue
    reported = time.perf_counter()
    for start in range(0, len(task.users), batch_size):
        batch = task.users[start : start + batch_size]
        scores = np.array(ranker.score(batch), dtype=np.float64)
        if scores.shape != (len(batch), n_events):
            raise ValueError(f"{name} scored shape {scores.shape}, not {(len(batch), n_events)}")
        scores[:, outside] = -np.inf
        recommended[start : start + len(batch)] = top_k(scores, k, exclude=task.train_pairs[batch])
        done = start + len(batch)
        if done == len(task.users) or time.perf_counter() - reported >= PROGRESS_SECONDS:
            logger.info("%s: scored %d of %d users", name, done, len(task.users))
            reported = time.perf_counter()
    return recommended


def ranking_metrics(recommended: np.ndarray, task: RankingTask, k: int) -> dict[str, float]:
    """Mean precision, recall, F1 of the means, NDCG at k and catalogue coverage."""
    precision = float(np.mean(precision_at_k(recommended, task.relevant, k)))
    recall = float(np.mean(recall_at_k(recommended, task.relevant, k)))
    return {
        f"precision@{k}": precision,
        f"recall@{k}": recall,
        f"f1@{k}": f1_from_means(precision, recall),
        f"ndcg@{k}": float(np.mean(ndcg_at_k(recommended, task.relevant, k))),
        "coverage": coverage(recommended, max(int(task.catalogue.sum()), 1)),
    }


def evaluate_ranker(
    ranker: Ranker,
    train: InteractionLog,
    train_raw_rating: np.ndarray,
    task: RankingTask,
    k: int,
    name: str = "ranker",
) -> dict[str, Any]:
    """Fit ``ranker`` (timed), rank for the task's users, and its metrics with its params."""
    logger.info("%s: fitting on %d training interactions", name, len(train))
    started = time.perf_counter()
    ranker.fit(train, train_raw_rating)
    fit_seconds = time.perf_counter() - started
    logger.info("%s: fitted in %.2f s", name, fit_seconds)
    recommended = recommend(ranker, task, k, name)
    return {
        **ranking_metrics(recommended, task, k),
        "fit_seconds": round(fit_seconds, 3),
        "params": dict(ranker.params_),
    }


class EventrecRanker:
    """eventrec's :class:`EventrecModel` as a ranker, its hyperparameters searched on training."""

    def __init__(self, random_state: int = 42, n_jobs: int = 2, held_back: str = "latest") -> None:
        self.random_state = random_state
        self.n_jobs = n_jobs
        self.held_back = held_back
        self.params_: dict[str, Any] = {}

    def fit(self, log: InteractionLog, raw_rating: np.ndarray) -> EventrecRanker:
        from eventrec.model.search import EventrecSearch

        search = EventrecSearch(
            random_state=self.random_state,
            n_jobs=self.n_jobs,
            held_back="random" if self.held_back == "random" else "latest",
        ).fit(log)
        self.model_ = search.best_estimator_
        self.params_ = {**self.model_.params_, "validation": search.search_["validation"]}
        return self

    def score(self, users: np.ndarray) -> np.ndarray:
        scores: np.ndarray = self.model_.score(users)
        return scores


def rating_errors(
    train: InteractionLog,
    train_raw_rating: np.ndarray,
    test: InteractionLog,
    test_raw_rating: np.ndarray,
    seed: int = 42,
) -> dict[str, float | None]:
    """RMSE on test ratings (original scale) of eventrec's rating predictor and its biases.

    Both fit each training pair's latest rating and predict each test pair's latest one;
    predictions are clipped to the training ratings' range. None when either side has none.
    """
    from eventrec.model.rating import BiasedRatingPredictor

    train_users, train_events, train_ratings = latest_ratings(train, train_raw_rating)
    test_users, test_events, test_ratings = latest_ratings(test, test_raw_rating)
    if not len(train_ratings) or not len(test_ratings):
        return {"eventrec": None, "bias_baseline": None}
    errors: dict[str, float | None] = {}
    for name, predictor in (
        ("eventrec", BiasedRatingPredictor(random_state=seed)),
        ("bias_baseline", BiasedRatingPredictor(n_factors=0, random_state=seed)),
    ):
        logger.info("rmse %s: fitting on %d training ratings", name, len(train_ratings))
        predictor.fit(
            train_users, train_events, train_ratings, n_users=train.n_users, n_events=train.n_events
        )
        errors[name] = rmse(predictor.predict(test_users, test_events), test_ratings)
    logger.info("rmse: scored %d test ratings", len(test_ratings))
    return errors


RankerFactory = Callable[[int, int], Ranker]

DEFAULT_RANKERS: Mapping[str, RankerFactory] = {
    "popularity": lambda seed, n_jobs: Popularity(),
    "guide_svd_cosine": lambda seed, n_jobs: GuideSvdCosine(n_components=50, random_state=seed),
    "eventrec": lambda seed, n_jobs: EventrecRanker(random_state=seed, n_jobs=n_jobs),
}


def default_rankers(split: str) -> Mapping[str, RankerFactory]:
    """The default rankers; eventrec's search validates as the split evaluates: random
    pairs held back for a random split, each user's latest pairs otherwise."""
    held_back = "random" if split == "random" else "latest"
    return {
        **DEFAULT_RANKERS,
        "eventrec": lambda seed, n_jobs: EventrecRanker(seed, n_jobs, held_back),
    }


def evaluate_log(
    train: InteractionLog,
    test: InteractionLog,
    *,
    k: int = 10,
    relevant_min_rating: float = 4.0,
    seed: int = 42,
    split: str = "given",
    test_fraction: float | None = None,
    train_raw_rating: np.ndarray | None = None,
    test_raw_rating: np.ndarray | None = None,
    n_jobs: int = 2,
    rankers: Mapping[str, RankerFactory] | None = None,
    with_rmse: bool = True,
) -> dict[str, Any]:
    """Evaluate the rankers on one split; the result is what ``--json`` writes.

    Parameters
    ----------
    train, test : InteractionLog
        One index space; each (user, event) pair on one side only.
    k : int
        Cut-off of the ranking metrics (their keys carry it: ``precision@10``).
    relevant_min_rating : float
        Lowest test rating (raw scale) that makes an event relevant.
    seed : int
        Random state of every model.
    split, test_fraction : str, float or None
        How the split was made; only reported.
    train_raw_rating, test_raw_rating : ndarray of shape (len(log),), optional
        Ratings on their original scale (NaN where not a rating); default the records' 1..5.
    n_jobs : int
        Parallel jobs of eventrec's hyperparameter search.
    rankers : mapping of name to ``factory(seed, n_jobs) -> Ranker``, optional
        Default: ``popularity``, ``guide_svd_cosine`` and ``eventrec``.
    with_rmse : bool
        Also fit the rating predictors for ``rmse``.

    Returns
    -------
    dict
        ``{"protocol": {...}, "data": {...}, "models": {name: metrics}, "rmse": {...}}``.
    """
    if k < 1:
        raise ValueError(f"k must be at least 1, not {k}")
    train_raw = record_ratings(train) if train_raw_rating is None else train_raw_rating
    test_raw = record_ratings(test) if test_raw_rating is None else test_raw_rating
    task = ranking_task(train, test, test_raw, relevant_min_rating)
    users_present = np.union1d(np.unique(train.user), np.unique(test.user))
    events_present = np.union1d(np.unique(train.records["event"]), np.unique(test.records["event"]))
    result: dict[str, Any] = {
        "protocol": {
            "split": split,
            "seed": seed,
            "test_fraction": test_fraction,
            "k": k,
            "relevant_min_rating": relevant_min_rating,
            "relevant": "test bookings, saves and ratings >= relevant_min_rating",
            "candidates": "every event seen in training, minus the user's training events",
        },
        "data": {
            "users": len(users_present),
            "events": len(events_present),
            "train": len(train),
            "test": len(test),
            "eval_users": len(task.users),
        },
        "models": {},
        "rmse": {"eventrec": None, "bias_baseline": None},
    }
    if not len(task.users):
        raise EvaluationInputError(
            "no user has both a training interaction and a relevant test event: nothing to rank"
        )
    logger.info(
        "evaluating %d users over %d training events at k=%d",
        len(task.users),
        int(task.catalogue.sum()),
        k,
    )
    for name, factory in (default_rankers(split) if rankers is None else rankers).items():
        ranker = factory(seed, n_jobs)
        result["models"][name] = evaluate_ranker(ranker, train, train_raw, task, k, name)
    if with_rmse:
        result["rmse"] = rating_errors(train, train_raw, test, test_raw, seed)
    return result
