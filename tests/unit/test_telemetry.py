"""Metrics plumbing: bounded dead-letter reason labels, the multiprocess directory."""

from __future__ import annotations

import pytest

from eventrec.errors import ConfigError
from eventrec.telemetry import MULTIPROC_ENV, dead_letter_reason, use_multiprocess_dir


@pytest.mark.parametrize(
    ("reason", "label"),
    [
        ("rating: required for type 'rating'", "rating"),
        ("occurred_at: Input should have timezone info", "occurred_at"),
        ("price.amount: Input should be greater than or equal to 0", "price"),
        ("key: a tombstone needs the event_id as its key", "key"),
        ("value: Invalid JSON: EOF while parsing", "value"),
        ("favourite_colour: Extra inputs are not permitted", "unknown_field"),
        ("made_up_by_a_producer: anything", "other"),
        ("no colon at all", "other"),
        ("", "other"),
    ],
)
def test_a_dead_letter_reason_becomes_a_bounded_label(reason: str, label: str) -> None:
    assert dead_letter_reason(reason) == label


def test_an_existing_multiprocess_directory_is_used_as_it_is(
    monkeypatch: pytest.MonkeyPatch, tmp_path: object
) -> None:
    monkeypatch.setenv(MULTIPROC_ENV, str(tmp_path))
    assert str(use_multiprocess_dir()) == str(tmp_path)


def test_choosing_the_directory_after_the_metrics_exist_is_refused(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    import prometheus_client  # noqa: F401 - the situation under test: already imported

    monkeypatch.delenv(MULTIPROC_ENV, raising=False)
    with pytest.raises(ConfigError, match="use_multiprocess_dir"):
        use_multiprocess_dir()
