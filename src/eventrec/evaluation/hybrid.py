"""The hybrid under the time protocol: eventrec's collaborative part, content, profile and
context features (:mod:`eventrec.model.hybrid_features`), blended by a logistic
regression learned on the validation cut (:mod:`eventrec.model.hybrid`).

At a cut T: eventrec as served is fitted before T (its search validating one horizon
earlier, as ever); the same configuration is fitted before the validation cut, whose
relevant pairs (positives) and pairs sampled from the same candidates (negatives) teach
the blend; at T, the weight of ``new`` is raised until never-touched events get the
exposure content alone would give them (:func:`~eventrec.model.hybrid.expose_blend`, on a
sample of the users with a record before T, without labels), as the trainer does at
publish; the blend then ranks every candidate at T from the features at T, as serving
answers (``answer_rows``): users with a usable row, a profile or searches by the blend,
users nothing is known about by trending. This is the time protocol's ``eventrec`` (and
``hybrid``, its alias).

An event is ``new`` when the model fitted before T has nobody's record of it (its
``popularity_``, distinct users with a record other than a dismissal): what a version
knows, as serving counts it.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt
import scipy.sparse as sp

from eventrec.evaluation.time_protocol import ServedEventrec, TimeContext, documents_at
from eventrec.model.blend import HybridBlend
from eventrec.model.errors import ModelFitError
from eventrec.model.hybrid import (
    USER_CHUNK,
    blend_weights,
    catalogue_interactions,
    collaborative_only,
    expose_blend,
    fit_blend,
    normalised,
    signals_of,
    take_catalogue,
)
from eventrec.model.hybrid_features import (
    HybridCatalogue,
    TextModel,
    UserSignals,
    event_text,
    feature_block,
    shared_rest,
)
from eventrec.model.hybrid_topk import BlockBounds, best_hybrid, hybrid_scores
from eventrec.model.recommender import EventrecModel
from eventrec.model.served import aggregate_rows, fold_in, profile_trending
from eventrec.model.timecut import TimeCut
from eventrec.resources import city_centroids

__all__ = ["AtCut", "HybridEventrec"]


@dataclass
class AtCut:
    """The hybrid's inputs at one instant: the catalogue's arrays and the users' rows."""

    base: ServedEventrec
    catalogue: HybridCatalogue
    text: TextModel
    profiles: Sequence[dict[str, Any] | None]
    now: float

    @classmethod
    def of(cls, base: ServedEventrec, context: TimeContext, text: TextModel | None = None) -> AtCut:
        """``text``: the TF-IDF to use (default: fitted on the catalogue at the cut)."""
        texts = [event_text(d) for d in context.documents]
        text = TextModel().fit(texts) if text is None else text
        catalogue = HybridCatalogue.build(
            context.documents,
            base.catalogue_vectors_,
            base.served_.trending,
            context.dates.starts_at[: len(context.documents)],
            text.transform(texts),
            city_centroids(),
            published_at=context.dates.published_at[: len(context.documents)],
            interactions=catalogue_interactions(
                base.served_.model.popularity_, np.arange(len(context.documents))
            ),
        )
        # Scaled over the events on sale at the cut, as serving scales its catalogue.
        catalogue = normalised(catalogue, np.flatnonzero(context.cut.candidates))
        return cls(base, catalogue, text, context.profiles, context.cut.cut)

    def expose(self, blend: HybridBlend, cut: TimeCut, random_state: int) -> HybridBlend:
        """Raise ``new``'s weight for this instant (:func:`expose_blend`): users with a
        record before it, ranking the candidates on sale."""
        return expose_blend(
            blend,
            self.features,
            np.unique(cut.train.user).astype(np.int64),
            np.flatnonzero(cut.candidates),
            cut.exclude,
            random_state,
        )

    def usable(self, users: npt.NDArray[np.int64]) -> npt.NDArray[np.bool_]:
        """Users serving answers by the blend: a usable row (a non-zero vector), or a
        profile."""
        folded = self.signals(users).vectors.any(axis=1)
        profiles = np.array([bool(p) for p in self._profiles(users)], dtype=bool)
        result: npt.NDArray[np.bool_] = folded | profiles
        return result

    def _profiles(self, users: npt.NDArray[np.int64]) -> list[dict[str, Any] | None]:
        return [self.profiles[u] if u < len(self.profiles) else None for u in users.tolist()]

    def signals(self, users: npt.NDArray[np.int64]) -> UserSignals:
        rows = self.base._rows(users)
        n = len(rows)
        n_events = self.catalogue.tfidf.shape[0]
        vectors = np.zeros((n, self.catalogue.vectors.shape[1]), dtype=np.float32)
        confidence = sp.csr_matrix((n, n_events), dtype=np.float32)
        usable = [i for i, r in enumerate(rows) if len(r) >= self.base.min_records_]
        if usable:
            model = self.base.served_.model
            result, _, _ = aggregate_rows([rows[i] for i in usable], model.weights_, self.now)
            folded = result.confidence.tocsr()
            vectors[usable] = fold_in(
                folded,
                model.item_factors_,
                model.column_scale_,
                self.catalogue.vectors,
                np.arange(n_events, dtype=np.int64),
            )
            folded = sp.csr_matrix(folded[:, :n_events]) if folded.shape[1] > n_events else folded
            folded.resize((len(usable), n_events))
            placed = sp.lil_matrix((n, n_events), dtype=np.float32)
            placed[usable] = folded
            confidence = sp.csr_matrix(placed)
        return signals_of(
            self.catalogue, self.text, vectors, confidence, None, self._profiles(users)
        )

    def features(
        self, users: npt.NDArray[np.int64], positions: npt.NDArray[np.int64]
    ) -> npt.NDArray[np.float64]:
        # The features of these positions only: the TF-IDF products stay small.
        sub = take_catalogue(self.catalogue, positions)
        every = np.arange(len(positions), dtype=np.int64)
        return feature_block(sub, self.signals(users), every, self.now)


