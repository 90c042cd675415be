"""EventrecSearch: picks EventrecModel's hyperparameters on a validation split, then refits.

Like scikit-learn's ``GridSearchCV``, the search is an object beside the estimator: it
validates either on a time cut it is given (:func:`eventrec.model.timecut.time_cut`: the
candidates on sale at the cut, what users did after it) or, without one, on a split it
carves out of the training log (each user's latest positive pairs, see
:mod:`eventrec.model.validation`); it fits one SVD per (weighting, popularity exponent)
with the largest factor count of the grid, scores every factor count as a prefix of it,
keeps the best by NDCG@10, compares it with popularity on the same validation, and
(``refit=True``) refits an :class:`EventrecModel` on all data with the winner
(``best_estimator_``). The grid includes plain PureSVD: binary confidences, no popularity
scaling (``beta`` 0), ranks from 8 up.
"""

from __future__ import annotations

import dataclasses
import os
import time
from collections.abc import Mapping
from typing import Any, Literal

import numpy as np
import scipy.sparse as sp
from joblib import Parallel, delayed
from threadpoolctl import threadpool_limits

from eventrec.model.aggregate import InteractionWeights, aggregate
from eventrec.model.errors import ModelFitError
from eventrec.model.recommender import (
    BINARY_WEIGHTS,
    DEFAULT_BETA,
    DEFAULT_N_FACTORS,
    EventrecModel,
    column_scale,
    max_factors,
)
from eventrec.model.records import InteractionLog, event_popularity, interacted_pairs, sorted_unique
from eventrec.model.svd import PureSVD
from eventrec.model.timecut import TimeCut
from eventrec.model.validation import (
    ValidationSplit,
    popularity_metrics,
    prefix_metrics,
    validation_split,
)

__all__ = ["BETA_GRID", "FACTOR_GRID", "EventrecSearch"]

FACTOR_GRID = (8, 16, 32, 64, 128, 256)
BETA_GRID = (0.0, 0.25, 0.5)


