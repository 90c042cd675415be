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
  finds the best ``k`` exactly while scoring only the blocks of alike events
  (:class:`BlockBounds`) that can still reach the top.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import numpy.typing as npt
import scipy.sparse as sp

from eventrec.model.blend import HybridBlend, sample_pairs
from eventrec.model.errors import ModelFitError
from eventrec.model.hybrid_features import (
    FEATURES,
    SHARED_FEATURES,
    TEXT_FEATURES,
    HybridCatalogue,
    TextModel,
    UserSignals,
    csr_row_dots,
    dense_profile,
    feature_block,
    ranges,
    rest_scores,
    shared_rest,
    stated_text,
    user_signals,
)

__all__ = [
    "COLLABORATIVE_ONLY",
    "NEGATIVES_PER_POSITIVE",
    "BlockBounds",
    "best_by_blocks",
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
        # v . u of every position in float64, its float64 copy made once for the batch.
        vectors64 = catalogue.vectors.astype(np.float64)
        for row in np.flatnonzero(scaled.any(axis=1)).tolist():
            scores[row] += weight * (vectors64 * scaled[row]).sum(axis=1)
    return scores


# Events per block of :class:`BlockBounds`: a block's bound is one number per user.
BLOCK_SIZE = 128
# Blocks scored in the first round of a user's top-k: enough for a first 10th-best score
# that most blocks' bounds fall below (then every block whose bound reaches it, at once).
FIRST_BLOCKS = 2
# Float rounding of a computed bound (sums of float32 values in float64): added to each.
BLOCK_SLACK = 1e-6


@dataclass(frozen=True)
class BlockBounds:
    """The catalogue cut into blocks of alike events, and per block the largest value each
    feature can take in it: what bounds every score of a block for a user at once.

    Events are ordered by venue, category, city, then decreasing vector norm (events at
    one venue share terms and audiences, so a block's maxima stay close to its events'
    values) and cut every :data:`BLOCK_SIZE`. Per block: the longest vector, the
    categories and cities present, the lowest known price, whether any event is new, and
    each TF-IDF term's largest weight (``terms``, terms x blocks, sparse). The shared
    features' maxima depend on the clock: :meth:`shared_max`.
    """

    order: npt.NDArray[np.int64]  # catalogue positions, block by block
    starts: npt.NDArray[np.int64]  # block b is order[starts[b]:starts[b + 1]]
    norm: npt.NDArray[np.float64]  # the longest vector
    centre: npt.NDArray[np.float64]  # (n_blocks, n_factors): the vectors' mean
    radius: npt.NDArray[np.float64]  # the largest distance of a vector from the centre
    categories: npt.NDArray[np.bool_]  # (n_blocks, n_categories + 1): last column unknown
    cities: npt.NDArray[np.bool_]  # (n_blocks, n_cities)
    min_price: npt.NDArray[np.float64]  # inf: no known price in the block
    new: npt.NDArray[np.bool_]
    terms: sp.csr_matrix  # (n_terms, n_blocks), float64
    # The vectors (float64) and TF-IDF rows (CSR arrays, float64 data) in block order: a
    # block's exact scores read contiguous ranges, with the values of the reference.
    vectors: npt.NDArray[np.float64] = field(default_factory=lambda: np.zeros((0, 0)))
    text_indptr: npt.NDArray[np.int64] = field(default_factory=lambda: np.zeros(1, np.int64))
    text_indices: npt.NDArray[np.int32] = field(default_factory=lambda: np.zeros(0, np.int32))
    text_data: npt.NDArray[np.float64] = field(default_factory=lambda: np.zeros(0))

    @property
    def n_blocks(self) -> int:
        return len(self.starts) - 1

    @classmethod
    def of(
        cls,
        catalogue: HybridCatalogue,
        norms: npt.NDArray[np.float64] | None = None,
        size: int = BLOCK_SIZE,
    ) -> BlockBounds:
        n_events = catalogue.tfidf.shape[0]
        if norms is None:
            norms = np.linalg.norm(catalogue.vectors.astype(np.float64), axis=1)
        order = np.lexsort((-norms, catalogue.city, catalogue.category, catalogue.venue)).astype(
            np.int64
        )
        starts = np.arange(0, n_events + size, size, dtype=np.int64)
        starts[-1] = n_events
        starts = np.unique(starts)
        if n_events == 0:
            starts = np.zeros(1, dtype=np.int64)
        n_blocks = len(starts) - 1
        block_of = np.zeros(n_events, dtype=np.int64)
        block_of[order] = np.repeat(np.arange(n_blocks), np.diff(starts))
        first = starts[:-1]
        ordered_norms = norms[order]
        norm = np.maximum.reduceat(ordered_norms, first) if n_blocks else np.zeros(0)
        vectors = catalogue.vectors[order].astype(np.float64)
        sizes = np.diff(starts).astype(np.float64)
        centre = (
            np.add.reduceat(vectors, first, axis=0) / sizes[:, None]
            if n_blocks
            else np.zeros((0, vectors.shape[1]))
        )
        spread = np.linalg.norm(vectors - np.repeat(centre, np.diff(starts), axis=0), axis=1)
        radius = np.maximum.reduceat(spread, first) if n_blocks else np.zeros(0)
        n_categories = len(catalogue.category_codes) + 1
        categories = np.zeros((n_blocks, n_categories), dtype=bool)
        categories[block_of, np.where(catalogue.category >= 0, catalogue.category, -1)] = True
        cities = np.zeros((n_blocks, len(catalogue.proximity)), dtype=bool)
        known = catalogue.city >= 0
        cities[block_of[known], catalogue.city[known]] = True
        price = np.where(np.isnan(catalogue.price), np.inf, catalogue.price)[order]
        min_price = np.minimum.reduceat(price, first) if n_blocks else np.zeros(0)
        new = (
            np.maximum.reduceat(catalogue.new[order], first) > 0
            if n_blocks
            else np.zeros(0, dtype=bool)
        )
        coo = sp.coo_matrix(catalogue.tfidf)
        # Each term's largest weight per block: the max of duplicates, by sorting.
        key = coo.col.astype(np.int64) * max(n_blocks, 1) + block_of[coo.row]
        by = np.lexsort((coo.data, key))
        key, data = key[by], coo.data[by].astype(np.float64)
        last = np.ones(len(key), dtype=bool)
        last[:-1] = key[1:] != key[:-1]
        terms = sp.csr_matrix(
            (data[last], (key[last] // max(n_blocks, 1), key[last] % max(n_blocks, 1))),
            shape=(catalogue.tfidf.shape[1], n_blocks),
        )
        ordered = sp.csr_matrix(catalogue.tfidf[order])
        return cls(
            order,
            starts,
            norm,
            centre,
            radius,
            categories,
            cities,
            min_price,
            new,
            terms,
            vectors=vectors,
            text_indptr=ordered.indptr.astype(np.int64),
            text_indices=ordered.indices,
            text_data=ordered.data.astype(np.float64),
        )

    def places(self, chosen: npt.ArrayLike) -> npt.NDArray[np.int64]:
        """Places (indices into ``order``) of the chosen blocks' events, block by block."""
        blocks = np.asarray(chosen, dtype=np.int64)
        return ranges(self.starts[blocks], self.starts[blocks + 1])

    def collaborative(
        self, places: npt.NDArray[np.int64], user: npt.NDArray[np.float64]
    ) -> npt.NDArray[np.float64]:
        """The collaborative terms ``v . user`` of the events at ``places``, in float64 row
        by row as :func:`hybrid_scores` computes them (the same values)."""
        result: npt.NDArray[np.float64] = (self.vectors[places] * user).sum(axis=1)
        return result

    def cosines(
        self, places: npt.NDArray[np.int64], profile: npt.NDArray[np.float64]
    ) -> npt.NDArray[np.float64]:
        """:func:`~eventrec.model.hybrid_features.row_dots` of the events at ``places``
        (each row's terms summed in stored order: the same values)."""
        return csr_row_dots(self.text_indptr, self.text_indices, self.text_data, profile, places)

    def shared_max(self, shared: npt.NDArray[np.float64]) -> npt.NDArray[np.float64]:
        """The largest value of the shared features' blend in each block."""
        if not self.n_blocks:
            return np.zeros(0)
        result: npt.NDArray[np.float64] = np.maximum.reduceat(shared[self.order], self.starts[:-1])
        return result

    def bounds(
        self,
        catalogue: HybridCatalogue,
        users: UserSignals,
        weights: Mapping[str, float],
        shared_max: npt.NDArray[np.float64],
    ) -> npt.NDArray[np.float64]:
        """Per user and block, an upper bound of the blend's score of every event in the
        block, shape (len(users), n_blocks): the sum over features of each feature's
        largest weighted value in the block (0 for a non-positive weight on a feature
        that is never negative; a feature unknown here makes every bound infinite)."""
        n = len(users)
        result = np.empty((n, self.n_blocks))
        result[:] = shared_max[None, :]
        for name, weight in weights.items():
            if weight == 0.0 or name in SHARED_FEATURES:
                continue
            if name == FEATURES[0]:
                # w (v . s), s = u / (|u| max|v|): at most |w| |s| |v| for the longest v,
                # and at most |w| (sign(w) s . c + |s| r) for the block's ball (c, r).
                scaled = scaled_users(catalogue, users.vectors) * np.sign(weight)
                length = np.linalg.norm(scaled, axis=1)[:, None]
                ball = scaled @ self.centre.T + length * self.radius[None, :]
                result += abs(weight) * np.minimum(length * self.norm[None, :], ball)
                continue
            if weight < 0.0 and name in NON_NEGATIVE:
                continue
            if name == "category":
                present = users.categories.astype(np.float64) @ self.categories.T.astype(np.float64)
                result += weight * (present > 0)
            elif name == "budget":
                budget = users.budget[:, None]
                low = self.min_price[None, :]
                with np.errstate(divide="ignore", invalid="ignore"):
                    within = np.where(low <= budget, 1.0, budget / low)
                result += weight * np.where(np.isfinite(within), np.clip(within, 0.0, 1.0), 0.0)
            elif name == "nearby":
                known = users.city >= 0
                if not len(catalogue.proximity) or not known.any():
                    continue  # no known city: every event's value is 0
                near = catalogue.proximity[np.maximum(users.city, 0)]  # (users, cities)
                best = np.where(self.cities[None, :, :], near[:, None, :], 0.0).max(
                    axis=2, initial=0.0
                )
                result += weight * np.where(known[:, None], best, 0.0)
            elif name == "new":
                has_history = np.diff(users.history.indptr) > 0
                result += weight * (has_history[:, None] & self.new[None, :])
            elif name in TEXT_FEATURES:
                profile = users.history if name == "content" else users.stated
                reach = (sp.csr_matrix(profile, dtype=np.float64) @ self.terms).toarray()
                result += weight * np.minimum(reach, 1.0)
            else:
                result[:] = np.inf
        result += BLOCK_SLACK * (1.0 + np.abs(result))
        return result


# Features whose values are never negative: a negative weight never raises a score.
NON_NEGATIVE = frozenset(FEATURES[1:])


def best_hybrid(
    blend: HybridBlend,
    catalogue: HybridCatalogue,
    norms: npt.NDArray[np.float64],
    users: UserSignals,
    masks: Sequence[npt.NDArray[np.bool_]],
    limits: Sequence[int],
    now: float,
    shared: npt.NDArray[np.float64] | None = None,
    blocks: BlockBounds | None = None,
    shared_max: npt.NDArray[np.float64] | None = None,
) -> tuple[list[tuple[npt.NDArray[np.int64], npt.NDArray[np.float64]]], int]:
    """Each user's best ``limit`` eligible positions by the blend, exactly (ties: lower
    position), and how many positions were scored exactly in all.

    Every block of :class:`BlockBounds` gets an upper bound of its events' scores for the
    user; blocks are scored exactly (the same values as :func:`hybrid_scores` at every
    position) in decreasing bound until the ``limit``-th best beats every bound left.
    ``norms[i]`` is ``|catalogue.vectors[i]|``; ``shared``: the shared features' blend at
    every position (``shared_max``: its maxima per block, when ``blocks`` are given).
    """
    n_events, n_terms = catalogue.tfidf.shape
    weights = blend_weights(blend)
    if shared is None:
        shared = shared_rest(catalogue, weights, np.arange(n_events, dtype=np.int64), now)
    if blocks is None:
        blocks = BlockBounds.of(catalogue, norms)
    if shared_max is None:
        shared_max = blocks.shared_max(shared)
    bounds = blocks.bounds(catalogue, users, weights, shared_max)
    others = {n: w for n, w in weights.items() if n not in TEXT_FEATURES}
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
            places: npt.NDArray[np.int64],
            positions: npt.NDArray[np.int64],
            row: int = row,
            profiles: list[tuple[float, npt.NDArray[np.float64]]] = profiles,
        ) -> npt.NDArray[np.float64]:
            assert blocks is not None
            values = rest_scores(
                catalogue, users, others, positions, now, shared[positions], user=row
            )[0]
            for w, profile in profiles:  # as rest_scores adds them: text last, in order
                values += w * np.clip(blocks.cosines(places, profile), 0.0, 1.0)
            collaborative: npt.NDArray[np.float64] = (
                weight * blocks.collaborative(places, scaled[row]) + values
            )
            return collaborative

        found, scores, seen = best_by_blocks(blocks, bounds[row], mask, limit, exact)
        results.append((found, scores))
        scanned += seen
    return results, scanned


def best_by_blocks(
    blocks: BlockBounds,
    bounds: npt.NDArray[np.float64],
    mask: npt.NDArray[np.bool_],
    limit: int,
    exact: Callable[[npt.NDArray[np.int64], npt.NDArray[np.int64]], npt.NDArray[np.float64]],
) -> tuple[npt.NDArray[np.int64], npt.NDArray[np.float64], int]:
    """The best ``limit`` eligible positions by ``exact(places, positions)`` (the scores of
    the eligible events at those places of ``blocks.order``, ``positions`` theirs), ties to
    the lower position, visiting blocks in decreasing bound (``bounds[b]`` at least every
    score in block ``b``).

    Each round scores twice as many blocks as the last (:data:`FIRST_BLOCKS` first), but
    never more than the blocks whose bound reaches the ``limit``-th best score so far:
    bounds decrease along the visit, so those are the next ones, and no other block can
    hold a better event.

    Returns the positions, their scores (best first) and how many were scored."""
    if limit <= 0 or not blocks.n_blocks:
        return np.zeros(0, dtype=np.int64), np.zeros(0), 0
    in_order = mask[blocks.order]
    live = np.logical_or.reduceat(in_order, blocks.starts[:-1])
    candidates = np.flatnonzero(live)
    if not len(candidates):
        return np.zeros(0, dtype=np.int64), np.zeros(0), 0
    visit = candidates[np.argsort(-bounds[candidates], kind="stable")]
    visit_bounds = bounds[visit]
    kept_positions = np.zeros(0, dtype=np.int64)
    kept_scores = np.zeros(0)
    scanned, start, take = 0, 0, FIRST_BLOCKS
    while start < len(visit):
        chosen = visit[start : start + take]
        places = blocks.places(chosen)
        places = places[in_order[places]]
        positions = blocks.order[places]
        scores = exact(places, positions)
        scanned += len(places)
        kept_positions = np.concatenate((kept_positions, positions))
        kept_scores = np.concatenate((kept_scores, scores))
        start += len(chosen)
        if len(kept_scores) >= limit:
            cut = len(kept_scores) - limit
            kth = float(np.partition(kept_scores, cut)[cut])
            keep = kept_scores >= kth
            kept_positions, kept_scores = kept_positions[keep], kept_scores[keep]
            # Bounds decrease along ``visit``: the blocks that can still reach the top
            # (a tie may win on its lower position) are the next ``reach`` ones.
            reach = int(np.count_nonzero(visit_bounds[start:] >= kth))
            if reach == 0:
                break
            take = min(2 * take, reach)
        else:
            take *= 2
    best = np.lexsort((kept_positions, -kept_scores))[:limit]
    return kept_positions[best], kept_scores[best], scanned


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
    user: int,
    positions: npt.ArrayLike,
    now: float,
) -> npt.NDArray[np.float64]:
    """Every feature of row ``user``'s pairs with ``positions``, shape (len(positions),
    n_features): :func:`feature_block` at those positions (no pass over the catalogue)."""
    block = feature_block(catalogue, users, np.asarray(positions, dtype=np.int64), now, user)
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
