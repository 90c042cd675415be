"""The learned hybrid as the trainer fits it and serving and the evaluation score with it.

Pure numerics shared by ``trainer``, ``serving`` and ``evaluation``:

- :class:`HybridInputs` turns users' rows (folded-in vectors, confidences), profiles and
  searches into :class:`~eventrec.model.hybrid_features.UserSignals` over a catalogue;
- :func:`fit_blend` teaches a :class:`~eventrec.model.blend.HybridBlend` on the relevant
  pairs of a (validation) cut and pairs sampled from the same candidates;
- :func:`expose_blend` raises the weight of ``new`` at the instant the blend will rank
  for, until never-touched events get the exposure content alone would give them
  (:meth:`~eventrec.model.blend.HybridBlend.expose_new`), without labels;
- :func:`collaborative_only` is the documented fallback when there is not enough to
  learn from: a fixed blend of the collaborative feature alone, marked as such;
- :func:`hybrid_scores` scores every position (the reference) and :func:`best_hybrid`
  finds the best ``k`` exactly while scoring the collaborative part of few positions.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt
import scipy.sparse as sp

from eventrec.model.blend import HybridBlend, best_by_bound, sample_pairs
from eventrec.model.errors import ModelFitError
from eventrec.model.hybrid_features import (
    FEATURES,
    TEXT_FEATURES,
    HybridCatalogue,
    TextModel,
    UserSignals,
    dense_profile,
    feature_block,
    rest_scores,
    row_dots,
    stated_text,
    user_signals,
)

__all__ = [
    "COLLABORATIVE_ONLY",
    "NEGATIVES_PER_POSITIVE",
    "TextBounds",
    "best_hybrid",
    "blend_from_metadata",
    "blend_metadata",
    "blend_weights",
    "catalogue_interactions",
    "collaborative_only",
    "expose_blend",
    "fit_blend",
    "hybrid_scores",
    "normalised",
    "pair_features",
    "rest_bounds",
    "scaled_users",
    "signals_of",
    "take_catalogue",
]

# Sampled negatives per relevant pair, and the validation users that teach the blend.
NEGATIVES_PER_POSITIVE = 4
MAX_BLEND_USERS = 5_000
USER_CHUNK = 256
# Users with a record before the instant whose top 10 set the exposure of new events.
EXPOSURE_USERS = 1_000
# Pairs (users x candidates) of the exposure's feature block: fewer users on a large
# catalogue (1,000 users up to 3,000 candidates), its memory bounded.
EXPOSURE_PAIRS = 3_000_000
# The fallback blend's ``model`` in the version's metadata.
COLLABORATIVE_ONLY = "fixed: collaborative only"

# Block of features of (users, positions) at the blend's cut.
FeatureSource = Callable[[npt.NDArray[np.int64], npt.NDArray[np.int64]], npt.NDArray[np.float64]]


def collaborative_only(reason: str, features: Sequence[str] = FEATURES) -> HybridBlend:
    """The fallback blend: weight 1 on ``collaborative``, 0 elsewhere (ranks as PureSVD).

    Used when the validation cut has too few relevant pairs to learn from; its
    ``to_dict()`` says ``model: "fixed: collaborative only"`` and why.
    """
    blend = HybridBlend(features=features)
    blend.weights_ = np.array([1.0 if f == FEATURES[0] else 0.0 for f in blend.features])
    blend.intercept_ = 0.0
    blend.shares_ = {f: (1.0 if f == FEATURES[0] else 0.0) for f in blend.features}
    blend.n_pairs_ = 0
    blend.mean_abs_ = np.zeros(len(blend.features))
    blend.exposure_ = {}
    blend.fallback_ = reason  # type: ignore[attr-defined]
    return blend


def blend_metadata(blend: HybridBlend) -> dict[str, Any]:
    """The blend as the version's metadata records it (the fallback marked as such)."""
    document = blend.to_dict()
    reason = getattr(blend, "fallback_", None)
    if reason is not None:
        document["model"] = COLLABORATIVE_ONLY
        document["fallback"] = reason
    return document


