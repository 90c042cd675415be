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
fixed-order sum (``_dot``) that the reference computes too (:func:`vector_dots`).
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
    "best_by_blocks",
    "compiled",
    "group_cosines",
    "history_profiles",
    "pair_feature_rows",
    "sparse_product",
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
def _dot(a: Any, i: int, b: Any, j: int) -> float:
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
        out[i] = _dot(vectors, i, user, 0)


def vector_dots(
    vectors: npt.NDArray[np.float64], user: npt.NDArray[np.float64]
) -> npt.NDArray[np.float64]:
    """``vectors @ user`` in float64, each row's sum in :func:`_dot`'s fixed order: the
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
def _text(
    indptr: Any, indices: Any, data: Any, place: int, dense: Any, row: int, columns: Any
) -> float:
    """The event at ``place`` against dense profile ``row`` (``columns``: each term's
    column), its terms summed in stored order from 0."""
    total = 0.0
    for j in range(indptr[place], indptr[place + 1]):
        total += data[j] * dense[row, columns[indices[j]]]
    return total


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
    shared: Any,
    proximity: Any,
    scaled: Any,
    collaborative_weight: float,
    kinds: Any,
    kind_weights: Any,
    categories: Any,
    names_category: Any,
    budget: Any,
    user_city: Any,
    has_history: Any,
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
                if text_weights[0] != 0.0 and content >= 0:
                    cosine = _text(
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
                    cosine = _text(
                        text_indptr,
                        text_indices,
                        text_data,
                        place,
                        profile_dense,
                        profile,
                        profile_columns,
                    )
                    score += text_weights[1] * min(max(cosine, 0.0), 1.0)
                score = collaborative_weight * _dot(vectors, place, scaled, u) + score
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
    content_weight, content_dense, content_row, content_columns = texts[0]
    profile_weight, profile_dense, profile_row, profile_columns = texts[1]
    scanned = _top_k(
        blocks.starts,
        blocks.order,
        blocks.vectors,
        blocks.text_indptr,
        blocks.text_indices,
        blocks.text_data,
        np.ascontiguousarray(catalogue.category, dtype=np.int64),
        _f64(catalogue.price),
        np.ascontiguousarray(catalogue.city, dtype=np.int64),
        _f64(catalogue.new),
        _f64(shared),
        np.ascontiguousarray(catalogue.proximity, dtype=np.float64),
        np.ascontiguousarray(scaled, dtype=np.float64),
        float(collaborative_weight),
        np.array([code for code, _ in personal], dtype=np.int64),
        np.array([weight for _, weight in personal], dtype=np.float64),
        np.ascontiguousarray(users.categories, dtype=np.bool_),
        np.ascontiguousarray(users.categories.any(axis=1), dtype=np.bool_),
        _f64(users.budget),
        np.ascontiguousarray(users.city, dtype=np.int64),
        np.ascontiguousarray(np.diff(users.history.indptr) > 0, dtype=np.bool_),
        np.array([content_weight, profile_weight], dtype=np.float64),
        np.ascontiguousarray(content_dense, dtype=np.float64),
        np.ascontiguousarray(content_row, dtype=np.int64),
        np.ascontiguousarray(content_columns, dtype=np.int64),
        np.ascontiguousarray(profile_dense, dtype=np.float64),
        np.ascontiguousarray(profile_row, dtype=np.int64),
        np.ascontiguousarray(profile_columns, dtype=np.int64),
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
def _pair_features(
    owners: Any,
    positions: Any,
    vectors: Any,
    user_vectors: Any,
    scale: Any,
    indptr: Any,
    indices: Any,
    data: Any,
    content_dense: Any,
    content_row: Any,
    content_columns: Any,
    profile_dense: Any,
    profile_row: Any,
    profile_columns: Any,
    category: Any,
    categories: Any,
    price: Any,
    budget: Any,
    city: Any,
    user_city: Any,
    proximity: Any,
    new: Any,
    has_history: Any,
    out: Any,
) -> None:
    """Columns 0-3 and 7-9 of each pair's features (the shared ones are the caller's)."""
    n_categories = categories.shape[1]
    for i in range(owners.shape[0]):
        u = owners[i]
        position = positions[i]
        out[i, 0] = _dot(vectors, position, user_vectors, u) * scale[u]
        if content_row[u] >= 0:
            cosine = _text(
                indptr, indices, data, position, content_dense, content_row[u], content_columns
            )
            out[i, 1] = min(max(cosine, 0.0), 1.0)
        if profile_row[u] >= 0:
            cosine = _text(
                indptr, indices, data, position, profile_dense, profile_row[u], profile_columns
            )
            out[i, 2] = min(max(cosine, 0.0), 1.0)
        code = category[position]
        if code < 0:
            code += n_categories  # the last column: unknown
        out[i, 3] = 1.0 if categories[u, code] else 0.0
        most = budget[u]
        cost = price[position]
        within = 1.0 if cost <= most else most / cost
        out[i, 7] = min(max(within, 0.0), 1.0) if np.isfinite(within) else 0.0
        home = user_city[u]
        there = city[position]
        out[i, 8] = proximity[home, there] if home >= 0 and there >= 0 else 0.0
        out[i, 9] = new[position] if has_history[u] else 0.0


def pair_feature_rows(
    catalogue: Any,
    users: Any,
    owners: npt.NDArray[np.int64],
    positions: npt.NDArray[np.int64],
    texts: list[TextProfiles],
    shared: tuple[npt.NDArray[np.float64], npt.NDArray[np.float64], npt.NDArray[np.float64]],
) -> npt.NDArray[np.float64]:
    """Every feature of each pair (row ``owners[i]`` of ``users``, ``positions[i]``), in
    :data:`~eventrec.model.hybrid_features.FEATURES`' order, shape (len(owners), 10):
    :func:`~eventrec.model.hybrid_features.feature_block`'s values, the collaborative
    product in float64 (the block's is float32). ``texts`` as for :func:`best_by_blocks`
    (weights ignored); ``shared``: trending, soon and fresh at ``positions``."""
    vectors = users.vectors.astype(np.float64)
    norms = np.linalg.norm(vectors, axis=1)
    scale = np.divide(1.0, norms * catalogue.max_norm, out=np.zeros(len(norms)), where=norms > 0)
    out = np.zeros((len(owners), 10))
    out[:, 4], out[:, 5], out[:, 6] = shared
    (
        (_, content_dense, content_row, content_columns),
        (
            _,
            profile_dense,
            profile_row,
            profile_columns,
        ),
    ) = texts
    tfidf = catalogue.tfidf
    _pair_features(
        np.ascontiguousarray(owners, dtype=np.int64),
        np.ascontiguousarray(positions, dtype=np.int64),
        np.ascontiguousarray(catalogue.vectors),
        vectors,
        scale,
        tfidf.indptr,
        tfidf.indices,
        tfidf.data,
        np.ascontiguousarray(content_dense, dtype=np.float64),
        np.ascontiguousarray(content_row, dtype=np.int64),
        np.ascontiguousarray(content_columns, dtype=np.int64),
        np.ascontiguousarray(profile_dense, dtype=np.float64),
        np.ascontiguousarray(profile_row, dtype=np.int64),
        np.ascontiguousarray(profile_columns, dtype=np.int64),
        np.ascontiguousarray(catalogue.category, dtype=np.int64),
        np.ascontiguousarray(users.categories, dtype=np.bool_),
        _f64(catalogue.price),
        _f64(users.budget),
        np.ascontiguousarray(catalogue.city, dtype=np.int64),
        np.ascontiguousarray(users.city, dtype=np.int64),
        np.ascontiguousarray(catalogue.proximity, dtype=np.float64),
        _f64(catalogue.new),
        np.ascontiguousarray(np.diff(users.history.indptr) > 0, dtype=np.bool_),
        out,
    )
    return out


@_jit
def _group_similarities(
    indptr: Any,
    indices: Any,
    data: Any,
    rows: Any,
    columns: Any,
    row_starts: Any,
    column_starts: Any,
    value_starts: Any,
    dense: Any,
    values: Any,
) -> None:
    for g in range(row_starts.shape[0] - 1):
        n_columns = column_starts[g + 1] - column_starts[g]
        for c in range(n_columns):
            column = columns[column_starts[g] + c]
            for j in range(indptr[column], indptr[column + 1]):
                dense[indices[j]] = data[j]
            for r in range(row_starts[g], row_starts[g + 1]):
                row = rows[r]
                total = 0.0
                for j in range(indptr[row], indptr[row + 1]):
                    total += np.float64(data[j]) * dense[indices[j]]
                values[value_starts[g] + (r - row_starts[g]) * n_columns + c] = total
            for j in range(indptr[column], indptr[column + 1]):
                dense[indices[j]] = 0.0


def group_cosines(
    indptr: npt.NDArray[np.integer[Any]],
    indices: npt.NDArray[np.integer[Any]],
    data: npt.NDArray[np.floating[Any]],
    n_terms: int,
    groups: list[tuple[npt.NDArray[np.int64], npt.NDArray[np.int64]]],
) -> list[npt.NDArray[np.float64]]:
    """For each group ``(rows, columns)`` of a CSR matrix, ``M[rows] @ M[columns].T`` in
    float64, each value summed over the row's terms in stored order."""
    if not groups:
        return []
    row_sizes = [len(rows) for rows, _ in groups]
    column_sizes = [len(columns) for _, columns in groups]
    value_sizes = [r * c for r, c in zip(row_sizes, column_sizes, strict=True)]
    row_starts = np.cumsum([0, *row_sizes], dtype=np.int64)
    column_starts = np.cumsum([0, *column_sizes], dtype=np.int64)
    value_starts = np.cumsum([0, *value_sizes], dtype=np.int64)
    values = np.zeros(int(value_starts[-1]))
    empty = np.zeros(0, dtype=np.int64)
    _group_similarities(
        indptr,
        indices,
        data,
        np.concatenate([np.asarray(rows, dtype=np.int64) for rows, _ in groups] or [empty]),
        np.concatenate([np.asarray(c, dtype=np.int64) for _, c in groups] or [empty]),
        row_starts,
        column_starts,
        value_starts,
        np.zeros(n_terms),
        values,
    )
    return [
        values[value_starts[g] : value_starts[g + 1]].reshape(row_sizes[g], column_sizes[g])
        for g in range(len(groups))
    ]


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


@_jit
def _history_profiles(
    indptr: Any,
    indices: Any,
    data: Any,
    rows: Any,
    position_of: Any,
    mapped: bool,
    t_indptr: Any,
    t_indices: Any,
    t_data: Any,
    n_terms: int,
    out_indptr: Any,
) -> tuple[Any, Any]:
    n_events = t_indptr.shape[0] - 1
    sums = np.zeros(n_terms, dtype=np.float32)
    seen = np.zeros(n_terms, dtype=np.bool_)
    touched = np.empty(n_terms, dtype=np.int64)
    capacity = 1024
    out_indices = np.empty(capacity, dtype=np.int32)
    out_data = np.empty(capacity, dtype=np.float32)
    size = 0
    for i in range(rows.shape[0]):
        r = rows[i]
        start = indptr[r] if r >= 0 else 0
        stop = indptr[r + 1] if r >= 0 else 0
        positions = np.empty(stop - start, dtype=np.int64)
        weights = np.empty(stop - start, dtype=np.float32)
        n = 0
        for j in range(start, stop):
            column = indices[j]
            position = column
            if mapped:
                position = position_of[column] if column < position_of.shape[0] else -1
            if position < 0 or position >= n_events or data[j] == 0:
                continue
            positions[n] = position
            weights[n] = data[j]
            n += 1
        order = np.argsort(positions[:n], kind="mergesort")
        n_touched = 0
        for o in range(n):
            position = positions[order[o]]
            if o + 1 < n and positions[order[o + 1]] == position:
                continue  # two event indices of one event: summed at the last of them
            weight = weights[order[o]]
            back = o - 1
            while back >= 0 and positions[order[back]] == position:
                weight = weights[order[back]] + weight
                back -= 1
            for k in range(t_indptr[position], t_indptr[position + 1]):
                term = t_indices[k]
                if not seen[term]:
                    seen[term] = True
                    touched[n_touched] = term
                    n_touched += 1
                sums[term] += weight * t_data[k]
        terms = np.sort(touched[:n_touched])
        norm = 0.0
        for term in terms:
            norm += np.float64(sums[term]) * np.float64(sums[term])
        norm = np.sqrt(norm)
        scale = 1.0 / norm if norm > 0 else 0.0
        if size + n_touched > capacity:
            capacity = max(2 * capacity, size + n_touched)
            grown_indices = np.empty(capacity, dtype=np.int32)
            grown_data = np.empty(capacity, dtype=np.float32)
            grown_indices[:size] = out_indices[:size]
            grown_data[:size] = out_data[:size]
            out_indices, out_data = grown_indices, grown_data
        for term in terms:
            value = sums[term]
            if value != 0:
                out_indices[size] = term
                out_data[size] = np.float32(np.float64(value) * scale)
                size += 1
            sums[term] = 0
            seen[term] = False
        out_indptr[i + 1] = size
    return out_indices[:size].copy(), out_data[:size].copy()


def history_profiles(
    confidence: Any,
    tfidf: Any,
    rows: npt.NDArray[np.int64] | None = None,
    position_of: npt.NDArray[np.int64] | None = None,
) -> tuple[npt.NDArray[np.int64], npt.NDArray[np.int32], npt.NDArray[np.float32]]:
    """Users' content profiles as CSR arrays ``(indptr, indices, data)``: row ``i`` is
    row ``rows[i]`` of ``confidence`` (-1: an empty row; default: every row) times the
    TF-IDF rows of its events, divided by its norm, float32, terms sorted.

    ``weights`` being the rows' confidences over catalogue positions
    (``position_of[column]``, -1 or past it: dropped; None: columns are positions), each
    term's sum adds the events in increasing position in float32 and the norm sums the
    terms in order in float64: bit for bit ``_unit_rows(weights @ tfidf)`` as scipy
    computes it for the rows serving and the evaluation pass (canonical: sorted columns,
    no duplicates; two event indices of one event summed first). Rows with duplicate or
    unsorted columns, or three event indices of one event, may differ by a float32
    rounding (scipy sums them in its own order)."""
    picked = (
        np.arange(confidence.shape[0], dtype=np.int64)
        if rows is None
        else np.ascontiguousarray(rows, dtype=np.int64)
    )
    if len(picked) and int(picked.max()) >= confidence.shape[0]:
        raise IndexError(f"row {int(picked.max())} of {confidence.shape[0]} confidence rows")
    out_indptr = np.zeros(len(picked) + 1, dtype=np.int64)
    indices, data = _history_profiles(
        confidence.indptr,
        confidence.indices,
        np.ascontiguousarray(confidence.data, dtype=np.float32),
        picked,
        np.zeros(0, dtype=np.int64) if position_of is None else position_of,
        position_of is not None,
        tfidf.indptr,
        tfidf.indices,
        np.ascontiguousarray(tfidf.data, dtype=np.float32),
        int(tfidf.shape[1]),
        out_indptr,
    )
    return out_indptr, indices, data
