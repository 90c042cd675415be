"""The compact impression record, its chunks and the tables' bucket function."""

from __future__ import annotations

import os
from collections import Counter

import pytest

from eventrec.model.impressions import (
    PENDING_SIZE,
    chunk_fields,
    event_hash,
    pack_impression,
    pack_pending,
    response_hash,
    stored_record,
    table_bucket,
    unpack_impressions,
    value_chunks,
)


def test_ten_events_take_44_bytes_and_round_trip() -> None:
    events = [f"ev-{i:05d}" for i in range(10)]
    record = pack_impression("u1", "cb3a7e9ec5", 1_790_000_000.7, 3, 1, events)
    assert len(record) == 44
    second = pack_impression("u1", "r2", 1_790_000_100, 0, 0, events[:2])
    (one, two) = unpack_impressions(record + second)
    assert one.response == response_hash("u1", "cb3a7e9ec5")
    assert (one.shown_at, one.experiment, one.variant) == (1_790_000_000, 3, 1)
    assert one.events == tuple(event_hash(e) for e in events)
    assert two.events == (event_hash("ev-00000"), event_hash("ev-00001"))


def test_a_response_is_named_by_user_and_request() -> None:
    assert response_hash("u1", "r1") != response_hash("u2", "r1")
    assert len(response_hash("u1", "r1")) == 6


def test_truncated_data_is_an_error() -> None:
    record = pack_impression("u", "r", 0, 0, 0, ["a", "b"])
    with pytest.raises(ValueError, match="truncated"):
        unpack_impressions(record[:-1])


def test_out_of_range_codes_are_refused() -> None:
    with pytest.raises(ValueError, match="experiment code"):
        pack_impression("u", "r", 0, 70_000, 0, [])


def test_pending_outcome_size() -> None:
    assert len(pack_pending("u", "r", "e", 1.0, "booking")) == PENDING_SIZE == 14


@pytest.mark.parametrize(("shown", "sizes"), [(10, [36]), (19, [63]), (20, [63, 3]),
                                              (40, [63, 63]), (50, [63, 63, 30])])  # fmt: skip
def test_stored_values_fit_a_listpack_and_read_back(shown: int, sizes: list[int]) -> None:
    day = 20_787
    shown_at = day * 86_400 + 86_399  # the day's last second: the 3-byte time's largest
    record = pack_impression("u", "r", shown_at, 513, 7, [f"e{i}" for i in range(shown)])
    chunks = value_chunks(record)
    assert [len(c) for c in chunks] == sizes
    assert max(sizes) <= 64  # Redis's default hash-max-listpack-value
    (want,) = unpack_impressions(record)
    fields = chunk_fields(want.response)
    # As the store reads them: every further field, missing ones as None.
    read = [*chunks, *([None] * (len(fields) + 1 - len(chunks)))]
    assert stored_record(want.response, day, read) == want


def test_buckets_split_one_at_a_time_and_stay_even() -> None:
    fields = [os.urandom(6) for _ in range(20_000)]
    for buckets in (1, 2, 3, 5, 8, 13, 100):
        assert {table_bucket(f, buckets) for f in fields} == set(range(buckets))
    # Growing from n to n + 1 buckets moves fields only from bucket n - 2^L into bucket n.
    for buckets in range(1, 70):
        low = 1 << (buckets.bit_length() - 1)
        for f in fields[:2000]:
            before, after = table_bucket(f, buckets), table_bucket(f, buckets + 1)
            assert after == before or (before, after) == (buckets - low, buckets)
    # With 96 buckets (64 split, 32 not yet), an unsplit bucket holds twice a split one.
    sizes = Counter(table_bucket(f, 96) for f in fields)
    unsplit = sum(sizes[b] for b in range(32, 64)) / 32
    split = sum(sizes[b] for b in range(0, 32)) / 32
    assert 1.8 < unsplit / split < 2.2
