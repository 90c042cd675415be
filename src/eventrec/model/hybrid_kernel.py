"""The hybrid's exact top-k as compiled loops (numba): score a user's events block by
block, in decreasing bound, keeping the best as it goes.

Why compiled: the top-k scores a few hundred events per user, each from a 64-factor dot
product, a sparse TF-IDF row and four profile features. As numpy passes over a batch's
(user, event) pairs (scored in rounds of blocks) that took about as long as everything
else a request does, mostly in temporaries and bookkeeping; one loop per user reads each
value once and stops at the first block whose bound falls below its ``limit``-th best.

Every score is the reference's value bit for bit (:func:`eventrec.model.hybrid_topk.
hybrid_scores`): the terms are added in the reference's order (the shared features'
blend, the personal features in the blend's order, the text features, then the
collaborative term), each text cosine is summed over the event's terms in their stored
order (as ``numpy.bincount`` sums them), and the collaborative dot product is one
fixed-order sum (``dot``) that the reference computes too (:func:`vector_dots`).
Nothing here is ``fastmath``: no reassociation, no fused multiply-adds. A NaN score ranks
below every number, as the reference's sort puts it.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar, cast

import numba
import numpy as np
import numpy.typing as npt

__all__ = [
    "BUDGET",
    "CATEGORY",
    "NEARBY",
    "NEW",
    "TextProfiles",
    "best_by_blocks",
    "budget_value",
    "category_value",
    "compiled",
    "dot",
    "event_arrays",
    "nearby_value",
    "sparse_product",
    "text_arrays",
    "text_dot",
    "text_value",
    "user_arrays",
    "vector_dots",
]

# The personal features the kernel scores, by code (the blend names them in its order).
CATEGORY, BUDGET, NEARBY, NEW = 0, 1, 2, 3

# A text feature's weight, the dense profiles, each user's row in them (-1: none) and each
# term's column (see :func:`eventrec.model.hybrid_features.dense_profiles`).
TextProfiles = tuple[float, npt.NDArray[np.float64], npt.NDArray[np.int64], npt.NDArray[np.int64]]


F = TypeVar("F", bound=Callable[..., Any])


def compiled(**options: Any) -> Callable[[F], F]:
    """``numba.njit`` with IEEE division (no ZeroDivisionError), the GIL released and
    the machine code cached on disk; where numba finds no writable cache directory
    (``NUMBA_CACHE_DIR``, ``__pycache__``, the user's cache) it compiles in each process
    instead of failing at import."""

    def decorate(function: F) -> F:
        try:
            jitted = numba.njit(cache=True, error_model="numpy", nogil=True, **options)
            return cast(F, jitted(function))
        except RuntimeError:  # "cannot cache function ...: no locator available"
            return cast(F, numba.njit(error_model="numpy", nogil=True, **options)(function))

    return decorate


_jit = compiled()


@compiled(inline="always")
def dot(a: Any, i: int, b: Any, j: int) -> float:
    """``a[i] . b[j]`` in four interleaved sums (k, k+4, ...), joined as (s0+s1)+(s2+s3):
    one fixed order, whoever calls it."""
    n = a.shape[1]
    s0 = 0.0
    s1 = 0.0
    s2 = 0.0
    s3 = 0.0
    k = 0
    while k + 4 <= n:
        s0 += a[i, k] * b[j, k]
        s1 += a[i, k + 1] * b[j, k + 1]
        s2 += a[i, k + 2] * b[j, k + 2]
        s3 += a[i, k + 3] * b[j, k + 3]
        k += 4
    while k < n:
        s0 += a[i, k] * b[j, k]
        k += 1
    return (s0 + s1) + (s2 + s3)


@_jit
def _vector_dots(vectors: Any, user: Any, out: Any) -> None:
    for i in range(vectors.shape[0]):
        out[i] = dot(vectors, i, user, 0)


def vector_dots(
    vectors: npt.NDArray[np.float64], user: npt.NDArray[np.float64]
) -> npt.NDArray[np.float64]:
    """``vectors @ user`` in float64, each row's sum in :func:`dot`'s fixed order: the
    same value for a row whichever other rows are computed with it, and the same as the
    top-k's."""
    rows = np.ascontiguousarray(vectors, dtype=np.float64)
    single = np.ascontiguousarray(user, dtype=np.float64).reshape(1, -1)
    if rows.shape[1] != single.shape[1]:
        raise ValueError(f"vectors of {rows.shape[1]} factors against a user of {single.shape[1]}")
    out = np.empty(rows.shape[0])
    _vector_dots(rows, single, out)
    return out


@_jit
def text_dot(
    indptr: Any, indices: Any, data: Any, place: int, dense: Any, row: int, columns: Any
) -> float:
    """The event at ``place`` against dense profile ``row`` (``columns``: each term's
    column), its terms summed in stored order from 0."""
    total = 0.0
    for j in range(indptr[place], indptr[place + 1]):
        total += data[j] * dense[row, columns[indices[j]]]
    return total


@compiled(inline="always")
def text_value(
    indptr: Any, indices: Any, data: Any, place: int, dense: Any, row: int, columns: Any
) -> float:
    """A text feature: :func:`text_dot` clipped to [0, 1]."""
    return min(max(text_dot(indptr, indices, data, place, dense, row, columns), 0.0), 1.0)


@compiled(inline="always")
def category_value(categories: Any, u: int, code: int) -> float:
    """The "category" feature: 1 if user ``u`` prefers category ``code`` (-1: unknown,
    the last column, never preferred)."""
    if code < 0:
        code += categories.shape[1]
    return 1.0 if categories[u, code] else 0.0


@compiled(inline="always")
def budget_value(cost: float, most: float) -> float:
    """The "budget" feature (:func:`~eventrec.model.hybrid_features.within_budget`)."""
    within = 1.0 if cost <= most else most / cost
    return min(max(within, 0.0), 1.0) if np.isfinite(within) else 0.0


@compiled(inline="always")
def nearby_value(proximity: Any, home: int, there: int) -> float:
    """The "nearby" feature: the cities' proximity, 0 where either is unknown (-1)."""
    return proximity[home, there] if home >= 0 and there >= 0 else 0.0


@compiled(inline="always")
def _better(score: float, position: int, other: float, other_position: int) -> bool:
    """Whether (score, position) ranks before (other, other_position): the higher score,
    then the lower position; a NaN below every number (two NaNs: by position)."""
    if np.isnan(score):
        return np.isnan(other) and position < other_position
    if np.isnan(other):
        return True
    return score > other or (score == other and position < other_position)


@_jit
def _sift_down(heap: Any, keys: Any, start: int, size: int) -> None:
    """Restore the max-heap of block numbers ``heap[:size]`` (by ``keys``, ties: lower
    block first) below ``start``."""
    i = start
    while True:
        child = 2 * i + 1
        if child >= size:
            return
        other = child + 1
        if other < size and (
            keys[heap[other]] > keys[heap[child]]
            or (keys[heap[other]] == keys[heap[child]] and heap[other] < heap[child])
        ):
            child = other
        a, b = heap[i], heap[child]
        if keys[a] > keys[b] or (keys[a] == keys[b] and a < b):
            return
        heap[i], heap[child] = b, a
        i = child


@_jit
def _top_k(
    starts: Any,
    order: Any,
    vectors: Any,
    text_indptr: Any,
    text_indices: Any,
    text_data: Any,
    category: Any,
    price: Any,
    city: Any,
    new: Any,
    proximity: Any,
    shared: Any,
    scaled: Any,
    collaborative_weight: float,
    kinds: Any,
    kind_weights: Any,
    categories: Any,
    budget: Any,
    user_city: Any,
    has_history: Any,
    names_category: Any,
    text_weights: Any,
    content_dense: Any,
    content_row: Any,
    content_columns: Any,
    profile_dense: Any,
    profile_row: Any,
    profile_columns: Any,
    eligible: Any,
    limits: Any,
    bounds: Any,
    best_positions: Any,
    best_scores: Any,
    found: Any,
) -> int:
    n_users = scaled.shape[0]
    n_categories = categories.shape[1]
    n_blocks = bounds.shape[1]
    scanned = 0
    heap = np.empty(n_blocks, dtype=np.int64)
    for u in range(n_users):
        limit = limits[u]
        count = 0
        content = content_row[u]
        profile = profile_row[u]
        # The user's blocks in a max-heap by bound: a user visits a few of hundreds.
        keys = bounds[u]
        size = n_blocks if limit > 0 else 0
        for b in range(size):
            heap[b] = b
        for b in range(size // 2 - 1, -1, -1):
            _sift_down(heap, keys, b, size)
        while size > 0:
            block = heap[0]
            # The largest bound left: once the limit-th best beats it, it beats every
            # block left (a tie may still win on its lower position).
            if count == limit and keys[block] < best_scores[u, limit - 1]:
                break
            size -= 1
            heap[0] = heap[size]
            _sift_down(heap, keys, 0, size)
            for place in range(starts[block], starts[block + 1]):
                position = order[place]
                if not eligible[u, position]:
                    continue
                scanned += 1
                score = shared[position]
                # The features as category_value, budget_value, nearby_value and text_value
                # compute them, written out: on this loop the calls measured 147 µs per
                # request in hybrid_topk.py against 127-136 written out.
                for f in range(kinds.shape[0]):
                    kind = kinds[f]
                    weight = kind_weights[f]
                    if kind == CATEGORY:
                        if names_category[u]:
                            code = category[position]
                            if code < 0:
                                code += n_categories  # the last column: unknown
                            score += weight * (1.0 if categories[u, code] else 0.0)
                    elif kind == BUDGET:
                        most = budget[u]
                        if np.isfinite(most):
                            cost = price[position]
                            within = 1.0 if cost <= most else most / cost
                            within = min(max(within, 0.0), 1.0) if np.isfinite(within) else 0.0
                            score += weight * within
                    elif kind == NEARBY:
                        home = user_city[u]
                        if home >= 0:
                            there = city[position]
                            score += weight * (proximity[home, there] if there >= 0 else 0.0)
                    elif has_history[u]:  # NEW
                        score += weight * new[position]
                # The text features last, content then profile, as the reference adds them.
                if text_weights[0] != 0.0 and content >= 0:
                    cosine = text_dot(
                        text_indptr,
                        text_indices,
                        text_data,
                        place,
                        content_dense,
                        content,
                        content_columns,
                    )
                    score += text_weights[0] * min(max(cosine, 0.0), 1.0)
                if text_weights[1] != 0.0 and profile >= 0:
                    cosine = text_dot(
                        text_indptr,
                        text_indices,
                        text_data,
                        place,
                        profile_dense,
                        profile,
                        profile_columns,
                    )
                    score += text_weights[1] * min(max(cosine, 0.0), 1.0)
                score = collaborative_weight * dot(vectors, place, scaled, u) + score
                # Keep the best ``limit``, best first: higher score, then lower position.
                if count == limit:
                    if not _better(
                        score, position, best_scores[u, limit - 1], best_positions[u, limit - 1]
                    ):
                        continue
                    j = limit - 1
                else:
                    j = count
                    count += 1
                while j > 0 and _better(
                    score, position, best_scores[u, j - 1], best_positions[u, j - 1]
                ):
                    best_scores[u, j] = best_scores[u, j - 1]
                    best_positions[u, j] = best_positions[u, j - 1]
                    j -= 1
                best_scores[u, j] = score
                best_positions[u, j] = position
        found[u] = count
    return scanned


def _f64(values: Any) -> npt.NDArray[np.float64]:
    return np.ascontiguousarray(values, dtype=np.float64)


def event_arrays(catalogue: Any) -> tuple[Any, Any, Any, Any, Any]:
    """What the loops read of a :class:`~eventrec.model.hybrid_features.HybridCatalogue`
    per event, in their dtypes (one compiled version): category, price, city, new, and
    the cities' proximity."""
    return (
        np.ascontiguousarray(catalogue.category, dtype=np.int64),
        _f64(catalogue.price),
        np.ascontiguousarray(catalogue.city, dtype=np.int64),
        _f64(catalogue.new),
        _f64(catalogue.proximity),
    )


def user_arrays(users: Any) -> tuple[Any, Any, Any, Any]:
    """What the loops read of :class:`~eventrec.model.hybrid_features.UserSignals` per
    user: preferred categories, budget, city, and whether the user has a history."""
    return (
        np.ascontiguousarray(users.categories, dtype=np.bool_),
        _f64(users.budget),
        np.ascontiguousarray(users.city, dtype=np.int64),
        np.ascontiguousarray(np.diff(users.history.indptr) > 0, dtype=np.bool_),
    )


def text_arrays(text: TextProfiles) -> tuple[Any, Any, Any]:
    """A text feature's dense profiles, each user's row and each term's column."""
    _, dense, rows, columns = text
    return (
        _f64(dense),
        np.ascontiguousarray(rows, dtype=np.int64),
        np.ascontiguousarray(columns, dtype=np.int64),
    )


def best_by_blocks(
    blocks: Any,
    catalogue: Any,
    shared: npt.NDArray[np.float64],
    scaled: npt.NDArray[np.float64],
    collaborative_weight: float,
    personal: list[tuple[int, float]],
    users: Any,
    texts: list[TextProfiles],
    eligible: npt.NDArray[np.bool_],
    limits: npt.NDArray[np.int64],
    bounds: npt.NDArray[np.float64],
) -> tuple[list[tuple[npt.NDArray[np.int64], npt.NDArray[np.float64]]], int]:
    """Each user's best ``limits[u]`` positions eligible under ``eligible[u]`` (ties: lower
    position) and how many (user, event) pairs were scored, visiting user ``u``'s blocks
    in decreasing bound (``bounds[u, b]``: at least every score of block ``b`` for ``u``;
    ties: lower block first) until the ``limits[u]``-th best beats every bound left.

    ``blocks``: :class:`~eventrec.model.hybrid_topk.BlockBounds`; ``personal``: (feature
    code, weight) in the blend's order; ``texts``: for "content" then "profile", (weight,
    dense profiles, each user's dense row or -1, each term's column)."""
    n_users = len(limits)
    width = max(int(limits.max()) if n_users else 0, 1)
    best_positions = np.zeros((n_users, width), dtype=np.int64)
    best_scores = np.zeros((n_users, width), dtype=np.float64)
    found = np.zeros(n_users, dtype=np.int64)
    scanned = _top_k(
        blocks.starts,
        blocks.order,
        blocks.vectors,
        blocks.text_indptr,
        blocks.text_indices,
        blocks.text_data,
        *event_arrays(catalogue),
        _f64(shared),
        _f64(scaled),
        float(collaborative_weight),
        np.array([code for code, _ in personal], dtype=np.int64),
        np.array([weight for _, weight in personal], dtype=np.float64),
        *user_arrays(users),
        np.ascontiguousarray(users.categories.any(axis=1), dtype=np.bool_),
        np.array([texts[0][0], texts[1][0]], dtype=np.float64),
        *text_arrays(texts[0]),
        *text_arrays(texts[1]),
        np.ascontiguousarray(eligible, dtype=np.bool_),
        np.ascontiguousarray(limits, dtype=np.int64),
        np.ascontiguousarray(bounds, dtype=np.float64),
        best_positions,
        best_scores,
        found,
    )
    results = [
        (best_positions[u, : found[u]].copy(), best_scores[u, : found[u]].copy())
        for u in range(n_users)
    ]
    return results, int(scanned)


@_jit
def _sparse_reach(
    p_indptr: Any,
    p_indices: Any,
    p_data: Any,
    t_indptr: Any,
    t_indices: Any,
    t_data: Any,
    out: Any,
) -> None:
    for u in range(out.shape[0]):
        for i in range(p_indptr[u], p_indptr[u + 1]):
            term = p_indices[i]
            weight = np.float64(p_data[i])
            if not weight > 0.0:
                continue  # the positive part: what bounds a product with terms >= 0
            for j in range(t_indptr[term], t_indptr[term + 1]):
                out[u, t_indices[j]] += weight * t_data[j]


def sparse_product(left: Any, right: Any) -> npt.NDArray[np.float64]:
    """``max(left, 0) @ right`` of two CSR matrices as a dense float64 array (rows x
    columns of ``right``): each row's profile against every block's term maxima at once,
    without scipy's sparse result (a batch's bounds). Entries of ``left`` below zero are
    left out, so that against a ``right`` of maxima of non-negative TF-IDF values it
    bounds every row's product with the block's events even for a profile with negative
    weights."""
    out = np.zeros((left.shape[0], right.shape[1]))
    _sparse_reach(
        left.indptr, left.indices, left.data, right.indptr, right.indices, right.data, out
    )
    return out
