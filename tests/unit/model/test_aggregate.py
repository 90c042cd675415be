"""Every aggregation rule on hand-made logs, and compaction as a property."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from eventrec.model.aggregate import (
    Aggregate,
    InteractionWeights,
    aggregate,
    compact,
    compact_row,
)
from eventrec.model.records import (
    RECORD_DTYPE,
    TYPE_BOOKING,
    TYPE_BOOKING_CANCELLED,
    TYPE_DISMISS,
    TYPE_RATING,
    TYPE_SAVE,
    TYPE_VIEW,
    InteractionLog,
)

WEIGHTS = InteractionWeights(
    view=1.0,
    view_saturation=3,
    save=2.0,
    booking=5.0,
    rating_weights=(0.0, 0.5, 1.0, 3.0, 7.0),
)


def one_user_log(*rows: tuple[int, int, int, int, int], n_events: int = 4) -> InteractionLog:
    """A log of one user from (event, type, value, time, aux) tuples in applied order."""
    event, kind, value, time, aux = (np.array(column) for column in zip(*rows, strict=True))
    return InteractionLog.from_columns(
        np.zeros(len(rows), dtype=np.int32), event, kind, value, time, aux, n_events=n_events
    )


def confidence_of(result: Aggregate) -> np.ndarray:
    return np.asarray(result.confidence.toarray())[0]


def hidden_of(result: Aggregate) -> np.ndarray:
    return np.asarray(result.hidden.toarray())[0]


def test_views_saturate_and_value_counts_views() -> None:
    log = one_user_log(
        (0, TYPE_VIEW, 1, 10, 0),
        (0, TYPE_VIEW, 1, 11, 0),
        (1, TYPE_VIEW, 2, 10, 0),
        (2, TYPE_VIEW, 9, 10, 0),
        (2, TYPE_VIEW, 1, 12, 0),
    )
    result = aggregate(log, WEIGHTS)
    np.testing.assert_allclose(confidence_of(result), [2.0, 2.0, 3.0, 0.0])
    assert not hidden_of(result).any()
    assert result.confidence.dtype == np.float32


def test_save_counts_once_and_adds_to_views() -> None:
    log = one_user_log((1, TYPE_SAVE, 1, 10, 0), (1, TYPE_SAVE, 1, 11, 0), (1, TYPE_VIEW, 1, 12, 0))
    np.testing.assert_allclose(confidence_of(aggregate(log, WEIGHTS)), [0, 3.0, 0, 0])


def test_latest_rating_by_time_wins() -> None:
    log = one_user_log((3, TYPE_RATING, 5, 20, 0), (3, TYPE_RATING, 2, 10, 0))
    result = aggregate(log, WEIGHTS)
    np.testing.assert_array_equal(result.rating_value, [5])
    np.testing.assert_array_equal(result.rating_time, [20])
    np.testing.assert_allclose(confidence_of(result), [0, 0, 0, 7.0])
    assert hidden_of(result)[3]


def test_rating_time_tie_broken_by_later_position() -> None:
    log = one_user_log((3, TYPE_RATING, 5, 20, 0), (3, TYPE_RATING, 2, 20, 0))
    result = aggregate(log, WEIGHTS)
    np.testing.assert_array_equal(result.rating_value, [2])
    np.testing.assert_allclose(confidence_of(result), [0, 0, 0, 0.5])
    np.testing.assert_array_equal(result.positive_event, [])


def test_rating_with_zero_weight_is_hidden_but_has_no_confidence() -> None:
    result = aggregate(one_user_log((2, TYPE_RATING, 1, 5, 0)), WEIGHTS)
    assert result.confidence.nnz == 0
    assert hidden_of(result)[2]
    np.testing.assert_array_equal(result.rating_event, [2])


def test_booking_hides_and_adds_confidence_once() -> None:
    log = one_user_log((1, TYPE_BOOKING, 2, 10, 7), (1, TYPE_BOOKING, 1, 11, 8))
    result = aggregate(log, WEIGHTS)
    np.testing.assert_allclose(confidence_of(result), [0, 5.0, 0, 0])
    assert hidden_of(result)[1]
    assert result.booked[0, 1]


def test_cancellation_by_hash_cancels_that_booking_only() -> None:
    # Booking 7 is cancelled, booking 8 (later) stays: the pair is still booked.
    log = one_user_log(
        (1, TYPE_BOOKING, 1, 10, 7),
        (1, TYPE_BOOKING, 1, 11, 8),
        (1, TYPE_BOOKING_CANCELLED, 1, 12, 7),
        (2, TYPE_BOOKING, 1, 10, 9),
        (2, TYPE_BOOKING_CANCELLED, 1, 12, 9),
    )
    result = aggregate(log, WEIGHTS)
    np.testing.assert_allclose(confidence_of(result), [0, 5.0, 0, 0])
    np.testing.assert_array_equal(hidden_of(result), [False, True, False, False])


def test_cancellation_without_hash_cancels_latest_earlier_booking() -> None:
    log = one_user_log(
        (1, TYPE_BOOKING, 1, 10, 7),
        (1, TYPE_BOOKING, 1, 11, 8),
        (1, TYPE_BOOKING_CANCELLED, 1, 12, 0),  # cancels 8
        (1, TYPE_BOOKING_CANCELLED, 1, 13, 0),  # cancels 7
    )
    result = aggregate(log, WEIGHTS)
    assert result.confidence.nnz == 0
    assert not hidden_of(result).any()
    two_cancels_of_one = one_user_log(
        (1, TYPE_BOOKING, 1, 10, 7),
        (1, TYPE_BOOKING, 1, 11, 8),
        (1, TYPE_BOOKING_CANCELLED, 1, 12, 0),
    )
    assert aggregate(two_cancels_of_one, WEIGHTS).booked[0, 1]


def test_cancellation_with_unknown_hash_falls_back_to_latest_booking() -> None:
    log = one_user_log((1, TYPE_BOOKING, 1, 10, 7), (1, TYPE_BOOKING_CANCELLED, 1, 12, 99))
    assert aggregate(log, WEIGHTS).booked.nnz == 0


def test_repeated_cancellation_of_one_booking_cancels_nothing_else() -> None:
    log = one_user_log(
        (1, TYPE_BOOKING, 1, 10, 7),
        (1, TYPE_BOOKING, 1, 11, 8),
        (1, TYPE_BOOKING_CANCELLED, 1, 12, 8),
        (1, TYPE_BOOKING_CANCELLED, 1, 13, 8),
    )
    assert aggregate(log, WEIGHTS).booked[0, 1]


def test_cancellation_only_affects_earlier_bookings_of_same_pair() -> None:
    log = one_user_log(
        (1, TYPE_BOOKING_CANCELLED, 1, 9, 0),  # nothing earlier to cancel
        (1, TYPE_BOOKING, 1, 10, 7),
        (2, TYPE_BOOKING_CANCELLED, 1, 12, 7),  # another event: not this booking
    )
    result = aggregate(log, WEIGHTS)
    np.testing.assert_allclose(confidence_of(result), [0, 5.0, 0, 0])


def test_cancellation_does_not_cross_users() -> None:
    log = InteractionLog.from_columns(
        np.array([0, 1]),
        np.array([1, 1]),
        np.array([TYPE_BOOKING, TYPE_BOOKING_CANCELLED]),
        np.array([1, 1]),
        np.array([10, 11]),
        np.array([7, 7]),
    )
    assert aggregate(log, WEIGHTS).booked[0, 1]


def test_dismiss_hides_and_zeroes_confidence() -> None:
    log = one_user_log(
        (0, TYPE_VIEW, 3, 10, 0), (0, TYPE_SAVE, 1, 11, 0), (0, TYPE_DISMISS, 1, 12, 0)
    )
    result = aggregate(log, WEIGHTS)
    assert result.confidence.nnz == 0
    assert hidden_of(result)[0]
    assert len(result.positive_event) == 0


def test_positive_pairs_and_their_latest_time() -> None:
    log = one_user_log(
        (0, TYPE_SAVE, 1, 10, 0),
        (0, TYPE_BOOKING, 1, 30, 5),
        (1, TYPE_RATING, 4, 20, 0),
        (2, TYPE_RATING, 3, 20, 0),
        (3, TYPE_VIEW, 1, 40, 0),
    )
    result = aggregate(log, WEIGHTS)
    np.testing.assert_array_equal(result.positive_event, [0, 1])
    np.testing.assert_array_equal(result.positive_time, [30, 20])


def test_time_decay_halves_after_one_half_life() -> None:
    day = 86400
    log = one_user_log((0, TYPE_SAVE, 1, 0, 0), (1, TYPE_SAVE, 1, 2 * day, 0))
    decayed = InteractionWeights(save=2.0, half_life_days=2.0)
    np.testing.assert_allclose(confidence_of(aggregate(log, decayed)), [1.0, 2.0, 0, 0])
    later = aggregate(log, decayed, now=4 * day)
    np.testing.assert_allclose(confidence_of(later), [0.5, 1.0, 0, 0])


def test_users_are_kept_apart_and_shapes_follow_log() -> None:
    log = InteractionLog.from_columns(
        np.array([0, 2, 2]),
        np.array([1, 1, 0]),
        np.array([TYPE_SAVE, TYPE_VIEW, TYPE_SAVE]),
        np.array([1, 1, 1]),
        np.array([1, 1, 1]),
        n_users=4,
        n_events=3,
    )
    result = aggregate(log, WEIGHTS)
    assert result.confidence.shape == (4, 3)
    np.testing.assert_allclose(
        result.confidence.toarray(), [[0, 2, 0], [0, 0, 0], [2, 1, 0], [0, 0, 0]]
    )


def test_empty_log() -> None:
    log = InteractionLog(np.zeros(0, np.int32), np.zeros(0, RECORD_DTYPE), 2, 3)
    result = aggregate(log)
    assert result.confidence.shape == (2, 3)
    assert result.confidence.nnz == 0
    assert len(compact(log)) == 0


def test_weights_validate_and_round_trip() -> None:
    with pytest.raises(ValueError, match="non-negative"):
        InteractionWeights(save=-1.0)
    with pytest.raises(ValueError, match="view_saturation"):
        InteractionWeights(view_saturation=256)
    assert InteractionWeights.from_dict(WEIGHTS.to_dict()) == WEIGHTS


def test_compact_row_collapses_views_and_drops_superseded_ratings() -> None:
    log = one_user_log(
        (0, TYPE_VIEW, 200, 10, 0),
        (1, TYPE_RATING, 3, 10, 0),
        (0, TYPE_VIEW, 100, 30, 0),
        (1, TYPE_RATING, 5, 12, 0),
        (0, TYPE_VIEW, 1, 20, 0),
        (2, TYPE_BOOKING, 1, 10, 3),
    )
    row = compact_row(log.records)
    assert row.dtype == RECORD_DTYPE
    np.testing.assert_array_equal(row["event"], [1, 0, 2])
    np.testing.assert_array_equal(row["type"], [TYPE_RATING, TYPE_VIEW, TYPE_BOOKING])
    np.testing.assert_array_equal(row["value"], [5, 255, 1])
    np.testing.assert_array_equal(row["time"], [12, 30, 10])


def assert_same_aggregate(left: Aggregate, right: Aggregate) -> None:
    np.testing.assert_allclose(left.confidence.toarray(), right.confidence.toarray(), rtol=1e-6)
    for name in ("hidden", "booked"):
        np.testing.assert_array_equal(
            getattr(left, name).toarray(), getattr(right, name).toarray(), err_msg=name
        )
    for name in (
        "rating_user",
        "rating_event",
        "rating_value",
        "rating_time",
        "positive_user",
        "positive_event",
        "positive_time",
    ):
        np.testing.assert_array_equal(getattr(left, name), getattr(right, name), err_msg=name)


record_strategy = st.tuples(
    st.integers(0, 1),  # user
    st.integers(0, 3),  # event
    st.sampled_from(
        [TYPE_VIEW, TYPE_SAVE, TYPE_BOOKING, TYPE_BOOKING_CANCELLED, TYPE_RATING, TYPE_DISMISS]
    ),
    st.integers(0, 255),  # value
    st.integers(0, 5),  # time: few values, so ties are common
    st.integers(0, 2),  # aux
)


@settings(max_examples=200, deadline=None)
@given(
    rows=st.lists(record_strategy, max_size=30),
    half_life_days=st.sampled_from([None, 1e-5]),
)
def test_compaction_preserves_aggregate(
    rows: list[tuple[int, int, int, int, int, int]], half_life_days: float | None
) -> None:
    columns = np.array(rows, dtype=np.int64).reshape(len(rows), 6).T
    log = InteractionLog.from_columns(*columns, n_users=2, n_events=4)
    weights = InteractionWeights(view_saturation=5, half_life_days=half_life_days)
    compacted = compact(log)
    assert len(compacted) <= len(log)
    assert_same_aggregate(aggregate(log, weights, now=6.0), aggregate(compacted, weights, now=6.0))
    for user_index in (0, 1):
        row = log.records[log.user == user_index]
        compacted_row = compact_row(row, n_events=4)
        np.testing.assert_array_equal(
            compacted_row, compacted.records[compacted.user == user_index]
        )


def test_latest_time_is_the_latest_record_whatever_the_order() -> None:
    log = one_user_log(
        (0, TYPE_VIEW, 1, 500, 0), (1, TYPE_SAVE, 1, 900, 0), (2, TYPE_VIEW, 1, 40, 0)
    )
    assert log.latest_time() == 900.0
    empty = InteractionLog(np.zeros(0, np.int32), np.zeros(0, RECORD_DTYPE), 1, 1)
    assert empty.latest_time() == 0.0
