"""The hybrid's exact top-k: every user's best events by the blend, scoring few of them.

- :func:`hybrid_scores` scores every position (the reference);
- :class:`BlockBounds` cuts the catalogue into blocks of alike events and bounds every
  score of a block for a user at once;
- :func:`best_hybrid` finds the best ``k`` exactly while scoring only the blocks that can
  still reach the top (:func:`best_by_blocks`), the same values as the reference.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np
import numpy.typing as npt
import scipy.sparse as sp

from eventrec.model.blend import HybridBlend
from eventrec.model.hybrid import blend_weights
from eventrec.model.hybrid_features import (
    FEATURES,
    SHARED_FEATURES,
    TEXT_FEATURES,
    HybridCatalogue,
    UserSignals,
    csr_pair_dots,
    dense_profiles,
    pair_rest,
    ranges,
    rest_scores,
    shared_rest,
    within_budget,
)

__all__ = [
    "BLOCK_SIZE",
    "BlockBounds",
    "best_by_blocks",
    "best_hybrid",
    "hybrid_scores",
    "scaled_users",
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


def vector_dots(
    vectors: npt.NDArray[np.float64], user: npt.NDArray[np.float64]
) -> npt.NDArray[np.float64]:
    """``vectors @ user`` in float64, each row's sum independent of the other rows (unlike
    BLAS): the reference and the top-k get the same value for an event, whichever other
    events are computed with it, and without a (rows x factors) product in memory."""
    result: npt.NDArray[np.float64] = np.einsum("ij,j->i", vectors, user)
    return result


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
            scores[row] += weight * vector_dots(vectors64, scaled[row])
    return scores


# Events per block of :class:`BlockBounds`: a block's bound is one number per user.
BLOCK_SIZE = 128
# Blocks scored in the first round of a user's top-k: enough for a first 10th-best score
# that most blocks' bounds fall below (then every block whose bound reaches it, at once).
FIRST_BLOCKS = 2
# Users with at most this many eligible events have all of them scored in one go.
DIRECT_EVENTS = BLOCK_SIZE
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
    place_of: npt.NDArray[np.int64] = field(default_factory=lambda: np.zeros(0, np.int64))

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
            place_of=np.argsort(order).astype(np.int64),  # each position's place in order
        )

    def places(self, chosen: npt.ArrayLike) -> npt.NDArray[np.int64]:
        """Places (indices into ``order``) of the chosen blocks' events, block by block."""
        blocks = np.asarray(chosen, dtype=np.int64)
        return ranges(self.starts[blocks], self.starts[blocks + 1])

    def collaborative(
        self,
        places: npt.NDArray[np.int64],
        owners: npt.NDArray[np.int64],
        users: npt.NDArray[np.float64],
    ) -> npt.NDArray[np.float64]:
        """The collaborative terms ``v . users[owners[i]]`` of the events at ``places[i]``,
        by :func:`vector_dots` as :func:`hybrid_scores` computes them (the same values),
        one call per run of equal owners (a user's pairs come together)."""
        result = np.empty(len(places))
        cuts = [0, *(np.flatnonzero(np.diff(owners)) + 1).tolist(), len(owners)]
        for begin, end in itertools.pairwise(cuts):
            if end > begin:
                piece = slice(begin, end)
                result[piece] = vector_dots(self.vectors[places[piece]], users[owners[begin]])
        return result

    def cosines(
        self,
        places: npt.NDArray[np.int64],
        profiles: npt.NDArray[np.float64],
        profile_rows: npt.NDArray[np.int64],
        columns: npt.NDArray[np.int64] | None = None,
    ) -> npt.NDArray[np.float64]:
        """:func:`~eventrec.model.hybrid_features.row_dots` of the event at ``places[i]``
        against ``profiles[profile_rows[i]]`` (each row's terms summed in stored order:
        the same values); ``columns``: each term's column in ``profiles``."""
        return csr_pair_dots(
            self.text_indptr,
            self.text_indices,
            self.text_data,
            profiles,
            profile_rows,
            places,
            columns,
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
        (w, *dense_profiles(matrix, n_terms))
        for name, matrix in (("content", users.history), ("profile", users.stated))
        if (w := float(weights.get(name, 0.0))) != 0.0
    ]

    def exact(
        owners: npt.NDArray[np.int64],
        places: npt.NDArray[np.int64],
        positions: npt.NDArray[np.int64],
    ) -> npt.NDArray[np.float64]:
        assert blocks is not None
        assert shared is not None
        values = pair_rest(catalogue, users, others, owners, positions, now, shared[positions])
        for w, dense, row_of, columns in texts:  # as rest_scores adds them: text last
            profile_rows = row_of[owners]
            has = np.flatnonzero(profile_rows >= 0)
            cosines = blocks.cosines(places[has], dense, profile_rows[has], columns)
            values[has] += w * np.clip(cosines, 0.0, 1.0)
        collaborative: npt.NDArray[np.float64] = (
            weight * blocks.collaborative(places, owners, scaled) + values
        )
        return collaborative

    return best_by_blocks(blocks, bounds, masks, limits, exact)


