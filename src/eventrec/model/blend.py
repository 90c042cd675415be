"""The hybrid's blend: a logistic regression over bounded features.

The blend is learned, never hand-set: pointwise, each user's relevant events after a
(validation) cut are positives and events sampled from the same candidates are negatives.
A score is ``sum_f w_f x_f`` (the intercept ranks nothing), linear in bounded features, so
the best ``k`` are found exactly while scoring only a part of the catalogue
(:func:`eventrec.model.hybrid_topk.best_hybrid`).

Pointwise, the blend learns that a never-touched event is rarely booked, and ranks such
events where a user would hardly see them. The catalogue needs them seen: the weight of
``new`` is then raised (:meth:`HybridBlend.expose_new`) until the blend's top ``k`` hold
as many never-touched events as a ranking by content alone would show the same users;
which ones, and to whom, the blend still decides.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import numpy.typing as npt

from eventrec.model.errors import ModelFitError
from eventrec.model.hybrid_features import FEATURES

__all__ = ["HybridBlend", "sample_pairs"]


def sample_pairs(
    relevant: Sequence[npt.NDArray[np.int64]],
    candidates: Sequence[npt.NDArray[np.int64]],
    negatives_per_positive: int,
    rng: np.random.Generator,
) -> tuple[npt.NDArray[np.int64], npt.NDArray[np.int64], npt.NDArray[np.int8]]:
    """Training pairs: each user's relevant events (label 1) and, per positive,
    ``negatives_per_positive`` events drawn from the user's other candidates (label 0).

    Returns ``(rows, events, labels)``: ``rows[i]`` indexes ``relevant``.
    """
    rows: list[npt.NDArray[np.int64]] = []
    events: list[npt.NDArray[np.int64]] = []
    labels: list[npt.NDArray[np.int8]] = []
    for row, (positives, pool) in enumerate(zip(relevant, candidates, strict=True)):
        positives = np.asarray(positives, dtype=np.int64)
        others = np.setdiff1d(np.asarray(pool, dtype=np.int64), positives)
        if not len(positives) or not len(others):
            continue
        size = min(len(others), negatives_per_positive * len(positives))
        negatives = rng.choice(others, size=size, replace=False)
        chosen = np.concatenate((positives, negatives))
        rows.append(np.full(len(chosen), row, dtype=np.int64))
        events.append(chosen)
        labels.append(np.r_[np.ones(len(positives)), np.zeros(size)].astype(np.int8))
    if not rows:
        empty = np.zeros(0, dtype=np.int64)
        return empty, empty, np.zeros(0, dtype=np.int8)
    return np.concatenate(rows), np.concatenate(events), np.concatenate(labels)


class HybridBlend:
    """Logistic regression (scikit-learn) over the features of :data:`FEATURES`.

    Parameters
    ----------
    c : float
        Inverse L2 strength of the regression.
    features : sequence of str
        The features' names, column ``i`` being feature ``i``.

    Attributes
    ----------
    weights_ : ndarray of shape (n_features,), float64
    intercept_ : float
    shares_ : dict of str -> float
        Each feature's share of the blend on the training pairs: mean ``|w_f x_f|`` over
        the sum of them (sums to 1).
    n_pairs_ : int
    mean_abs_ : ndarray of shape (n_features,), float64
        Mean ``|x_f|`` over the training pairs (the shares' scale).
    exposure_ : dict
        What :meth:`expose_new` found (empty before it runs).
    """

    def __init__(self, c: float = 1.0, features: Sequence[str] = FEATURES) -> None:
        self.c = c
        self.features = tuple(features)

    def fit(self, pairs: npt.ArrayLike, labels: npt.ArrayLike) -> HybridBlend:
        """Fit on the pairs' features (n_pairs, n_features) and labels (1: relevant).

        Raises
        ------
        ModelFitError
            Without both labels, or with non-finite weights.
        """
        from sklearn.linear_model import LogisticRegression

        design = np.asarray(pairs, dtype=np.float64)
        labels = np.asarray(labels)
        if design.ndim != 2 or design.shape[1] != len(self.features):
            raise ModelFitError(f"features of shape {design.shape}, {len(self.features)} named")
        if len(np.unique(labels)) < 2:
            raise ModelFitError("the blend needs relevant and sampled pairs")
        regression = LogisticRegression(C=self.c, max_iter=1000)
        regression.fit(design, labels)
        weights = np.asarray(regression.coef_[0], dtype=np.float64)
        if not np.all(np.isfinite(weights)):
            raise ModelFitError("the blend has non-finite weights")
        self.weights_ = weights
        self.intercept_ = float(regression.intercept_[0])
        self.mean_abs_ = np.abs(design).mean(axis=0)
        self._share()
        self.n_pairs_ = len(labels)
        self.exposure_: dict[str, Any] = {}
        return self

    def _share(self) -> None:
        contribution = np.abs(self.weights_) * self.mean_abs_
        total = float(contribution.sum())
        self.shares_ = {
            name: float(c / total) if total > 0 else 0.0
            for name, c in zip(self.features, contribution, strict=True)
        }

    def expose_new(
        self,
        pairs: npt.ArrayLike,
        eligible: npt.ArrayLike,
        k: int = 10,
        reference: str = "content",
        new: str = "new",
    ) -> HybridBlend:
        """Raise the weight of ``new`` to the least value at which the blend's top ``k``
        hold, on average over the users given, as many new events as the top ``k`` of
        ``reference`` alone (never lower it). Uses no label: a sample of users at the
        instant the blend will rank for.

        Parameters
        ----------
        pairs : ndarray of shape (n_users, n_events, n_features)
            Every feature of the users' pairs with the catalogue (ineligible ones ignored).
        eligible : ndarray of shape (n_users, n_events), bool
            What each user may be recommended. Users whose ``reference`` is zero on every
            eligible event (nothing to rank by) are left out.
        """
        block = np.asarray(pairs, dtype=np.float64)
        allowed = np.asarray(eligible, dtype=bool)
        column, flag = self.features.index(reference), self.features.index(new)
        # An ineligible event is never shown, so it never counts as a new one shown.
        is_new = (block[:, :, flag] > 0) & allowed
        informed = (np.where(allowed, block[:, :, column], 0.0) > 0).any(axis=1)
        block, allowed, is_new = block[informed], allowed[informed], is_new[informed]
        limit = min(k, block.shape[1])
        self.exposure_ = {"k": k, "reference": reference, "users": len(block)}
        if limit <= 0 or not len(block):
            return self

        def shown(scores: npt.NDArray[np.float64]) -> float:
            ranked = np.where(allowed, scores, -np.inf)
            # Ties go to the lower position, as in every ranking of the project.
            order = np.argsort(-ranked, axis=1, kind="stable")[:, :limit]
            return float(np.take_along_axis(is_new, order, axis=1).sum(axis=1).mean())

        target = shown(block[:, :, column])
        scores = block @ self.weights_
        low, high = 0.0, 0.0
        if shown(scores) < target:
            # Past the widest gap between two eligible scores every new event comes first.
            high = float(np.ptp(np.where(allowed, scores, scores[allowed].min()))) + 1.0
            for _ in range(40):
                middle = (low + high) / 2
                if shown(scores + middle * is_new) >= target:
                    high = middle
                else:
                    low = middle
        learned = float(self.weights_[flag])
        self.weights_ = self.weights_.copy()
        self.weights_[flag] = learned + high
        self._share()
        self.exposure_.update(
            {
                "new_in_top_k": target,
                "learned_weight": learned,
                "raised_by": high,
            }
        )
        return self

    def score(self, pairs: npt.ArrayLike) -> npt.NDArray[np.float64]:
        """``pairs @ weights_``: features on the last axis (any leading shape)."""
        result: npt.NDArray[np.float64] = np.asarray(pairs, dtype=np.float64) @ self.weights_
        return result

    def strongest(self, pairs: npt.ArrayLike) -> list[str | None]:
        """For each pair, the feature that added most to its score (None: none added).

        What a reason should name: "matches your search", "trending in Kandy", ...
        """
        contributions = np.asarray(pairs, dtype=np.float64).reshape(-1, len(self.features))
        contributions = contributions * self.weights_[None, :]
        best = np.argmax(contributions, axis=1)
        return [
            self.features[int(f)] if contributions[row, f] > 0 else None
            for row, f in enumerate(best.tolist())
        ]

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON values (the version's metadata); :meth:`from_dict` restores them."""
        return {
            "model": "logistic_regression",
            "c": self.c,
            "features": list(self.features),
            "weights": {n: float(w) for n, w in zip(self.features, self.weights_, strict=True)},
            "intercept": self.intercept_,
            "shares": dict(self.shares_),
            "pairs": self.n_pairs_,
            "mean_abs": {n: float(m) for n, m in zip(self.features, self.mean_abs_, strict=True)},
            "exposure": dict(self.exposure_),
        }

    @classmethod
    def from_dict(cls, values: Mapping[str, Any]) -> HybridBlend:
        features = [str(name) for name in values["features"]]
        blend = cls(float(values["c"]), features)
        blend.weights_ = np.array([float(values["weights"][n]) for n in features])
        blend.intercept_ = float(values["intercept"])
        blend.shares_ = {str(k): float(v) for k, v in values["shares"].items()}
        blend.n_pairs_ = int(values["pairs"])
        scale = values.get("mean_abs") or {}
        blend.mean_abs_ = np.array([float(scale.get(n, 0.0)) for n in features])
        blend.exposure_ = dict(values.get("exposure") or {})
        return blend
