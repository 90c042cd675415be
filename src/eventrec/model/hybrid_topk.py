"""The hybrid's exact top-k: every user's best events by the blend, scoring few of them.

- :func:`hybrid_scores` scores every position (the reference);
- :class:`BlockBounds` cuts the catalogue into blocks of alike events and bounds every
  score of a block for a user at once;
- :func:`best_hybrid` finds the best ``k`` exactly while scoring only the blocks that can
  still reach the top, the same values as the reference (the loops are compiled:
  :mod:`eventrec.model.hybrid_kernel`).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np
import numpy.typing as npt
import scipy.sparse as sp

from eventrec.model import hybrid_kernel
from eventrec.model.blend import HybridBlend
from eventrec.model.hybrid import blend_weights
from eventrec.model.hybrid_features import (
    FEATURES,
    SHARED_FEATURES,
    TEXT_FEATURES,
    HybridCatalogue,
    UserSignals,
    dense_profiles,
    personal_weights,
    rest_scores,
    shared_rest,
    within_budget,
)
from eventrec.model.hybrid_kernel import vector_dots

__all__ = [
    "BLOCK_SIZE",
    "BlockBounds",
    "best_hybrid",
    "hybrid_scores",
    "scaled_users",
    "vector_dots",
]


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
        # v . u of every position in float64 (the top-k's sums), the copy made once.
        vectors64 = catalogue.vectors.astype(np.float64)
        for row in np.flatnonzero(scaled.any(axis=1)).tolist():
            scores[row] += weight * vector_dots(vectors64, scaled[row])
    return scores


# Events per block of :class:`BlockBounds`: a block's bound is one number per user.
BLOCK_SIZE = 128
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
                result += weight * within_budget(low, budget)
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
                reach = hybrid_kernel.sparse_product(sp.csr_matrix(profile), self.terms)
                result += weight * np.minimum(reach, 1.0)
            else:
                result[:] = np.inf
        result += BLOCK_SLACK * (1.0 + np.abs(result))
        return result


# Features whose values are never negative: a negative weight never raises a score.
NON_NEGATIVE = frozenset(FEATURES[1:])


# The personal features the compiled top-k scores, by name.
_PERSONAL_CODES = {
    "category": hybrid_kernel.CATEGORY,
    "budget": hybrid_kernel.BUDGET,
    "nearby": hybrid_kernel.NEARBY,
    "new": hybrid_kernel.NEW,
}


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
    user; a user's blocks are scored exactly (the same values as :func:`hybrid_scores` at
    every position) in decreasing bound until the ``limit``-th best beats the next bound
    (:func:`eventrec.model.hybrid_kernel.best_by_blocks`). ``norms[i]`` is
    ``|catalogue.vectors[i]|``; ``shared``: the shared features' blend at every position
    (``shared_max``: its maxima per block, when ``blocks`` are given).
    """
    n_events, n_terms = catalogue.tfidf.shape
    weights = blend_weights(blend)
    if shared is None:
        shared = shared_rest(catalogue, weights, np.arange(n_events, dtype=np.int64), now)
    if blocks is None:
        blocks = BlockBounds.of(catalogue, norms)
    if shared_max is None:
        shared_max = blocks.shared_max(shared)
    n = len(masks)
    if not n or not blocks.n_blocks:
        return [(np.zeros(0, dtype=np.int64), np.zeros(0))] * n, 0
    personal = []
    for name, weight in personal_weights(weights):
        if name not in _PERSONAL_CODES:
            raise ValueError(f"the blend's feature {name!r} has no exact top-k")
        personal.append((_PERSONAL_CODES[name], weight))
    bounds = blocks.bounds(catalogue, users, weights, shared_max)
    bounds[np.isnan(bounds)] = np.inf  # a bound that cannot be told: always visited
    texts = []
    for name, matrix in (("content", users.history), ("profile", users.stated)):
        weight = float(weights.get(name, 0.0))
        if weight != 0.0:
            texts.append((weight, *dense_profiles(matrix, n_terms)))
        else:  # not scored: no profile row for anyone
            none = np.full(n, -1, dtype=np.int64)
            texts.append((0.0, np.zeros((1, 1)), none, np.zeros(1, dtype=np.int64)))
    return hybrid_kernel.best_by_blocks(
        blocks,
        catalogue,
        shared,
        scaled_users(catalogue, users.vectors),
        _collaborative_weight(blend),
        personal,
        users,
        texts,
        np.stack(masks),
        np.asarray(limits, dtype=np.int64),
        bounds,
    )
