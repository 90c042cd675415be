"""A row's aggregate does not depend on the order its records arrived in (routing may
deliver a user's interactions out of order): only their times count."""

from __future__ import annotations

import itertools

import numpy as np

from eventrec.model.aggregate import aggregate
from eventrec.model.records import (
    TYPE_BOOKING,
    TYPE_BOOKING_CANCELLED,
    TYPE_DISMISS,
    TYPE_RATING,
    TYPE_SAVE,
    TYPE_VIEW,
    InteractionLog,
)

# (event, type, value, time, aux)
ROW = [
    (0, TYPE_BOOKING, 2, 100, 7),
    (0, TYPE_BOOKING_CANCELLED, 1, 90, 7),  # its clock ran behind: still cancels booking 7
    (1, TYPE_BOOKING, 1, 100, 8),
    (1, TYPE_BOOKING, 1, 110, 9),
    (1, TYPE_BOOKING_CANCELLED, 1, 120, 9),
    (2, TYPE_RATING, 2, 300, 0),
    (2, TYPE_RATING, 5, 200, 0),
    (3, TYPE_VIEW, 1, 50, 0),
    (3, TYPE_SAVE, 1, 60, 0),
    (4, TYPE_DISMISS, 1, 70, 0),
    (4, TYPE_VIEW, 1, 80, 0),
    (5, TYPE_BOOKING, 1, 10, 0),
    (5, TYPE_BOOKING_CANCELLED, 1, 20, 0),
]


def aggregate_of(rows: list[tuple[int, int, int, int, int]]) -> tuple[object, ...]:
    columns = list(zip(*rows, strict=True))
    log = InteractionLog.from_columns(
        np.zeros(len(rows), dtype=np.int64),
        np.array(columns[0]),
        np.array(columns[1]),
        np.array(columns[2]),
        np.array(columns[3]),
        np.array(columns[4]),
        n_users=1,
        n_events=6,
    )
    result = aggregate(log, now=1000.0)
    return (
        result.confidence.toarray().round(6).tolist(),
        result.hidden.toarray().tolist(),
        sorted(zip(result.rating_event.tolist(), result.rating_value.tolist(), strict=True)),
    )


def test_every_arrival_order_gives_the_same_aggregate() -> None:
    expected = aggregate_of(ROW)
    confidence, hidden, ratings = expected
    assert hidden[0] == [False, True, True, False, True, False]  # booking 8 stands
    assert confidence[0][0] == 0.0  # booking 7 cancelled though the cancel is dated earlier
    assert ratings == [(2, 2)]  # the latest rating by time, not by arrival
    rng = np.random.default_rng(3)
    for _ in range(200):
        order = rng.permutation(len(ROW))
        assert aggregate_of([ROW[i] for i in order]) == expected


def test_a_cancellation_without_booking_id_needs_an_earlier_booking() -> None:
    for rows in itertools.permutations(
        [(0, TYPE_BOOKING, 1, 30, 0), (0, TYPE_BOOKING_CANCELLED, 1, 20, 0)]
    ):
        hidden = aggregate_of(list(rows))[1]
        assert hidden[0][0] is True  # the cancellation came before any booking: nothing
