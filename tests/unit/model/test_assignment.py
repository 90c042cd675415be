"""Assignment by hash: deterministic, in proportion, independent across experiments."""

from __future__ import annotations

from collections import Counter

import pytest

from eventrec.model.abtest import sample_ratio_check
from eventrec.model.assignment import assign_variant


def test_the_same_user_always_gets_the_same_variant() -> None:
    first = [assign_variant("exp", f"u-{i}", [50, 50]) for i in range(1000)]
    assert first == [assign_variant("exp", f"u-{i}", [50, 50]) for i in range(1000)]


def test_variants_get_their_share() -> None:
    counts = Counter(assign_variant("exp", f"u-{i}", [90, 5, 5]) for i in range(100_000))
    observed = [counts[0], counts[1], counts[2]]
    assert not sample_ratio_check(observed, [90, 5, 5]).mismatch
    assert observed[0] == pytest.approx(90_000, rel=0.01)


def test_traffic_leaves_users_out() -> None:
    assigned = [assign_variant("exp", f"u-{i}", [1, 1], traffic=0.2) for i in range(50_000)]
    inside = sum(a is not None for a in assigned)
    assert inside == pytest.approx(10_000, rel=0.05)


def test_experiments_are_independent() -> None:
    pairs = Counter(
        (assign_variant("one", f"u-{i}", [1, 1]), assign_variant("two", f"u-{i}", [1, 1]))
        for i in range(40_000)
    )
    for pair in ((0, 0), (0, 1), (1, 0), (1, 1)):
        assert pairs[pair] == pytest.approx(10_000, rel=0.05)


def test_a_bad_split_is_refused() -> None:
    with pytest.raises(ValueError, match="split"):
        assign_variant("exp", "u", [0, 0])