def learn_blend(at: AtCut, validation: TimeCut, random_state: int) -> HybridBlend:
    """The blend taught on a cut's relevant pairs (users with a history and new users);
    the collaborative-only fallback when there is nothing to learn from."""
    users = np.concatenate((validation.users, validation.new_users)).astype(np.int64)
    relevant = [*validation.relevant, *validation.new_relevant]
    try:
        return fit_blend(
            at.features,
            users,
            relevant,
            np.flatnonzero(validation.candidates),
            validation.exclude,
            random_state,
        )
    except ModelFitError as exc:
        return collaborative_only(str(exc))


class HybridEventrec:
    """The learned hybrid at a cut (see the module docstring)."""

    def __init__(
        self,
        random_state: int = 42,
        n_jobs: int = 2,
        estimator: EventrecModel | None = None,
    ) -> None:
        self.random_state = random_state
        self.n_jobs = n_jobs
        self.estimator = estimator
        self.params_: dict[str, Any] = {}

    @classmethod
    def of(cls, base: ServedEventrec, context: TimeContext, blend: HybridBlend) -> HybridEventrec:
        """The hybrid of an already fitted ``base`` with a given blend (the trainer's gate)."""
        hybrid = cls(random_state=base.random_state)
        hybrid.blend_ = blend
        hybrid.at_cut_ = AtCut.of(base, context)
        hybrid.params_ = {**base.params_, "blend": blend.to_dict()}
        return hybrid

    def fit(self, context: TimeContext) -> HybridEventrec:
        base = ServedEventrec(
            random_state=self.random_state, n_jobs=self.n_jobs, estimator=self.estimator
        ).fit(context)
        fitted = base.served_.model
        estimator = EventrecModel(
            weights=fitted.weights_,
            n_factors=fitted.n_factors_,
            beta=fitted.beta_,
            weights_name=fitted.weights_name,
            random_state=self.random_state,
        )
        validation = context.validation_cut()
        validation_context = TimeContext(
            cut=validation,
            raw_rating=context.raw_rating[validation.train_index],
            documents=documents_at(context.documents, context.dates, validation),
            profiles=context.profiles,
            dates=context.dates,
            horizon_days=context.horizon_days,
            relevant_min_rating=context.relevant_min_rating,
            seed=context.seed,
            n_jobs=context.n_jobs,
            served=context.served,
        )
        earlier = ServedEventrec(random_state=self.random_state, estimator=estimator)
        earlier.fit(validation_context)
        # Users with a history and users with none: one blend answers both.
        self.blend_ = learn_blend(
            AtCut.of(earlier, validation_context), validation, self.random_state
        )
        self.at_cut_ = AtCut.of(base, context)
        self.at_cut_.expose(self.blend_, context.cut, self.random_state)
        self.params_ = {**base.params_, "blend": self.blend_.to_dict()}
        return self

    def rank_top(
        self, users: np.ndarray, candidates: np.ndarray, exclude: sp.csr_matrix, k: int
    ) -> npt.NDArray[np.int64]:
        """The top-k candidates per user as :func:`rank` would take them from
        :meth:`score`, by the exact pruned top-k serving uses (padded with -1)."""
        users = np.asarray(users, dtype=np.int64)
        at, base, blend = self.at_cut_, self.at_cut_.base, self.blend_
        catalogue = at.catalogue
        n_events = catalogue.tfidf.shape[0]
        norms = np.linalg.norm(catalogue.vectors.astype(np.float64), axis=1)
        blocks = BlockBounds.of(catalogue, norms)
        every = np.arange(n_events, dtype=np.int64)
        shared = shared_rest(catalogue, blend_weights(blend), every, at.now)
        trending = np.asarray(base.served_.trending, dtype=np.float64)
        result = np.full((len(users), k), -1, dtype=np.int64)
        for start in range(0, len(users), USER_CHUNK):
            chunk = users[start : start + USER_CHUNK]
            signals = at.signals(chunk)
            profiles = np.array([bool(p) for p in at._profiles(chunk)], dtype=bool)
            usable = signals.vectors.any(axis=1) | profiles
            masks = []
            for row, user in enumerate(chunk.tolist()):
                mask = np.asarray(candidates, dtype=bool).copy()
                mask[exclude[user].indices] = False
                if base.hide_viewed_:
                    mask[base._rows(chunk[row : row + 1])[0]["event"]] = False
                masks.append(mask)
            found, _ = best_hybrid(
                blend, catalogue, norms, signals, masks, [k] * len(chunk), at.now, shared, blocks
            )
            for row, (positions, _) in enumerate(found):
                if not usable[row]:  # nothing known: trending, as serving answers
                    eligible = np.flatnonzero(masks[row])
                    order = np.lexsort((eligible, -trending[eligible]))
                    positions = eligible[order][:k]
                result[start + row, : len(positions)] = positions
        return result

    def score(self, users: np.ndarray) -> np.ndarray:
        users = np.asarray(users, dtype=np.int64)
        at = self.at_cut_
        base = at.base
        n_events = at.catalogue.tfidf.shape[0]
        scores = np.zeros((len(users), n_events))
        for start in range(0, len(users), USER_CHUNK):
            chunk = users[start : start + USER_CHUNK]
            scores[start : start + len(chunk)] = hybrid_scores(
                self.blend_, at.catalogue, at.signals(chunk), at.now
            )
        # Nothing known (no usable row, no profile): trending, as serving answers.
        for row in np.flatnonzero(~at.usable(users)).tolist():
            scores[row] = profile_trending(
                base.served_.trending, base.city_, base.category_, None, []
            )
        if base.hide_viewed_:
            for row, records in enumerate(base._rows(users)):
                scores[row, records["event"]] = -np.inf
        return scores
