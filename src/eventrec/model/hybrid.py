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
- :func:`pair_features` gives the features of chosen pairs (what explanations read).

The exact top-k over a catalogue is :mod:`eventrec.model.hybrid_topk`.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import numpy as np
import numpy.typing as npt
import scipy.sparse as sp

from eventrec.model.blend import HybridBlend, sample_pairs
from eventrec.model.errors import ModelFitError
from eventrec.model.hybrid_features import (
    FEATURES,
    HybridCatalogue,
    TextModel,
    UserSignals,
    dense_profiles,
    shared_columns,
    stated_text,
    user_signals,
)
from eventrec.model.hybrid_kernel_features import pair_feature_rows

__all__ = [
    "COLLABORATIVE_ONLY",
    "NEGATIVES_PER_POSITIVE",
    "blend_from_metadata",
    "blend_metadata",
    "blend_weights",
    "catalogue_interactions",
    "collaborative_only",
    "expose_blend",
    "fit_blend",
    "normalised",
    "pair_features",
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
    rows: npt.NDArray[np.int64] | None = None,
) -> UserSignals:
    """Users' signals from fold-in vectors and confidences over event indices.

    ``position_of[e]`` is the catalogue position of event index ``e`` (-1: none; None:
    event indices are positions). ``searches``: each user's recent queries, newest first.
    ``rows``: user ``i``'s row of ``confidence`` (-1: no history; default: row ``i``).
    """
    n_users = len(vectors)
    queries = searches if searches is not None else [()] * n_users
    texts = [stated_text(p, q) for p, q in zip(profiles, queries, strict=True)]
    if text is None or not any(texts):
        stated = sp.csr_matrix((n_users, catalogue.tfidf.shape[1]), dtype=np.float32)
    else:
        stated = text.transform(texts)
    return user_signals(catalogue, vectors, confidence, stated, profiles, rows, position_of)


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
    catalogue: HybridCatalogue,
    users: UserSignals,
    positions: Sequence[npt.ArrayLike],
    now: float,
) -> list[npt.NDArray[np.float64]]:
    """Every feature of each row's pairs with its own ``positions[row]``, shape
    (len(positions[row]), n_features) per row, each pair computed alone (compiled:
    :func:`~eventrec.model.hybrid_kernel_features.pair_feature_rows`): the values of
    :func:`~eventrec.model.hybrid_features.feature_block` at those positions, up to the
    float32 rounding of its collaborative product (here in float64)."""
    chosen = [np.asarray(p, dtype=np.int64) for p in positions]
    if not chosen:
        return []
    owners = np.repeat(np.arange(len(chosen), dtype=np.int64), [len(p) for p in chosen])
    every = np.concatenate(chosen)
    n_terms = catalogue.tfidf.shape[1]
    columns = shared_columns(catalogue, every, now)
    values = pair_feature_rows(
        catalogue,
        users,
        owners,
        every,
        [(0.0, *dense_profiles(m, n_terms)) for m in (users.history, users.stated)],
        (columns["trending"], columns["soon"], columns["fresh"]),
    )
    cuts = np.cumsum([0] + [len(p) for p in chosen]).tolist()
    return [values[cuts[row] : cuts[row + 1]] for row in range(len(chosen))]


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
