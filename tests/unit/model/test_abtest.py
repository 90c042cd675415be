"""Known answers for the experiment statistics."""

from __future__ import annotations

import math

import numpy as np
import pytest

from eventrec.model.abtest import (
    RatioEstimate,
    VariantCounts,
    bootstrap_relative_difference,
    experiment_report,
    ratio_estimate,
    relative_difference,
    sample_ratio_check,
    users_needed,
)


def test_one_impression_per_user_is_a_proportion() -> None:
    # y = 1 for everyone: R = k/n and Var(R) = s²/n with s² = k(n-k)/(n(n-1)).
    estimate = ratio_estimate([1, 0, 0, 1], [1, 1, 1, 1])
    assert estimate.value == 0.5
    assert estimate.variance == pytest.approx(1 / 12)
    assert estimate.users == 4


def test_ratio_of_means_by_hand() -> None:
    # x = [1,2,0], y = [2,2,1]: R = 3/5, s_x² = 1, s_y² = 1/3, s_xy = 1/2, ȳ = 5/3;
    # Var = (1 - 2·0.6·0.5 + 0.36/3) / (3 · 25/9) = 0.52 · 0.12 = 0.0624.
    estimate = ratio_estimate([1, 2, 0], [2, 2, 1])
    assert estimate.value == pytest.approx(0.6)
    assert estimate.variance == pytest.approx(0.0624)


def test_users_are_the_unit_not_impressions() -> None:
    # One user with 100 impressions and 100 views and 99 users with 1 impression and 0:
    # a binomial over 199 impressions would be confident; over users it is not.
    x = np.array([100] + [0] * 99, dtype=float)
    y = np.array([100] + [1] * 99, dtype=float)
    estimate = ratio_estimate(x, y)
    binomial = estimate.value * (1 - estimate.value) / y.sum()
    assert estimate.variance > 10 * binomial


def test_relative_difference_by_hand() -> None:
    control = RatioEstimate(0.5, 0.0025, 1000, 500, 1000)
    treatment = RatioEstimate(0.6, 0.0036, 1000, 600, 1000)
    difference = relative_difference(control, treatment)
    assert difference is not None
    # Var = 1.2² (0.0036/0.36 + 0.0025/0.25) = 0.0288; half width 1.959964 · 0.169706.
    assert difference.relative == pytest.approx(0.2)
    assert difference.low == pytest.approx(0.2 - 1.959964 * math.sqrt(0.0288), rel=1e-5)
    assert difference.high == pytest.approx(0.2 + 1.959964 * math.sqrt(0.0288), rel=1e-5)
    assert not difference.excludes_zero


def test_relative_difference_needs_a_control_rate() -> None:
    zero = RatioEstimate(0.0, 0.0, 10, 0, 10)
    assert relative_difference(zero, RatioEstimate(0.5, 0.01, 10, 5, 10)) is None


def _users(rng: np.random.Generator, n: int, rate: float) -> tuple[np.ndarray, np.ndarray]:
    impressions = rng.integers(1, 8, size=n).astype(float)
    # A per-user propensity: users differ, so impressions of one user are correlated.
    propensity = np.clip(rng.normal(rate, rate / 2, size=n), 0, 1)
    return rng.binomial(impressions.astype(int), propensity).astype(float), impressions


def test_bootstrap_agrees_with_the_delta_method() -> None:
    rng = np.random.default_rng(7)
    control, treatment = _users(rng, 4000, 0.10), _users(rng, 4000, 0.12)
    delta = relative_difference(ratio_estimate(*control), ratio_estimate(*treatment))
    boot = bootstrap_relative_difference(control, treatment, resamples=1000, seed=1)
    assert delta is not None
    assert boot.relative == pytest.approx(delta.relative)
    assert boot.low == pytest.approx(delta.low, abs=0.02)
    assert boot.high == pytest.approx(delta.high, abs=0.02)


def test_a_a_intervals_cover_zero_about_95_percent_of_the_time() -> None:
    rng = np.random.default_rng(11)
    covered = 0
    trials = 400
    for _ in range(trials):
        difference = relative_difference(
            ratio_estimate(*_users(rng, 500, 0.2)), ratio_estimate(*_users(rng, 500, 0.2))
        )
        assert difference is not None
        covered += not difference.excludes_zero
    # Binomial(400, 0.95): 3 standard deviations are ±4.4 %.
    assert 0.90 <= covered / trials <= 0.99


def test_sample_ratio_check() -> None:
    assert sample_ratio_check([5000, 5000], [50, 50]).p_value == pytest.approx(1.0)
    skewed = sample_ratio_check([5200, 4800], [50, 50])
    # chi² = 2 · 200² / 5000 = 16 on one degree of freedom.
    assert skewed.p_value == pytest.approx(6.334e-5, rel=1e-3)
    assert skewed.mismatch
    assert not sample_ratio_check([9010, 990], [90, 10]).mismatch


def test_users_needed() -> None:
    # CV² = 1, 10 % lift: 2 (1.959964 + 0.841621)² / 0.01 = 1569.8.
    assert users_needed(1.0) == 1570
    assert users_needed(math.inf) == -1


def _counts(name: str, views: np.ndarray, impressions: np.ndarray) -> VariantCounts:
    zeros = np.zeros_like(impressions)
    return VariantCounts(name, impressions, {"view": views, "save": zeros, "booking": zeros})


def test_report_of_a_clear_winner_says_so() -> None:
    rng = np.random.default_rng(3)
    control = _counts("control", *_users(rng, 3000, 0.10))
    better = _counts("b", *_users(rng, 3000, 0.13))
    report = experiment_report([control, better], [50, 50], primary="view")
    b = report["variants"][1]["metrics"]["click_through"]["relative_to_control"]
    assert b["low"] > 0
    assert report["verdict"].startswith("b views ")
    assert "more than control" in report["verdict"]
    assert not report["sample_ratio"]["mismatch"]


def test_report_of_too_few_users_asks_for_more() -> None:
    rng = np.random.default_rng(4)
    report = experiment_report(
        [_counts("control", *_users(rng, 60, 0.1)), _counts("b", *_users(rng, 60, 0.1))],
        [1, 1],
        primary="view",
    )
    assert report["verdict"].startswith("not enough data for b: about ")
    assert "more users per variant to detect a 10 % lift at 80 % power" in report["verdict"]


def test_report_flags_a_sample_ratio_mismatch() -> None:
    rng = np.random.default_rng(5)
    report = experiment_report(
        [_counts("control", *_users(rng, 3000, 0.1)), _counts("b", *_users(rng, 2000, 0.1))],
        [50, 50],
        primary="view",
    )
    assert report["sample_ratio"]["mismatch"]
    assert report["verdict"].startswith("sample ratio mismatch")
