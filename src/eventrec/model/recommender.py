"""EventrecModel: PureSVD on weighted confidences that picks its own hyperparameters.

``fit`` carves a validation split out of the training log (see :mod:`eventrec.model.search`),
fits one SVD per (weighting, popularity exponent) with the largest factor count of the grid,
scores every factor count as a prefix of it, keeps the best by NDCG@10, compares it with
popularity on the same split, and refits on all data with the winner.

Scores of a user are ``x_u V Vᵀ`` where ``x_u`` is the user's confidence row with column
``j`` scaled by ``max(popularity_j, 1) ** -beta``; users with an empty row get popularity.
"""

from __future__ import annotations

import dataclasses
import json
import os
import time
from collections.abc import Mapping, Sequence
from typing import Any, Literal

import numpy as np
import numpy.typing as npt
import scipy.sparse as sp
from joblib import Parallel, delayed
from threadpoolctl import threadpool_limits

from eventrec.model.aggregate import Aggregate, InteractionWeights, aggregate
from eventrec.model.errors import ModelFitError
from eventrec.model.records import RECORD_DTYPE, InteractionLog
from eventrec.model.search import (
    ValidationSplit,
    column_scale,
    event_popularity,
    interacted_pairs,
    popularity_metrics,
    prefix_metrics,
    score_rows,
    sorted_unique,
    validation_split,
)
from eventrec.model.svd import PureSVD

__all__ = ["BINARY_WEIGHTS", "DEFAULT_BETA", "DEFAULT_N_FACTORS", "EventrecModel"]

FACTOR_GRID = (16, 32, 64, 128, 256)
BETA_GRID = (0.0, 0.25, 0.5)
DEFAULT_N_FACTORS = 64
DEFAULT_BETA = 0.25
# Classic PureSVD input: every interaction, whatever its kind, is a 1.
BINARY_WEIGHTS = InteractionWeights(
    view=1.0,
    view_saturation=1,
    save=1.0,
    booking=1.0,
    rating_weights=(1.0, 1.0, 1.0, 1.0, 1.0),
)


def _max_factors(n_users: int, n_events: int) -> int:
    return min(n_users, n_events) - 1