def blend_from_metadata(document: Mapping[str, Any]) -> HybridBlend:
    blend = HybridBlend.from_dict(document)
    if document.get("model") == COLLABORATIVE_ONLY:
        blend.fallback_ = str(document.get("fallback", ""))  # type: ignore[attr-defined]
    return blend


def catalogue_interactions(
    popularity: npt.ArrayLike, model_index: npt.ArrayLike
) -> npt.NDArray[np.int64]:
    """Each catalogue event's interaction count as a version knows it: the model's
    ``popularity`` (distinct users with a record other than a dismissal, at fit time) at
    ``model_index`` (-1 or beyond the model: an event newer than the version, 0)."""
    counts = np.asarray(popularity, dtype=np.int64)
    index = np.asarray(model_index, dtype=np.int64)
    known = (index >= 0) & (index < len(counts))
    return np.where(known, counts[np.where(known, index, 0)] if len(counts) else 0, 0)


def blend_weights(blend: HybridBlend) -> dict[str, float]:
    return {name: float(w) for name, w in zip(blend.features, blend.weights_, strict=True)}


def fit_blend(
    features: FeatureSource,
    users: npt.NDArray[np.int64],
    relevant: Sequence[npt.NDArray[np.int64]],
    candidates: npt.NDArray[np.int64],
    exclude: sp.csr_matrix,
    random_state: int = 0,
    max_users: int = MAX_BLEND_USERS,
) -> HybridBlend:
    """Learn the blend on a cut: each user's relevant candidates (label 1) against
    :data:`NEGATIVES_PER_POSITIVE` per positive sampled from the user's other candidates.

    Features are computed only at the sampled pairs' positions, a chunk of users at a time.

    Raises
    ------
    ModelFitError
        No pair to learn from, pairs of one label, or non-finite weights.
    """
    rng = np.random.default_rng(random_state)
    users = np.asarray(users, dtype=np.int64)
    picked = np.arange(len(users))
    if len(users) > max_users:
        picked = np.sort(rng.choice(len(users), max_users, replace=False))
    candidates = np.asarray(candidates, dtype=np.int64)
    designs, labels = [], []
    for start in range(0, len(picked), USER_CHUNK):
        chunk = picked[start : start + USER_CHUNK]
        chunk_users = users[chunk]
        pools = [np.setdiff1d(candidates, exclude[user].indices) for user in chunk_users.tolist()]
        rows, events, label = sample_pairs(
            [np.asarray(relevant[i], dtype=np.int64) for i in chunk],
            pools,
            NEGATIVES_PER_POSITIVE,
            rng,
        )
        if not len(rows):
            continue
        columns, place = np.unique(events, return_inverse=True)
        block = features(chunk_users, columns)
        designs.append(block[rows, place])
        labels.append(label)
    if not designs:
        raise ModelFitError("no validation pairs to teach the blend")
    return HybridBlend().fit(np.concatenate(designs), np.concatenate(labels))


