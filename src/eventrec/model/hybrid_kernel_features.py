"""The hybrid's features in compiled loops (numba): users' content profiles from their
confidences, and the features and text similarities that explanations read.

Each gives the values of the numpy or scipy computation it replaced (see each function),
summed in the same order, with :func:`~eventrec.model.hybrid_kernel.compiled`'s options.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import numpy.typing as npt

from eventrec.model.hybrid_kernel import (
    TextProfiles,
    budget_value,
    category_value,
    compiled,
    dot,
    event_arrays,
    nearby_value,
    text_arrays,
    text_value,
    user_arrays,
)

__all__ = ["group_cosines", "history_profiles", "pair_feature_rows"]

_jit = compiled()


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
    price: Any,
    city: Any,
    new: Any,
    proximity: Any,
    categories: Any,
    budget: Any,
    user_city: Any,
    has_history: Any,
    out: Any,
) -> None:
    """Columns 0-3 and 7-9 of each pair's features (the shared ones are the caller's)."""
    for i in range(owners.shape[0]):
        u = owners[i]
        position = positions[i]
        out[i, 0] = dot(vectors, position, user_vectors, u) * scale[u]
        for column, dense, rows, columns in (
            (1, content_dense, content_row, content_columns),
            (2, profile_dense, profile_row, profile_columns),
        ):
            if rows[u] >= 0:
                out[i, column] = text_value(
                    indptr, indices, data, position, dense, rows[u], columns
                )
        out[i, 3] = category_value(categories, u, category[position])
        out[i, 7] = budget_value(price[position], budget[u])
        out[i, 8] = nearby_value(proximity, user_city[u], city[position])
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
    product in float64 (the block's is float32). ``texts`` as for
    :func:`~eventrec.model.hybrid_kernel.best_by_blocks` (weights ignored); ``shared``:
    trending, soon and fresh at ``positions``."""
    vectors = users.vectors.astype(np.float64)
    norms = np.linalg.norm(vectors, axis=1)
    scale = np.divide(1.0, norms * catalogue.max_norm, out=np.zeros(len(norms)), where=norms > 0)
    out = np.zeros((len(owners), 10))
    out[:, 4], out[:, 5], out[:, 6] = shared
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
        *text_arrays(texts[0]),
        *text_arrays(texts[1]),
        *event_arrays(catalogue),
        *user_arrays(users),
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
