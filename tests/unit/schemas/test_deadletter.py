"""Dead letters too large to send whole are cut to fit, keeping why and where."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from eventrec.schemas import DeadLetter


def letter(key: bytes | None, value: bytes | None) -> DeadLetter:
    return DeadLetter(
        reason="Invalid JSON: expected value at line 1 column 1",
        topic="interactions",
        partition=4,
        offset=1234,
        key=key,
        value=value,
        failed_at=datetime(2026, 11, 30, 12, tzinfo=UTC),
    )


def test_a_letter_that_fits_is_left_whole() -> None:
    whole = letter(b"u-1", b"x" * 1000)
    assert whole.fitting(100_000) is whole
    assert not whole.truncated
    assert "eventrec.original_size" not in dict(whole.headers())


def test_a_large_value_is_cut_with_its_original_size_and_coordinates_in_headers() -> None:
    big = letter(b"u-1", b"x" * 3_000_000)
    cut = big.fitting(1_000_000)
    assert cut.truncated
    assert cut.size() <= 1_000_000
    assert cut.key == b"u-1"
    assert cut.value == b"x" * len(cut.value or b"")
    assert len(cut.value or b"") > 990_000  # cut to fit, not emptied
    headers = dict(cut.headers())
    assert headers["eventrec.original_size"] == b"3000003"
    assert headers["eventrec.partition"] == b"4"
    assert headers["eventrec.offset"] == b"1234"
    assert headers["eventrec.reason"] == big.reason.encode()
    back = DeadLetter.from_kafka(cut.key, cut.value, cut.headers())
    assert back == cut
    assert back.original_size == 3_000_003


def test_a_huge_key_is_cut_after_the_value() -> None:
    cut = letter(b"k" * 5000, b"v" * 5000).fitting(4000)
    assert cut.value == b""
    assert cut.key == b"k" * len(cut.key or b"")
    assert cut.size() <= 4000
    assert cut.original_size == 10_000


def test_a_null_value_stays_null() -> None:
    cut = letter(b"k" * 5000, None).fitting(4000)
    assert cut.value is None
    assert cut.size() <= 4000


def test_headers_alone_too_large_is_an_error() -> None:
    with pytest.raises(ValueError, match="cannot hold"):
        letter(b"k", b"v" * 100).fitting(200)