class EventrecSearch:
    """Hyperparameter search of :class:`EventrecModel`, refitting the winner on all data.

    Parameters
    ----------
    weights : InteractionWeights, optional
        Confidence weights; defaults to ``InteractionWeights()``. The search also tries
        binary weights (every interaction 1) and keeps whichever validates better.
    n_factors : int or "auto"
        ``"auto"`` searches 8, 16, 32, 64, 128, 256 (clipped to the data); an int fixes it.
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
    refit : bool
        Refit the winner on all data (``best_estimator_``); without, only choose.
    held_back : "latest" or "random"
        Without a time cut, which positive pairs of each validation user are held back.

    Attributes
    ----------
    best_params_ : dict
        The winner's ``weights_name``, ``beta`` and ``n_factors``.
    best_estimator_ : EventrecModel
        The winner, refitted on all data (``refit=True`` only).
    params_ : dict
        The winner's ``params_``.
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
        refit: bool = True,
        held_back: Literal["latest", "random"] = "latest",
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
        self.refit = refit
        self.held_back = held_back

    def estimator(self, params: Mapping[str, Any] | None = None) -> EventrecModel:
        """An unfitted EventrecModel with ``params`` (default: the winner's)."""
        chosen = dict(self.best_params_ if params is None else params)
        weights = chosen.get("weights")
        if weights is None:
            given = self.weights or InteractionWeights()
            binary = dataclasses.replace(BINARY_WEIGHTS, half_life_days=given.half_life_days)
            weights = binary if chosen.get("weights_name") == "binary" else given
        elif isinstance(weights, Mapping):
            weights = InteractionWeights.from_dict(dict(weights))
        return EventrecModel(
            weights=weights,
            n_factors=int(chosen["n_factors"]),
            beta=float(chosen["beta"]),
            weights_name=str(chosen.get("weights_name", "given")),
            n_iter=self.n_iter,
            random_state=self.random_state,
        )

    def _grid(
        self, n_users: int, n_events: int, n_stored: int = 0
    ) -> tuple[list[int], list[float], dict[str, InteractionWeights]]:
        largest = max_factors(n_users, n_events)
        if largest < 1:
            raise ModelFitError(f"a {n_users} x {n_events} log is too small for one factor")
        if self.max_factor_cells is not None and n_stored > 0:
            affordable = max(self.max_factor_cells // n_stored, min(FACTOR_GRID))
            largest = min(largest, affordable)
        if self.n_factors == "auto" and self.search:
            factors = sorted({min(k, largest) for k in FACTOR_GRID})
        elif self.n_factors == "auto":
            factors = [min(DEFAULT_N_FACTORS, largest)]
        else:
            factors = [min(int(self.n_factors), largest)]
        given = self.weights or InteractionWeights()
        if self.search:
            binary = dataclasses.replace(BINARY_WEIGHTS, half_life_days=given.half_life_days)
            variants: dict[str, InteractionWeights] = {"given": given, "binary": binary}
            return factors, list(BETA_GRID), variants
        return factors, [DEFAULT_BETA], {"given": given}

    def fit(
        self, log: InteractionLog, now: float | None = None, validation: TimeCut | None = None
    ) -> EventrecSearch:
        """Search hyperparameters on a validation of ``log``, then refit on all of it.

        Parameters
        ----------
        log : InteractionLog
        now : float, optional
            Reference time for decay; defaults to the log's latest time.
        validation : TimeCut, optional
            A time cut of ``log`` to validate on (its ``train`` fits the grid, its users
            rank its candidates); default: each sampled user's latest positive pairs.

        Returns
        -------
        self

        Raises
        ------
        ModelFitError
            When the log is too small or the SVD fails.
        """
        if now is None:
            now = log.latest_time()
        factors, betas, variants = self._grid(log.n_users, log.n_events, len(log))
        clock = time.perf_counter()
        timings: dict[str, float] = {}
        candidates: np.ndarray | None = None
        given_exclude: sp.csr_matrix | None = None
        if validation is None:
            split = validation_split(
                log, self.max_validation_users, self.random_state, held_back=self.held_back
            )
        else:
            split = self.cut_split(validation)
            candidates, given_exclude = validation.candidates, validation.exclude
        timings["validation_split"] = time.perf_counter() - clock
        results: list[dict[str, Any]] = []
        popularity_metrics_: dict[str, float] = {}
        search_rows = np.zeros(0, dtype=np.int64)
        if len(split.users):
            train_popularity = event_popularity(split.train)
            search_rows, search_log = self._search_sample(split)
            exclude = interacted_pairs(search_log) if given_exclude is None else given_exclude
            # Decay in the validation is anchored to the cut, as serving's would be then.
            anchor = now if validation is None else validation.cut
            confidences = {
                name: aggregate(search_log, weights, anchor).confidence
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
                        candidates,
                    )
                    for name, beta in tasks
                )
            for (name, beta), metrics_by_factors in zip(tasks, outcomes, strict=True):
                results.extend(
                    {"weights_name": name, "beta": beta, "n_factors": k, **metrics}
                    for k, metrics in metrics_by_factors.items()
                )
            timings["search"] = time.perf_counter() - clock - timings["validation_split"]
            popularity_metrics_ = popularity_metrics(train_popularity, split, exclude, candidates)
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
            "validation": f"{self.held_back} pairs" if validation is None else "time cut",
            "validation_users": len(split.users),
            "search_users": len(search_rows),
            "search_n_iter": self._search_n_iter(),
            "n_iter": self.n_iter,
        }

        self.best_params_: dict[str, Any] = {
            "weights_name": str(winner["weights_name"]),
            "beta": float(winner["beta"]),
            "n_factors": int(winner["n_factors"]),
        }
        if self.refit:
            refit_started = time.perf_counter()
            self.best_estimator_ = self.estimator().fit(log, now)
            timings["refit"] = time.perf_counter() - refit_started
            self.params_: dict[str, Any] = dict(self.best_estimator_.params_)
        else:
            weights = variants[self.best_params_["weights_name"]]
            self.params_ = {**self.best_params_, "weights": weights.to_dict()}
        self.timings_ = {name: round(seconds, 3) for name, seconds in timings.items()}
        return self

    def cut_split(self, cut: TimeCut) -> ValidationSplit:
        """The cut's users (a sample of at most ``max_validation_users``) as a split."""
        users, relevant = cut.users, cut.relevant
        if len(users) > self.max_validation_users:
            rng = np.random.default_rng(self.random_state)
            keep = np.sort(rng.choice(len(users), size=self.max_validation_users, replace=False))
            users, relevant = users[keep], [relevant[i] for i in keep.tolist()]
        return ValidationSplit(cut.train, users, relevant)

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
        candidates: np.ndarray | None = None,
    ) -> dict[int, dict[str, float]]:
        scale = column_scale(popularity, beta)
        scaled = sp.csr_matrix(confidence[rows].multiply(scale[None, :]), dtype=np.float32)
        svd = PureSVD(
            n_factors=max(factors), n_iter=self._search_n_iter(), random_state=self.random_state
        ).fit(scaled)
        return prefix_metrics(
            confidence, svd, scale, popularity, split, exclude, factors, candidates
        )
