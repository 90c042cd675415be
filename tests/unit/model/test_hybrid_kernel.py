"""The compiled loops against numpy and scipy on known answers."""

from __future__ import annotations

import numpy as np
import scipy.sparse as sp

from eventrec.model.hybrid_kernel import group_cosines, sparse_product, vector_dots


def test_sparse_product_is_scipys_product_made_dense() -> None:
    dense = sp.random(7, 40, density=0.2, random_state=1, dtype=np.float32).toarray()
    dense[3] = 0.0  # a row without any term: a row of zeros
    left = sp.csr_matrix(dense)
    right = sp.random(40, 9, density=0.3, random_state=2, format="csr", dtype=np.float64)
    found = sparse_product(left, right)
    assert found.shape == (7, 9)
    expected = (sp.csr_matrix(left, dtype=np.float64) @ right).toarray()
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