def expose_blend(
    blend: HybridBlend,
    features: FeatureSource,
    users: npt.NDArray[np.int64],
    candidates: npt.NDArray[np.int64],
    exclude: sp.csr_matrix,
    random_state: int = 0,
    max_users: int = EXPOSURE_USERS,
) -> HybridBlend:
    """Raise ``new``'s weight (:meth:`HybridBlend.expose_new`) on at most ``max_users``
    of ``users`` (fewer when users x candidates would pass :data:`EXPOSURE_PAIRS`), users
    with a record before the instant ``features`` is at, each ranking the ``candidates``
    it may be shown (``exclude[user]`` left out). The fallback blend
    (:func:`collaborative_only`) is left as it is: it ranks by the collaborative part alone.
    """
    if getattr(blend, "fallback_", None) is not None or "new" not in blend.features:
        return blend
    users = np.unique(np.asarray(users, dtype=np.int64))
    candidates = np.asarray(candidates, dtype=np.int64)
    max_users = max(min(max_users, EXPOSURE_PAIRS // max(len(candidates), 1)), 1)
    if len(users) > max_users:
        rng = np.random.default_rng(random_state)
        users = np.sort(rng.choice(users, max_users, replace=False))
    if not len(users) or not len(candidates):
        # Recorded all the same: the metadata says the rule ran and had nobody to rank for.
        blend.exposure_ = {"k": 10, "reference": "content", "users": 0}
        return blend
    eligible = ~sp.csr_matrix(exclude)[users][:, candidates].toarray().astype(bool)
    return blend.expose_new(features(users, candidates), eligible)


def signals_of(
    catalogue: HybridCatalogue,
    text: TextModel | None,
    vectors: npt.NDArray[np.float32],
    confidence: sp.csr_matrix,
    position_of: npt.NDArray[np.int64] | None,
    profiles: Sequence[Mapping[str, Any] | None],
    searches: Sequence[Sequence[str]] | None = None,
) -> UserSignals:
    """Users' signals from fold-in vectors and confidences over event indices.

    ``position_of[e]`` is the catalogue position of event index ``e`` (-1: none; None:
    event indices are positions). ``searches``: each user's recent queries, newest first.
    """
    n_users, n_events = len(vectors), catalogue.tfidf.shape[0]
    confidence = sp.csr_matrix(confidence, dtype=np.float32)
    if position_of is not None:
        coo = confidence.tocoo()
        inside = coo.col < len(position_of)
        rows, cols, data = coo.row[inside], position_of[coo.col[inside]], coo.data[inside]
        kept = cols >= 0
        confidence = sp.csr_matrix(
            (data[kept], (rows[kept], cols[kept])), shape=(n_users, n_events), dtype=np.float32
        )
    queries = searches if searches is not None else [()] * n_users
    texts = [stated_text(p, q) for p, q in zip(profiles, queries, strict=True)]
    if text is None or not any(texts):
        stated = sp.csr_matrix((n_users, catalogue.tfidf.shape[1]), dtype=np.float32)
    else:
        stated = text.transform(texts)
    return user_signals(catalogue, vectors, confidence, stated, profiles)


def scaled_users(
    catalogue: HybridCatalogue, vectors: npt.NDArray[np.float32]
) -> npt.NDArray[np.float64]:
    """``u / (|u| * max |v|)`` per user (0 without a vector): the collaborative feature is
    ``v . that``."""
    vectors64 = np.asarray(vectors, dtype=np.float64)
    norms = np.linalg.norm(vectors64, axis=1)
    scale = np.divide(1.0, norms * catalogue.max_norm, out=np.zeros(len(norms)), where=norms > 0)
    scaled: npt.NDArray[np.float64] = vectors64 * scale[:, None]
    return scaled


def _collaborative_weight(blend: HybridBlend) -> float:
    weights = blend_weights(blend)
    return float(weights.get(FEATURES[0], 0.0))


def hybrid_scores(
    blend: HybridBlend,
    catalogue: HybridCatalogue,
    users: UserSignals,
    now: float,
    shared: npt.NDArray[np.float64] | None = None,
) -> npt.NDArray[np.float64]:
    """Every catalogue position's blended score (the reference :func:`best_hybrid` is exact
    against), shape (len(users), n_events). ``shared``: the shared features' blend."""
    n_events = catalogue.tfidf.shape[0]
    positions = np.arange(n_events, dtype=np.int64)
    scores = rest_scores(catalogue, users, blend_weights(blend), positions, now, shared)
    weight = _collaborative_weight(blend)
    if weight != 0.0:
        scaled = scaled_users(catalogue, users.vectors)
        # collaborative_terms of every position, its float64 copy made once for the batch.
        vectors64 = catalogue.vectors.astype(np.float64)
        for row in np.flatnonzero(scaled.any(axis=1)).tolist():
            scores[row] += weight * (vectors64 * scaled[row]).sum(axis=1)
    return scores


@dataclass(frozen=True)
class TextBounds:
    """The catalogue's most common TF-IDF terms (at most :data:`COMMON_TERMS`, each in
    more than :data:`COMMON_MIN` events) as dense columns: a profile's cosines with every
    event are its rare terms' sparse product plus one small dense product, close enough
    to the exact cosine (float32 rounding, :data:`TEXT_SLACK`) to bound it tightly."""

    common: npt.NDArray[np.int64]
    is_common: npt.NDArray[np.bool_]
    columns: npt.NDArray[np.float32]  # (len(common), n_events): term j's weight per event

    @classmethod
    def of(cls, catalogue: HybridCatalogue) -> TextBounds:
        tfidf = catalogue.tfidf
        n_terms = tfidf.shape[1]
        frequency = np.bincount(tfidf.indices, minlength=n_terms)
        ranked = np.argsort(-frequency, kind="stable")[:COMMON_TERMS]
        common = np.sort(ranked[frequency[ranked] > COMMON_MIN]).astype(np.int64)
        is_common = np.zeros(n_terms, dtype=bool)
        is_common[common] = True
        columns = np.ascontiguousarray(
            sp.csc_matrix(tfidf)[:, common].toarray().T, dtype=np.float32
        )
        return cls(common, is_common, columns)


# The most frequent terms (in more than COMMON_MIN events) kept as dense columns.
COMMON_TERMS = 128
COMMON_MIN = 64
# Float32 rounding of a bound's cosine, in cosine units: added to every text bound.
TEXT_SLACK = 1e-4


def rest_bounds(
    catalogue: HybridCatalogue,
    users: UserSignals,
    weights: Mapping[str, float],
    now: float,
    shared: npt.NDArray[np.float64] | None,
    bounds: TextBounds,
) -> tuple[npt.NDArray[np.float64], npt.NDArray[np.float64]]:
    """The non-collaborative blend at every position, shape (len(users), n_events): exact
    without the text cosines, and an upper bound with them (their float32 value over
    rare terms by a sparse product and common ones by a dense one, widened by
    :data:`TEXT_SLACK`)."""
    positions = np.arange(catalogue.tfidf.shape[0], dtype=np.int64)
    others = {n: w for n, w in weights.items() if n not in TEXT_FEATURES}
    exact = rest_scores(catalogue, users, others, positions, now, shared)
    upper = exact.copy()
    slack = 0.0
    for name in TEXT_FEATURES:
        weight = float(weights.get(name, 0.0))
        if weight == 0.0:
            continue
        profile = users.history if name == "content" else users.stated
        rows = np.flatnonzero(np.diff(profile.indptr) > 0)
        if not len(rows):
            continue
        picked = sp.csr_matrix(profile[rows], dtype=np.float32)
        common = np.asarray(picked[:, bounds.common].toarray(), dtype=np.float32)
        rare = picked.copy()
        rare.data[bounds.is_common[rare.indices]] = 0.0
        rare.eliminate_zeros()
        cosine = (rare @ catalogue.tfidf_t).toarray()
        for row in range(len(rows)):  # each profile's few common terms, one pass each
            for j in np.flatnonzero(common[row]).tolist():
                cosine[row] += common[row, j] * bounds.columns[j]
        np.clip(cosine, 0.0, 1.0, out=cosine)
        cosine *= np.float32(weight)
        upper[rows] += cosine
        slack += abs(weight) * TEXT_SLACK
    if slack:
        upper += slack
    return exact, upper


def best_hybrid(
    blend: HybridBlend,
    catalogue: HybridCatalogue,
    norms: npt.NDArray[np.float64],
    users: UserSignals,
    masks: Sequence[npt.NDArray[np.bool_]],
    limits: Sequence[int],
    now: float,
    shared: npt.NDArray[np.float64] | None = None,
    text_bounds: TextBounds | None = None,
) -> tuple[list[tuple[npt.NDArray[np.int64], npt.NDArray[np.float64]]], int]:
    """Each user's best ``limit`` eligible positions by the blend, exactly (ties: lower
    position), and how many positions were scored exactly in all.

    Every position gets an upper bound ``|w_c| |u| |v_i| + upper_i`` (Cauchy-Schwarz on
    the collaborative part, :func:`rest_bounds` on the others); positions are scored
    exactly (the same values as :func:`hybrid_scores` at every position) in decreasing
    bound until the ``limit``-th best beats every bound left
    (:func:`~eventrec.model.blend.best_by_bound`). ``norms[i]`` is
    ``|catalogue.vectors[i]|``; ``shared``: the shared features' blend at every position.
    """
    n_terms = catalogue.tfidf.shape[1]
    weights = blend_weights(blend)
    bounds = TextBounds.of(catalogue) if text_bounds is None else text_bounds
    exact_others, upper = rest_bounds(catalogue, users, weights, now, shared, bounds)
    weight = _collaborative_weight(blend)
    scaled = scaled_users(catalogue, users.vectors)
    texts = [
        (float(weights.get(name, 0.0)), users.history if name == "content" else users.stated)
        for name in TEXT_FEATURES
    ]
    results = []
    scanned = 0
    for row, (mask, limit) in enumerate(zip(masks, limits, strict=True)):
        profiles = [
            (w, dense_profile(p, row, n_terms))
            for w, p in texts
            if w != 0.0 and p.indptr[row] != p.indptr[row + 1]
        ]

        def exact(
            positions: npt.NDArray[np.int64],
            row: int = row,
            profiles: list[tuple[float, npt.NDArray[np.float64]]] = profiles,
        ) -> npt.NDArray[np.float64]:
            values: npt.NDArray[np.float64] = exact_others[row, positions]
            for w, profile in profiles:  # as rest_scores adds them: text last, in order
                values += w * np.clip(row_dots(catalogue.tfidf, profile, positions), 0.0, 1.0)
            return values

        found, scores, seen = best_by_bound(
            weight, scaled[row], catalogue.vectors, norms, upper[row], mask, limit,
            exact_rest=exact,
        )  # fmt: skip
        results.append((found, scores))
        scanned += seen
    return results, scanned


def take_catalogue(catalogue: HybridCatalogue, positions: npt.ArrayLike) -> HybridCatalogue:
    """The catalogue restricted to ``positions`` (in that order), every per-event array
    indexed and every catalogue-wide value (largest norm, codes, proximity) kept: the
    features of the restricted pairs are those of the whole catalogue."""
    index = np.asarray(positions, dtype=np.int64)
    n_events = catalogue.tfidf.shape[0]
    values: dict[str, Any] = {}
    for item in dataclasses.fields(catalogue):
        value = getattr(catalogue, item.name)
        if item.name == "tfidf_t":
            continue  # rebuilt from the restricted rows
        if sp.issparse(value) and value.shape[0] == n_events:
            values[item.name] = sp.csr_matrix(value[index])
        elif (
            isinstance(value, np.ndarray)
            and value.ndim >= 1
            and len(value) == n_events
            and (item.name != "proximity")
        ):
            values[item.name] = value[index]
        else:
            values[item.name] = value
    return HybridCatalogue(**values)


def pair_features(
    catalogue: HybridCatalogue, user: UserSignals, positions: npt.ArrayLike, now: float
) -> npt.NDArray[np.float64]:
    """Every feature of one user's pairs with ``positions``, shape (len(positions),
    n_features): :func:`feature_block` on the restricted catalogue."""
    sub = take_catalogue(catalogue, positions)
    block = feature_block(sub, user, np.arange(sub.tfidf.shape[0], dtype=np.int64), now)
    result: npt.NDArray[np.float64] = block[0]
    return result


def normalised(catalogue: HybridCatalogue, positions: npt.ArrayLike) -> HybridCatalogue:
    """The catalogue with its scales taken over ``positions`` (what can be recommended):
    the largest vector norm and the top trending among them.

    Serving's catalogue holds past events too and the evaluation's every event of the
    log; scaled over the events on sale, the features of an upcoming event are the same
    in both. Values of other events are clipped to their bounds.
    """
    index = np.asarray(positions, dtype=np.int64)
    if not len(index):
        return catalogue
    norms = np.linalg.norm(catalogue.vectors[index].astype(np.float64), axis=1)
    largest = float(norms.max())
    top = float(catalogue.trending[index].max())
    trending = (
        np.clip(catalogue.trending / top, 0.0, 1.0)
        if top > 0
        else np.zeros(len(catalogue.trending))
    )
    return dataclasses.replace(
        catalogue, max_norm=largest if largest > 0 else 1.0, trending=trending
    )
