"""The compact impression record."""

from __future__ import annotations

import pytest

from eventrec.model.impressions import (
    PENDING_SIZE,
    event_hash,
    pack_impression,
    pack_pending,
    request_hash,
    unpack_impressions,
)


def test_ten_events_take_44_bytes_and_round_trip() -> None:
    events = [f"ev-{i:05d}" for i in range(10)]
    record = pack_impression("cb3a7e9ec5a945c3832922d28523ffb8", 1_790_000_000.7, 3, 1, events)
    assert len(record) == 44
    second = pack_impression("r2", 1_790_000_100, 0, 0, events[:2])
    (one, two) = unpack_impressions(record + second)
    assert one.request == request_hash("cb3a7e9ec5a945c3832922d28523ffb8")
    assert (one.shown_at, one.experiment, one.variant) == (1_790_000_000, 3, 1)
    assert one.events == tuple(event_hash(e) for e in events)
    assert two.events == (event_hash("ev-00000"), event_hash("ev-00001"))


def test_truncated_data_is_an_error() -> None:
    record = pack_impression("r", 0, 0, 0, ["a", "b"])
    with pytest.raises(ValueError, match="truncated"):
        unpack_impressions(record[:-1])


def test_out_of_range_codes_are_refused() -> None:
    with pytest.raises(ValueError, match="experiment code"):
        pack_impression("r", 0, 70_000, 0, [])


def test_pending_outcome_size() -> None:
    assert len(pack_pending("r", "e", 1.0, "booking")) == PENDING_SIZE == 14