def best_by_blocks(
    blocks: BlockBounds,
    bounds: npt.NDArray[np.float64],
    masks: Sequence[npt.NDArray[np.bool_]],
    limits: Sequence[int],
    exact: Callable[
        [npt.NDArray[np.int64], npt.NDArray[np.int64], npt.NDArray[np.int64]],
        npt.NDArray[np.float64],
    ],
) -> tuple[list[tuple[npt.NDArray[np.int64], npt.NDArray[np.float64]]], int]:
    """Each user's best ``limits[u]`` positions eligible under ``masks[u]`` by ``exact``,
    ties to the lower position, visiting the user's blocks in decreasing bound
    (``bounds[u, b]`` at least every score of user ``u`` in block ``b``).

    ``exact(owners, places, positions)`` scores pairs: user ``owners[i]`` with the event
    at ``places[i]`` of ``blocks.order`` (``positions[i]`` its catalogue position), a
    user's pairs together.

    A user with at most :data:`DIRECT_EVENTS` eligible events has them all scored at
    once. The others go in rounds, all of a round's pairs scored in one call. A user's round scores
    twice as many blocks as their last (:data:`FIRST_BLOCKS` first), but never more than
    the blocks whose bound reaches their ``limit``-th best score so far: bounds decrease
    along the visit, so those are the next ones, and no other block can hold a better
    event. Returns per user the positions and their scores (best first), and how many
    pairs were scored in all."""
    n = len(masks)
    empty = (np.zeros(0, dtype=np.int64), np.zeros(0))
    results = [empty] * n
    if not n or not blocks.n_blocks:
        return results, 0
    # Blocks are not gathered per user into their order: eligibility is read at the
    # chosen blocks' events (a block with none eligible costs its places).
    eligible_of = np.stack(masks)
    counts = np.count_nonzero(eligible_of, axis=1).tolist()
    visit = np.argsort(-bounds, axis=1, kind="stable")  # ties to the lower block
    visit_bounds = np.take_along_axis(bounds, visit, axis=1)
    start = [0] * n
    take = [FIRST_BLOCKS] * n
    kept_positions = [empty[0]] * n
    kept_scores = [empty[1]] * n
    wanted = [u for u in range(n) if limits[u] > 0 and counts[u] > 0]
    # Few eligible events (narrow filters): all of them at once, no blocks visited.
    direct = [u for u in wanted if counts[u] <= DIRECT_EVENTS]
    active = [u for u in wanted if counts[u] > DIRECT_EVENTS]
    scanned = 0
    if direct:
        every = [np.flatnonzero(eligible_of[u]) for u in direct]
        positions = np.concatenate(every)
        owners = np.repeat(np.array(direct), [len(p) for p in every])
        scores = exact(owners, blocks.place_of[positions], positions)
        scanned += len(positions)
        cuts = np.cumsum([0] + [len(p) for p in every]).tolist()
        for j, user in enumerate(direct):
            kept_positions[user] = positions[cuts[j] : cuts[j + 1]]
            kept_scores[user] = scores[cuts[j] : cuts[j + 1]]
    while active:
        stops = [min(start[u] + take[u], blocks.n_blocks) for u in active]
        rounds = list(zip(active, stops, strict=True))
        chosen = np.concatenate([visit[u, start[u] : stop] for u, stop in rounds])
        block_owners = np.repeat(np.array(active), [stop - start[u] for u, stop in rounds])
        lengths = blocks.starts[chosen + 1] - blocks.starts[chosen]
        places = blocks.places(chosen)
        owners = np.repeat(block_owners, lengths)
        positions = blocks.order[places]
        eligible = eligible_of[owners, positions]
        places, owners, positions = places[eligible], owners[eligible], positions[eligible]
        scores = exact(owners, places, positions)
        scanned += len(places)
        # ``owners`` ascend (``active`` does): each user's pairs are one slice.
        cuts = np.searchsorted(owners, [*active, n]).tolist()
        still = []
        for j, user in enumerate(active):
            piece = slice(cuts[j], cuts[j + 1])
            mine = np.concatenate((kept_positions[user], positions[piece]))
            values = np.concatenate((kept_scores[user], scores[piece]))
            start[user] = stops[j]
            limit = limits[user]
            if len(values) >= limit:
                cut = len(values) - limit
                kth = float(np.partition(values, cut)[cut])
                keep = values >= kth
                mine, values = mine[keep], values[keep]
                # Bounds decrease along the visit: the blocks that can still reach the top
                # (a tie may win on its lower position) are the next ``reach`` ones.
                reach = int(
                    np.count_nonzero(visit_bounds[user, start[user] : blocks.n_blocks] >= kth)
                )
                take[user] = min(2 * take[user], reach)
            else:
                take[user] *= 2
            kept_positions[user], kept_scores[user] = mine, values
            if take[user] > 0 and start[user] < blocks.n_blocks:
                still.append(user)
        active = still
    for user in range(n):
        positions, values = kept_positions[user], kept_scores[user]
        best = np.lexsort((positions, -values))[: limits[user]]
        results[user] = (positions[best], values[best])
    return results, scanned
