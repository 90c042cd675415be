"""Splits keep every (user, event) pair on one side and hold out the right pairs."""

from __future__ import annotations

import numpy as np
import pytest

from eventrec.evaluation.splits import split_test_mask
from eventrec.model.records import TYPE_BOOKING, TYPE_RATING, TYPE_VIEW, InteractionLog

# (user, event, time): user 0 views event 0 at 10 and again at 50, so that pair's time is 10.
ROWS = [
    (0, 0, 10),
    (0, 1, 20),
    (0, 2, 30),
    (0, 0, 50),
    (1, 0, 5),
    (1, 3, 40),
    (1, 3, 60),
    (2, 4, 15),
]


def tiny_log() -> InteractionLog:
    user, event, time = (np.array(column) for column in zip(*ROWS, strict=True))
    kind = np.full(len(ROWS), TYPE_VIEW)
    return InteractionLog.from_columns(user, event, kind, np.ones(len(ROWS)), time)


def pairs_on(log: InteractionLog, mask: np.ndarray) -> set[tuple[int, int]]:
    return {
        (int(u), int(e)) for u, e in zip(log.user[mask], log.records["event"][mask], strict=True)
    }


def test_temporal_holds_out_the_latest_pairs_by_first_interaction() -> None:
    log = tiny_log()
    mask = split_test_mask(log, "temporal", test_fraction=0.5)
    # Pair (0, 0) has a record at t=50 but its time is its first, t=10: it stays in training.
    assert pairs_on(log, mask) == {(0, 1), (0, 2), (1, 3)}
    assert mask.sum() == 4
    assert pairs_on(log, ~mask) == {(0, 0), (1, 0), (2, 4)}


def test_leave_last_holds_out_each_users_last_pair_and_keeps_single_pair_users() -> None:
    log = tiny_log()
    mask = split_test_mask(log, "leave-last")
    assert pairs_on(log, mask) == {(0, 2), (1, 3)}
    assert mask.tolist() == [False, False, True, False, False, True, True, False]


def test_leave_last_breaks_equal_times_by_record_order() -> None:
    log = InteractionLog.from_columns(
        np.array([0, 0, 0]),
        np.array([2, 0, 1]),
        np.array([TYPE_VIEW, TYPE_BOOKING, TYPE_RATING]),
        np.array([1, 1, 4]),
        np.array([7, 7, 7]),
    )
    assert split_test_mask(log, "leave-last").tolist() == [False, False, True]


def test_random_holds_out_the_fraction_of_pairs_and_keeps_pairs_whole() -> None:
    rng = np.random.default_rng(3)
    n = 5000
    user = rng.integers(0, 200, size=n)
    event = rng.integers(0, 100, size=n)
    log = InteractionLog.from_columns(
        user, event, np.full(n, TYPE_VIEW), np.ones(n), rng.integers(0, 10**6, size=n)
    )
    n_pairs = len(np.unique(user * 100 + event))
    mask = split_test_mask(log, "random", test_fraction=0.2, seed=7)
    assert not pairs_on(log, mask) & pairs_on(log, ~mask)
    assert len(pairs_on(log, mask)) == round(0.2 * n_pairs)
    assert np.array_equal(mask, split_test_mask(log, "random", test_fraction=0.2, seed=7))
    assert not np.array_equal(mask, split_test_mask(log, "random", test_fraction=0.2, seed=8))


def test_random_on_the_tiny_log_moves_whole_pairs() -> None:
    log = tiny_log()
    mask = split_test_mask(log, "random", test_fraction=0.5, seed=1)
    assert len(pairs_on(log, mask)) == 3
    assert not pairs_on(log, mask) & pairs_on(log, ~mask)


def test_temporal_sizes_on_a_larger_log() -> None:
    rng = np.random.default_rng(0)
    n = 3000
    user, event = rng.integers(0, 50, size=n), rng.integers(0, 80, size=n)
    time = rng.integers(0, 10**6, size=n)
    log = InteractionLog.from_columns(user, event, np.full(n, TYPE_VIEW), np.ones(n), time)
    mask = split_test_mask(log, "temporal", test_fraction=0.25)
    first_time: dict[tuple[int, int], int] = {}
    for u, e, t in zip(user.tolist(), event.tolist(), time.tolist(), strict=True):
        first_time[(u, e)] = min(t, first_time.get((u, e), t))
    held_out = pairs_on(log, mask)
    assert len(held_out) == round(0.25 * len(first_time))
    assert min(first_time[p] for p in held_out) >= max(
        first_time[p] for p in first_time.keys() - held_out
    )


@pytest.mark.parametrize("fraction", [0.0, 1.0, -0.1])
def test_a_test_fraction_outside_0_1_is_refused(fraction: float) -> None:
    with pytest.raises(ValueError, match="test_fraction"):
        split_test_mask(tiny_log(), "random", test_fraction=fraction)
