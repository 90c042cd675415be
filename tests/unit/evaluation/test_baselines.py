"""The baselines: the guide's SVD + cosine against its formula in dense numpy, popularity."""

from __future__ import annotations

import numpy as np
import pytest

from eventrec.evaluation.baselines import GuideSvdCosine, Popularity, guide_matrix
from eventrec.model.records import (
    TYPE_BOOKING,
    TYPE_DISMISS,
    TYPE_RATING,
    TYPE_VIEW,
    InteractionLog,
)

# (user, event, type, raw rating). Users 0..4 and events 0..5 of an index space of 7 x 8:
# user 5 and events 6, 7 never appear, as a pivot table would not have them either.
ROWS = [
    (0, 0, TYPE_RATING, 5.0),
    (0, 0, TYPE_VIEW, 0.0),  # with the rating above, the cell is the mean (5 + 1) / 2
    (0, 1, TYPE_RATING, 3.0),
    (0, 3, TYPE_VIEW, 0.0),
    (1, 0, TYPE_RATING, 4.0),
    (1, 2, TYPE_RATING, 2.0),
    (1, 2, TYPE_RATING, 4.5),  # two ratings of one pair: their mean 3.25
    (1, 4, TYPE_BOOKING, 0.0),
    (2, 1, TYPE_RATING, 1.0),
    (2, 5, TYPE_VIEW, 0.0),
    (2, 3, TYPE_RATING, 4.0),
    (3, 2, TYPE_RATING, 5.0),
    (3, 4, TYPE_RATING, 2.5),
    (3, 5, TYPE_RATING, 3.5),
    (4, 0, TYPE_VIEW, 0.0),
    (4, 1, TYPE_RATING, 2.0),
    (4, 5, TYPE_RATING, 5.0),
    (6, 3, TYPE_RATING, 0.5),
]
DENSE = np.array(
    [
        [3.0, 3.0, 0.0, 1.0, 0.0, 0.0],
        [4.0, 0.0, 3.25, 0.0, 1.0, 0.0],
        [0.0, 1.0, 0.0, 4.0, 0.0, 1.0],
        [0.0, 0.0, 5.0, 0.0, 2.5, 3.5],
        [1.0, 2.0, 0.0, 0.0, 0.0, 5.0],
        [0.0, 0.0, 0.0, 0.5, 0.0, 0.0],  # user 6
    ]
)
PRESENT_USERS = [0, 1, 2, 3, 4, 6]


def tiny_log() -> tuple[InteractionLog, np.ndarray]:
    user, event, kind, raw = (np.array(column) for column in zip(*ROWS, strict=True))
    raw = np.where(kind == TYPE_RATING, raw, np.nan)
    value = np.where(kind == TYPE_RATING, np.ceil(np.nan_to_num(raw)), 1).astype(int)
    log = InteractionLog.from_columns(
        user, event, kind, value, np.arange(len(ROWS)), n_users=7, n_events=8
    )
    return log, raw


def dense_guide_scores(n_components: int) -> np.ndarray:
    """The guide's formula on the dense pivot table: cos(row of U·Σ, row of V)."""
    u, sigma, vt = np.linalg.svd(DENSE, full_matrices=False)
    user_features = u[:, :n_components] * sigma[:n_components]
    event_features = vt[:n_components].T
    user_unit = user_features / np.linalg.norm(user_features, axis=1, keepdims=True)
    event_unit = event_features / np.linalg.norm(event_features, axis=1, keepdims=True)
    cosine: np.ndarray = user_unit @ event_unit.T
    return cosine


def test_the_sparse_matrix_is_the_guides_pivot_table() -> None:
    log, raw = tiny_log()
    matrix, users, events = guide_matrix(log, raw)
    assert users.tolist() == PRESENT_USERS
    assert events.tolist() == [0, 1, 2, 3, 4, 5]
    np.testing.assert_allclose(matrix.toarray(), DENSE)


@pytest.mark.parametrize("n_components", [2, 4, 50])
def test_guide_scores_equal_the_dense_formula(n_components: int) -> None:
    log, raw = tiny_log()
    guide = GuideSvdCosine(n_components=n_components, random_state=0).fit(log, raw)
    used = min(n_components, 6)
    assert guide.params_["n_components"] == used
    scores = guide.score(np.array(PRESENT_USERS))
    assert scores.shape == (6, 8)
    np.testing.assert_allclose(scores[:, :6], dense_guide_scores(used), atol=1e-8)
    assert np.isneginf(scores[:, 6:]).all()  # events absent from training cannot rank


def test_a_user_absent_from_training_scores_zero_with_the_guide() -> None:
    log, raw = tiny_log()
    guide = GuideSvdCosine(n_components=2).fit(log, raw)
    assert (guide.score(np.array([5]))[0, :6] == 0).all()


def test_popularity_counts_distinct_users_and_ignores_dismissals() -> None:
    log = InteractionLog.from_columns(
        np.array([0, 0, 0, 1, 2, 2, 3]),
        np.array([1, 1, 1, 1, 0, 1, 0]),
        np.array(
            [TYPE_VIEW, TYPE_VIEW, TYPE_VIEW, TYPE_BOOKING, TYPE_VIEW, TYPE_DISMISS, TYPE_VIEW]
        ),
        np.ones(7),
        np.arange(7),
        n_events=3,
    )
    popularity = Popularity().fit(log, np.full(7, np.nan))
    scores = popularity.score(np.array([0, 3]))
    assert scores.tolist() == [[2.0, 2.0, 0.0], [2.0, 2.0, 0.0]]