class EventrecModel:
    """The recommender the trainer fits and the server scores with.

    Parameters
    ----------
    weights : InteractionWeights, optional
        Confidence weights; defaults to ``InteractionWeights()``. The search also tries
        binary weights (every interaction 1) and keeps whichever validates better.
    n_factors : int or "auto"
        ``"auto"`` searches 16, 32, 64, 128, 256 (clipped to the data); an int fixes it.
    search : bool
        Search weights and the popularity exponent ``beta`` (and factors when "auto").
        Without search: given weights, beta 0.25 and 64 factors (or ``n_factors``); the
        validation split is still used to compare with popularity.
    random_state : int
        Seed of the split and of the SVDs.
    n_jobs : int
        Grid points fitted in parallel (threads; numpy releases the GIL).
    max_validation_users : int
        Validation users sampled at most.
    search_users : int or None
        The search's SVDs are fitted on at most this many training users (the validation
        users and a random sample of the others); None fits them on every user. Item
        factors from a user sample estimate the same VᵀV, at a fraction of the cost.
    search_n_iter : int or None
        Power iterations of the search's SVDs (None: as the final fit).
    n_iter : int
        Power iterations of the final fit's randomized SVD.
    max_factor_cells : int or None
        Caps factors so that ``factors * stored values`` stays below this (the cost of
        one sparse product); None: no cap. The grid's smallest count is always kept.

    Attributes
    ----------
    params_ : dict
        The winner: ``n_factors``, ``beta``, ``weights_name`` and ``weights`` (plain dict).
    search_results_ : list of dict
        Every grid point with its ``ndcg@10``, ``precision@10`` and ``recall@10``, best
        first.
    search_ : dict
        How the search ran: the grid, the users its SVDs saw, power iterations.
    timings_ : dict
        Seconds spent on the validation split, the search and the refit.
    validation_metrics_ : dict
        ``ndcg@10``, ``precision@10``, ``recall@10`` of the winner on the validation split.
    popularity_validation_metrics_ : dict
        The same for popularity.
    validation_ndcg_ : float
        NDCG@10 of the winner on the validation split (NaN without validation users).
    popularity_validation_ndcg_ : float
        NDCG@10 of popularity on the same split (NaN without validation users).
    n_validation_users_ : int
    weights_ : InteractionWeights
    beta_ : float
    n_factors_ : int
    svd_ : PureSVD
        Fitted on all data; ``svd_.item_factors_`` is V, shape (n_events, n_factors_).
    column_scale_ : ndarray of shape (n_events,), float32
    popularity_ : ndarray of shape (n_events,), int64
        Distinct users per event with a record other than a dismissal.
    confidence_ : csr_matrix of shape (n_users, n_events), float32
        Training confidences (unscaled) under ``weights_``.
    hidden_ : csr_matrix of shape (n_users, n_events), bool
        Events never to recommend to each training user again.
    now_ : float
        Reference time of the decay at fit time.
    """

    def __init__(
        self,
        weights: InteractionWeights | None = None,
        n_factors: int | Literal["auto"] = "auto",
        search: bool = True,
        random_state: int = 0,
        n_jobs: int = 2,
        max_validation_users: int = 5000,
        search_users: int | None = None,
        search_n_iter: int | None = None,
        n_iter: int = 4,
        max_factor_cells: int | None = None,
    ) -> None:
        self.weights = weights
        self.n_factors = n_factors
        self.search = search
        self.random_state = random_state
        self.n_jobs = n_jobs
        self.max_validation_users = max_validation_users
        self.search_users = search_users
        self.search_n_iter = search_n_iter
        self.n_iter = n_iter
        self.max_factor_cells = max_factor_cells

    def _grid(
        self, n_users: int, n_events: int, n_stored: int = 0
    ) -> tuple[list[int], list[float], dict[str, Any]]:
        max_factors = _max_factors(n_users, n_events)
        if max_factors < 1:
            raise ModelFitError(f"a {n_users} x {n_events} log is too small for one factor")
        if self.max_factor_cells is not None and n_stored > 0:
            affordable = max(self.max_factor_cells // n_stored, min(FACTOR_GRID))
            max_factors = min(max_factors, affordable)
        if self.n_factors == "auto" and self.search:
            factors = sorted({min(k, max_factors) for k in FACTOR_GRID})
        elif self.n_factors == "auto":
            factors = [min(DEFAULT_N_FACTORS, max_factors)]
        else:
            factors = [min(int(self.n_factors), max_factors)]
        given = self.weights or InteractionWeights()
        if self.search:
            binary = dataclasses.replace(BINARY_WEIGHTS, half_life_days=given.half_life_days)
            variants: dict[str, InteractionWeights] = {"given": given, "binary": binary}
            return factors, list(BETA_GRID), variants
        return factors, [DEFAULT_BETA], {"given": given}

    def fit(self, log: InteractionLog, now: float | None = None) -> EventrecModel:
        """Search hyperparameters on a validation split of ``log``, then refit on all of it.

        Parameters
        ----------
        log : InteractionLog
        now : float, optional
            Reference time for decay; defaults to the log's latest time.

        Returns
        -------
        self

        Raises
        ------
        ModelFitError
            When the log is too small or the SVD fails.
        """
        if now is None:
            now = float(log.records["time"].max()) if len(log) else 0.0
        factors, betas, variants = self._grid(log.n_users, log.n_events, len(log))
        clock = time.perf_counter()
        timings: dict[str, float] = {}
        split = validation_split(log, self.max_validation_users, self.random_state)
        timings["validation_split"] = time.perf_counter() - clock
        results: list[dict[str, Any]] = []
        popularity_metrics_: dict[str, float] = {}
        search_rows = np.zeros(0, dtype=np.int64)
        if len(split.users):
            train_popularity = event_popularity(split.train)
            search_rows, search_log = self._search_sample(split)
            exclude = interacted_pairs(search_log)
            confidences = {
                name: aggregate(search_log, weights, now).confidence
                for name, weights in variants.items()
            }
            tasks = [(name, beta) for name in variants for beta in betas]
            n_jobs = max(1, min(self.n_jobs, len(tasks)))
            blas_threads = max(1, (os.cpu_count() or 1) // n_jobs)
            with threadpool_limits(limits=blas_threads):
                outcomes = Parallel(n_jobs=n_jobs, prefer="threads")(
                    delayed(self._validate)(
                        confidences[name],
                        search_rows,
                        beta,
                        factors,
                        train_popularity,
                        split,
                        exclude,
                    )
                    for name, beta in tasks
                )
            for (name, beta), metrics_by_factors in zip(tasks, outcomes, strict=True):
                results.extend(
                    {"weights_name": name, "beta": beta, "n_factors": k, **metrics}
                    for k, metrics in metrics_by_factors.items()
                )
            timings["search"] = time.perf_counter() - clock - timings["validation_split"]
            popularity_metrics_ = popularity_metrics(train_popularity, split, exclude)
            names = list(variants)
            # Best NDCG first; among equals, fewer factors, smaller beta, the given weights.
            results.sort(
                key=lambda r: (
                    -r["ndcg@10"],
                    r["n_factors"],
                    r["beta"],
                    names.index(r["weights_name"]),
                )
            )
            winner = results[0]
        else:
            winner = {
                "weights_name": "given",
                "beta": DEFAULT_BETA if DEFAULT_BETA in betas else betas[0],
                "n_factors": factors[len(factors) // 2] if self.search else factors[0],
                "ndcg@10": float("nan"),
            }

        self.weights_ = variants[winner["weights_name"]]
        self.beta_ = float(winner["beta"])
        self.now_ = now
        self.search_results_ = results
        self.validation_ndcg_ = float(winner["ndcg@10"])
        self.popularity_validation_ndcg_ = float(popularity_metrics_.get("ndcg@10", float("nan")))
        self.validation_metrics_ = {
            name: float(winner.get(name, float("nan")))
            for name in ("ndcg@10", "precision@10", "recall@10")
        }
        self.popularity_validation_metrics_ = dict(popularity_metrics_)
        self.n_validation_users_ = len(split.users)
        self.search_ = {
            "factors": factors,
            "betas": betas,
            "weights": list(variants),
            "validation_users": len(split.users),
            "search_users": len(search_rows),
            "search_n_iter": self._search_n_iter(),
            "n_iter": self.n_iter,
        }

        refit_started = time.perf_counter()
        full = aggregate(log, self.weights_, now)
        self.popularity_ = event_popularity(log)
        self.column_scale_ = column_scale(self.popularity_, self.beta_)
        self.confidence_ = full.confidence
        self.hidden_ = full.hidden
        self.svd_ = PureSVD(
            n_factors=int(winner["n_factors"]), n_iter=self.n_iter, random_state=self.random_state
        )
        self.svd_.fit(self._scaled(full.confidence))
        self.n_factors_ = self.svd_.n_factors_
        timings["refit"] = time.perf_counter() - refit_started
        self.timings_ = {name: round(seconds, 3) for name, seconds in timings.items()}
        self.params_: dict[str, Any] = {
            "n_factors": self.n_factors_,
            "beta": self.beta_,
            "weights_name": winner["weights_name"],
            "weights": self.weights_.to_dict(),
        }
        return self

    def _search_n_iter(self) -> int:
        return self.n_iter if self.search_n_iter is None else self.search_n_iter

    def _search_sample(self, split: ValidationSplit) -> tuple[np.ndarray, InteractionLog]:
        """Rows the search's SVDs are fitted on, and the training log of just those users."""
        with_rows = sorted_unique(split.train.user.astype(np.int64))
        if self.search_users is None or len(with_rows) <= self.search_users:
            return with_rows, split.train
        rng = np.random.default_rng(self.random_state)
        others = np.setdiff1d(with_rows, split.users, assume_unique=True)
        wanted = max(self.search_users - len(split.users), 0)
        sampled = rng.choice(others, size=min(wanted, len(others)), replace=False)
        rows = np.union1d(split.users.astype(np.int64), sampled)
        chosen = np.zeros(split.train.n_users, dtype=bool)
        chosen[rows] = True
        return rows, split.train.subset(chosen[split.train.user])

    def _validate(
        self,
        confidence: sp.csr_matrix,
        rows: np.ndarray,
        beta: float,
        factors: list[int],
        popularity: np.ndarray,
        split: ValidationSplit,
        exclude: sp.csr_matrix,
    ) -> dict[int, dict[str, float]]:
        scale = column_scale(popularity, beta)
        scaled = sp.csr_matrix(confidence[rows].multiply(scale[None, :]), dtype=np.float32)
        svd = PureSVD(
            n_factors=max(factors), n_iter=self._search_n_iter(), random_state=self.random_state
        ).fit(scaled)
        return prefix_metrics(confidence, svd, scale, popularity, split, exclude, factors)

    def _scaled(self, confidence: sp.csr_matrix) -> sp.csr_matrix:
        return sp.csr_matrix(confidence.multiply(self.column_scale_[None, :]), dtype=np.float32)

    @property
    def item_factors_(self) -> npt.NDArray[np.float32]:
        """V, shape (n_events, n_factors_): the event vectors of the fitted model."""
        return self.svd_.item_factors_

    def score(self, user_indices: npt.ArrayLike) -> npt.NDArray[np.float32]:
        """Scores of every event for training users (hidden events are not masked).

        Parameters
        ----------
        user_indices : array-like of shape (n,), int
            Indices below the training log's ``n_users``.

        Returns
        -------
        ndarray of shape (n, n_events), float32
        """
        users = np.asarray(user_indices, dtype=np.int64)
        if len(users) and (users.min() < 0 or users.max() >= self.confidence_.shape[0]):
            raise ValueError("a user index is outside the training data")
        return score_rows(
            self.confidence_[users], self.item_factors_, self.column_scale_, self.popularity_
        )

    def rows_aggregate(self, rows: Sequence[np.ndarray], now: float | None = None) -> Aggregate:
        """Aggregate of users' current rows of records (row ``i`` is user ``i``)."""
        n_events = self.item_factors_.shape[0]
        lengths = [len(row) for row in rows]
        records = (
            np.concatenate([np.asarray(row, dtype=RECORD_DTYPE) for row in rows])
            if rows
            else np.zeros(0, dtype=RECORD_DTYPE)
        )
        # Events newer than the model have no factors: their records are left out.
        user = np.repeat(np.arange(len(rows), dtype=np.int32), lengths)
        known = records["event"] < n_events
        log = InteractionLog(user[known], records[known], len(rows), n_events)
        return aggregate(log, self.weights_, self.now_ if now is None else now)

    def fold_in_rows(
        self, rows: Sequence[np.ndarray], now: float | None = None
    ) -> npt.NDArray[np.float32]:
        """User vectors ``x_u V`` of users' current rows of records.

        Parameters
        ----------
        rows : sequence of ndarray of RECORD_DTYPE
            Each user's records in applied order.
        now : float, optional
            Reference time for decay; defaults to ``now_``.

        Returns
        -------
        ndarray of shape (len(rows), n_factors_), float32
        """
        confidence = self.rows_aggregate(rows, now).confidence
        return self.svd_.fold_in(self._scaled(confidence))

    def score_rows(
        self, rows: Sequence[np.ndarray], now: float | None = None
    ) -> npt.NDArray[np.float32]:
        """Scores of every event for users' current rows (empty rows get popularity).

        Returns
        -------
        ndarray of shape (len(rows), n_events), float32
        """
        confidence = self.rows_aggregate(rows, now).confidence
        return score_rows(confidence, self.item_factors_, self.column_scale_, self.popularity_)

    def to_arrays(self) -> dict[str, np.ndarray]:
        """What serving needs, as plain arrays (``np.savez``; load with allow_pickle=False)."""
        return {
            "item_factors": self.item_factors_,
            "singular_values": self.svd_.singular_values_,
            "column_scale": self.column_scale_,
            "popularity": self.popularity_,
            "now": np.array(self.now_, dtype=np.float64),
            "params": np.array(json.dumps(self.params_)),
        }

    @classmethod
    def from_arrays(cls, arrays: Mapping[str, np.ndarray]) -> EventrecModel:
        """A model that scores rows (not training users) from :meth:`to_arrays` output."""
        params = json.loads(str(arrays["params"]))
        weights = InteractionWeights.from_dict(params["weights"])
        model = cls(weights=weights, n_factors=int(params["n_factors"]), search=False)
        model.params_ = params
        model.weights_ = weights
        model.beta_ = float(params["beta"])
        model.n_factors_ = int(params["n_factors"])
        model.now_ = float(arrays["now"])
        model.column_scale_ = np.asarray(arrays["column_scale"], dtype=np.float32)
        model.popularity_ = np.asarray(arrays["popularity"], dtype=np.int64)
        svd = PureSVD(n_factors=model.n_factors_)
        svd.item_factors_ = np.asarray(arrays["item_factors"], dtype=np.float32)
        svd.singular_values_ = np.asarray(arrays["singular_values"], dtype=np.float32)
        svd.n_factors_ = model.n_factors_
        model.svd_ = svd
        return model
