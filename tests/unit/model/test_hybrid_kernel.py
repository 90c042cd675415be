"""The compiled loops against numpy and scipy on known answers."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.sparse as sp

from eventrec.model.hybrid_features import _unit_rows
from eventrec.model.hybrid_kernel import sparse_product, vector_dots
from eventrec.model.hybrid_kernel_features import (
    group_cosines,
    history_profiles,
)


def test_sparse_product_is_scipys_product_of_the_positive_part_made_dense() -> None:
    dense = sp.random(7, 40, density=0.2, random_state=1, dtype=np.float32).toarray()
    dense[3] = 0.0  # a row without any term: a row of zeros
    left = sp.csr_matrix(dense)
    left.data[::4] *= -1.0  # negative entries are left out: the positive part's product
    right = sp.random(40, 9, density=0.3, random_state=2, format="csr", dtype=np.float64)
    found = sparse_product(left, right)
    assert found.shape == (7, 9)
    expected = (sp.csr_matrix(left.maximum(0), dtype=np.float64) @ right).toarray()
    np.testing.assert_allclose(found, expected, rtol=1e-12, atol=1e-15)
    assert not found[3].any()


def test_group_cosines_of_empty_groups_have_their_shapes() -> None:
    matrix = sp.csr_matrix(np.eye(4, dtype=np.float32))
    found = group_cosines(
        matrix.indptr,
        matrix.indices,
        matrix.data,
        4,
        [(np.array([0, 1]), np.zeros(0, np.int64)), (np.zeros(0, np.int64), np.array([2]))],
    )
    assert [f.shape for f in found] == [(2, 0), (0, 1)]
    (same,) = group_cosines(
        matrix.indptr, matrix.indices, matrix.data, 4, [(np.array([0, 1]), np.array([1, 0]))]
    )
    np.testing.assert_array_equal(same, [[0.0, 1.0], [1.0, 0.0]])
    assert group_cosines(matrix.indptr, matrix.indices, matrix.data, 4, []) == []


def test_vector_dots_of_no_rows_and_no_factors() -> None:
    assert vector_dots(np.zeros((0, 3)), np.ones(3)).shape == (0,)
    np.testing.assert_array_equal(vector_dots(np.zeros((2, 0)), np.zeros(0)), [0.0, 0.0])


def _history_as_scipy_computes_it(
    confidence: sp.csr_matrix,
    tfidf: sp.csr_matrix,
    rows: np.ndarray,
    position_of: np.ndarray,
) -> sp.csr_matrix:
    """The profiles as serving computed them before they were compiled: the chosen rows
    (zero for -1), their columns mapped to positions, the float32 product, unit rows."""
    keep = sp.diags((rows >= 0).astype(np.float32))
    weights = sp.csr_matrix(keep @ confidence[np.maximum(rows, 0)]).tocoo()
    inside = weights.col < len(position_of)
    mapped = position_of[weights.col[inside]]
    kept = mapped >= 0
    positions = sp.csr_matrix(
        (weights.data[inside][kept], (weights.row[inside][kept], mapped[kept])),
        shape=(len(rows), tfidf.shape[0]),
        dtype=np.float32,
    )
    return _unit_rows(positions @ tfidf)


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_history_profiles_are_scipys_unit_rows_bit_for_bit(seed: int) -> None:
    rng = np.random.default_rng(seed)
    tfidf = _unit_rows(sp.random(60, 300, density=0.05, random_state=seed, dtype=np.float32))
    confidence = sp.csr_matrix(
        sp.random(12, 90, density=0.1, random_state=seed + 10, dtype=np.float32)
    )
    confidence.data = confidence.data * 3.0 - 0.5  # some negative confidences
    position_of = rng.permutation(np.arange(80) % 60)[:80].astype(np.int64)
    position_of[rng.random(80) < 0.2] = -1  # events not in the catalogue; 80..89: unknown
    rows = rng.integers(-1, 12, 20).astype(np.int64)
    expected = _history_as_scipy_computes_it(sp.csr_matrix(confidence), tfidf, rows, position_of)
    indptr, indices, data = history_profiles(confidence, tfidf, rows, position_of)
    np.testing.assert_array_equal(indptr, expected.indptr)
    np.testing.assert_array_equal(indices, expected.indices)
    np.testing.assert_array_equal(data, expected.data)
    # Columns as positions (no map), every row.
    square = sp.csr_matrix(confidence[:, :60])
    indptr, indices, data = history_profiles(square, tfidf)
    direct = _unit_rows(square @ tfidf)
    np.testing.assert_array_equal(indptr, direct.indptr)
    np.testing.assert_array_equal(indices, direct.indices)
    np.testing.assert_array_equal(data, direct.data)
    with pytest.raises(IndexError, match="row 12 of 12"):
        history_profiles(confidence, tfidf, np.array([0, 12]), position_of)


def test_without_a_writable_cache_the_loops_are_compiled_per_process(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    import numba

    from eventrec.model import hybrid_kernel

    real = numba.njit

    def no_locator(*args: object, cache: bool = False, **options: object) -> object:
        if cache:
            raise RuntimeError("cannot cache function 'f': no locator available for file")
        return real(*args, **options)

    monkeypatch.setattr(numba, "njit", no_locator)

    @hybrid_kernel.compiled()
    def twice(x: float) -> float:
        return 2.0 * x / 0.0  # IEEE division all the same

    assert twice(1.5) == np.inf
    assert twice._cache.__class__.__name__ == "NullCache"  # nothing written anywhere
