"""The hybrid under the time protocol: eventrec's collaborative part, content, profile and
context features (:mod:`eventrec.model.hybrid_features`), blended by a logistic
regression learned on the validation cut (:mod:`eventrec.model.blend`).

At a cut T: eventrec as served is fitted before T (its search validating one horizon
earlier, as ever); the same configuration is fitted before the validation cut, whose
relevant pairs (positives) and pairs sampled from the same candidates (negatives) teach
the blend; at T, the weight of ``new`` is raised until never-touched events get the
exposure content alone would give them (:meth:`HybridBlend.expose_new`, on a sample of the
users with a record before T, without labels); the blend then ranks every candidate at T
from the features at T.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt
import scipy.sparse as sp

from eventrec.evaluation.time_protocol import ServedEventrec, TimeContext, documents_at
from eventrec.model.blend import HybridBlend, sample_pairs
from eventrec.model.errors import ModelFitError
from eventrec.model.hybrid_features import (
    HybridCatalogue,
    TextModel,
    UserSignals,
    event_text,
    feature_block,
    stated_text,
    user_signals,
)
from eventrec.model.recommender import EventrecModel
from eventrec.model.served import aggregate_rows, fold_in
from eventrec.resources import city_centroids

__all__ = ["HybridEventrec"]

# Sampled negatives per relevant pair, and the validation users that teach the blend.
NEGATIVES_PER_POSITIVE = 4
MAX_BLEND_USERS = 5_000
USER_CHUNK = 256
# Users with a record before T whose top 10 set the exposure of never-touched events.
EXPOSURE_USERS = 1_000


@dataclass
class _AtCut:
    """The hybrid's inputs at one instant: the catalogue's arrays and the users' rows."""

    base: ServedEventrec
    catalogue: HybridCatalogue
    text: TextModel
    profiles: Sequence[dict[str, Any] | None]
    now: float

    @classmethod
    def of(cls, base: ServedEventrec, context: TimeContext) -> _AtCut:
        texts = [event_text(d) for d in context.documents]
        text = TextModel().fit(texts)
        catalogue = HybridCatalogue.build(
            context.documents,
            base.catalogue_vectors_,
            base.served_.trending,
            context.dates.starts_at[: len(context.documents)],
            text.transform(texts),
            city_centroids(),
            published_at=context.dates.published_at[: len(context.documents)],
            interactions=context.cut.interactions_before,
        )
        return cls(base, catalogue, text, context.profiles, context.cut.cut)

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
        profiles = [self.profiles[u] if u < len(self.profiles) else None for u in users.tolist()]
        stated = self.text.transform([stated_text(p) for p in profiles])
        return user_signals(self.catalogue, vectors, confidence, stated, profiles)

    def features(
        self, users: npt.NDArray[np.int64], positions: npt.NDArray[np.int64]
    ) -> npt.NDArray[np.float64]:
        return feature_block(self.catalogue, self.signals(users), positions, self.now)


class HybridEventrec:
    """The learned hybrid at a cut (see the module docstring)."""

    def __init__(self, random_state: int = 42, n_jobs: int = 2) -> None:
        self.random_state = random_state
        self.n_jobs = n_jobs
        self.params_: dict[str, Any] = {}

    def fit(self, context: TimeContext) -> HybridEventrec:
        base = ServedEventrec(random_state=self.random_state, n_jobs=self.n_jobs).fit(context)
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
        at_validation = _AtCut.of(earlier, validation_context)
        # Users with a history and users with none: one blend answers both.
        self.blend_ = self._fit_blend(
            at_validation,
            validation,
            np.concatenate((validation.users, validation.new_users)),
            [*validation.relevant, *validation.new_relevant],
        )
        self.at_cut_ = _AtCut.of(base, context)
        self._expose(context)
        self.params_ = {
            **base.params_,
            "blend": self.blend_.to_dict(),
        }
        return self

    def _fit_blend(
        self, at: _AtCut, validation: Any, users: np.ndarray, relevant: Sequence[np.ndarray]
    ) -> HybridBlend:
        rng = np.random.default_rng(self.random_state)
        users = np.asarray(users, dtype=np.int64)
        picked = np.arange(len(users))
        if len(users) > MAX_BLEND_USERS:
            picked = np.sort(rng.choice(len(users), MAX_BLEND_USERS, replace=False))
        candidates = np.flatnonzero(validation.candidates)
        designs, labels = [], []
        for start in range(0, len(picked), USER_CHUNK):
            chunk = picked[start : start + USER_CHUNK]
            chunk_users = users[chunk]
            pools = [
                np.setdiff1d(candidates, validation.exclude[user].indices)
                for user in chunk_users.tolist()
            ]
            rows, events, label = sample_pairs(
                [np.asarray(relevant[i], dtype=np.int64) for i in chunk],
                pools,
                NEGATIVES_PER_POSITIVE,
                rng,
            )
            if not len(rows):
                continue
            block = at.features(chunk_users, candidates)
            # Pairs are drawn from the candidates: each event has its column.
            designs.append(block[rows, np.searchsorted(candidates, events)])
            labels.append(label)
        if not designs:
            raise ModelFitError("no validation pairs to teach the blend")
        return HybridBlend().fit(np.concatenate(designs), np.concatenate(labels))

    def _expose(self, context: TimeContext) -> None:
        rng = np.random.default_rng(self.random_state)
        known = np.unique(context.cut.train.user).astype(np.int64)
        if len(known) > EXPOSURE_USERS:
            known = np.sort(rng.choice(known, EXPOSURE_USERS, replace=False))
        candidates = np.flatnonzero(context.cut.candidates)
        if not len(known) or not len(candidates):
            return
        eligible = ~context.cut.exclude[known][:, candidates].toarray().astype(bool)
        self.blend_.expose_new(self.at_cut_.features(known, candidates), eligible)

    def score(self, users: np.ndarray) -> np.ndarray:
        users = np.asarray(users, dtype=np.int64)
        n_events = self.at_cut_.catalogue.tfidf.shape[0]
        positions = np.arange(n_events, dtype=np.int64)
        scores = np.zeros((len(users), n_events))
        for start in range(0, len(users), USER_CHUNK):
            chunk = users[start : start + USER_CHUNK]
            scores[start : start + len(chunk)] = self.blend_.score(
                self.at_cut_.features(chunk, positions)
            )
        if self.at_cut_.base.hide_viewed_:
            for row, records in enumerate(self.at_cut_.base._rows(users)):
                scores[row, records["event"]] = -np.inf
        return scores
