"""Statistics of A/B experiments, with users as the unit of analysis.

Every rate is a ratio of per-user sums (a user's views of shown events over the same
user's impressions, summed over users). One user's impressions are not independent, so
the variance of a rate comes from the delta method over users (a ratio of two sample
means), never from a binomial over impressions. Assumptions, stated in every report:

- users are independent and were assigned at random (checked by the sample ratio test);
- the number of users is large enough for the normal approximation (about 100 per
  variant and a few dozen users with an outcome);
- the two variants are independent samples, so their variances add.

A bootstrap over users (:func:`bootstrap_relative_difference`) gives the same interval
without the approximation; the tests check that they agree.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt
from scipy import stats

CONFIDENCE = 0.95
POWER = 0.80
MINIMUM_LIFT = 0.10
# A sample ratio this unlikely under the configured split means the assignment is broken.
SRM_P_VALUE = 0.001

Counts = npt.NDArray[np.float64]


@dataclass(frozen=True)
class RatioEstimate:
    """A rate (sum of numerators over sum of denominators) and its variance over users."""

    value: float
    variance: float
    users: int
    numerator: float
    denominator: float

    @property
    def relative_variance_per_user(self) -> float:
        """``users * variance / value**2``: what the power calculation scales."""
        if self.value == 0:
            return math.inf
        return self.users * self.variance / self.value**2


def ratio_estimate(
    numerators: Sequence[float] | Counts, denominators: Sequence[float] | Counts
) -> RatioEstimate:
    """Σx / Σy over users, with the delta-method variance of a ratio of means.

    ``Var(x̄/ȳ) ≈ (s_x² − 2R s_xy + R² s_y²) / (n ȳ²)``, sample (co)variances with n − 1.
    """
    x = np.asarray(numerators, dtype=np.float64)
    y = np.asarray(denominators, dtype=np.float64)
    if x.shape != y.shape or x.ndim != 1:
        raise ValueError("numerators and denominators need one value per user each")
    n = len(x)
    total_x, total_y = float(x.sum()), float(y.sum())
    if n == 0 or total_y <= 0:
        return RatioEstimate(math.nan, math.nan, n, total_x, total_y)
    ratio = total_x / total_y
    if n < 2:
        return RatioEstimate(ratio, math.nan, n, total_x, total_y)
    mean_y = total_y / n
    var_x = float(x.var(ddof=1))
    var_y = float(y.var(ddof=1))
    cov_xy = float(((x - x.mean()) * (y - mean_y)).sum() / (n - 1))
    variance = (var_x - 2 * ratio * cov_xy + ratio**2 * var_y) / (n * mean_y**2)
    return RatioEstimate(ratio, max(variance, 0.0), n, total_x, total_y)


@dataclass(frozen=True)
class RelativeDifference:
    """treatment / control − 1, with a two-sided interval at ``confidence``."""

    relative: float
    low: float
    high: float
    confidence: float

    @property
    def excludes_zero(self) -> bool:
        return self.low > 0 or self.high < 0


def z_value(confidence: float) -> float:
    return float(stats.norm.ppf(0.5 + confidence / 2))


def relative_difference(
    control: RatioEstimate, treatment: RatioEstimate, confidence: float = CONFIDENCE
) -> RelativeDifference | None:
    """The relative difference of two independent rates, delta method.

    ``Var(T/C − 1) ≈ (T/C)² (Var T / T² + Var C / C²)``. None when the control rate is
    zero or a variance is unknown (too few users).
    """
    c, t = control.value, treatment.value
    unknown = math.isnan(t) or math.isnan(control.variance) or math.isnan(treatment.variance)
    if not c > 0 or unknown:
        return None
    relative = t / c - 1
    # The same as (T/C)² (Var T/T² + Var C/C²), and defined at T = 0.
    variance = (treatment.variance + (t / c) ** 2 * control.variance) / c**2
    half = z_value(confidence) * math.sqrt(variance)
    return RelativeDifference(relative, relative - half, relative + half, confidence)


def bootstrap_relative_difference(
    control: tuple[Counts, Counts],
    treatment: tuple[Counts, Counts],
    confidence: float = CONFIDENCE,
    resamples: int = 2000,
    seed: int = 0,
) -> RelativeDifference:
    """The same interval by a bootstrap over users (percentile interval).

    Each resample draws users with replacement (Poisson(1) weights per user, the usual
    large-sample form), keeping each user's numerator and denominator together.
    """
    rng = np.random.default_rng(seed)

    def resampled_ratios(pair: tuple[Counts, Counts]) -> npt.NDArray[np.float64]:
        x, y = (np.asarray(v, dtype=np.float64) for v in pair)
        weights = rng.poisson(1.0, size=(resamples, len(x))).astype(np.float64)
        denominators = weights @ y
        with np.errstate(divide="ignore", invalid="ignore"):
            result: npt.NDArray[np.float64] = (weights @ x) / denominators
        return result

    ratios = resampled_ratios(treatment) / resampled_ratios(control) - 1
    ratios = ratios[np.isfinite(ratios)]
    tail = (1 - confidence) / 2
    low, high = np.quantile(ratios, [tail, 1 - tail])
    point = ratio_estimate(*treatment).value / ratio_estimate(*control).value - 1
    return RelativeDifference(float(point), float(low), float(high), confidence)


@dataclass(frozen=True)
class SampleRatio:
    """Chi-square goodness of fit of users per variant against the configured split."""

    observed: tuple[int, ...]
    expected_share: tuple[float, ...]
    p_value: float

    @property
    def mismatch(self) -> bool:
        return self.p_value < SRM_P_VALUE


def sample_ratio_check(users: Sequence[int], split: Sequence[float]) -> SampleRatio:
    total_weight = float(sum(split))
    shares = tuple(w / total_weight for w in split)
    n = sum(users)
    if n == 0 or len(users) < 2:
        return SampleRatio(tuple(users), shares, 1.0)
    expected = [n * s for s in shares]
    chi2 = sum((o - e) ** 2 / e for o, e in zip(users, expected, strict=True) if e > 0)
    p_value = float(stats.chi2.sf(chi2, df=len(users) - 1))
    return SampleRatio(tuple(users), shares, p_value)


def users_needed(
    relative_variance_per_user: float,
    lift: float = MINIMUM_LIFT,
    confidence: float = CONFIDENCE,
    power: float = POWER,
) -> int:
    """Users per variant to detect a relative ``lift`` with ``power`` (two-sided test).

    ``n = 2 (z_{1−α/2} + z_power)² · CV² / lift²``, where CV² is a user's relative
    variance of the rate (``users · Var(R) / R²``), assumed equal in both variants.
    """
    if not math.isfinite(relative_variance_per_user):
        return -1
    z = z_value(confidence) + float(stats.norm.ppf(power))
    return math.ceil(2 * z**2 * relative_variance_per_user / lift**2)


# -- the report ---------------------------------------------------------------------------

OUTCOMES = ("view", "save", "booking")
METRIC_NAMES = {"view": "click_through", "save": "save_rate", "booking": "booking_rate"}
VERBS = {"view": "views", "save": "saves", "booking": "books"}


@dataclass(frozen=True)
class VariantCounts:
    """One variant's per-user counts: impressions, and each outcome, aligned by user."""

    name: str
    impressions: Counts
    outcomes: Mapping[str, Counts]

    @property
    def users(self) -> int:
        return len(self.impressions)


def _round(value: float, digits: int = 6) -> float | None:
    return None if value is None or not math.isfinite(value) else round(value, digits)


def experiment_report(
    variants: Sequence[VariantCounts],
    split: Sequence[float],
    primary: str = "booking",
    lift: float = MINIMUM_LIFT,
) -> dict[str, Any]:
    """Per variant: users, impressions, rates with intervals against the first variant
    (the control), the sample ratio check, and a plain verdict on ``primary``."""
    if primary not in OUTCOMES:
        raise ValueError(f"primary metric must be one of {', '.join(OUTCOMES)}")
    control = variants[0]
    srm = sample_ratio_check([v.users for v in variants], split)
    rows: list[dict[str, Any]] = []
    verdicts: list[str] = []
    for variant in variants:
        row: dict[str, Any] = {
            "variant": variant.name,
            "users": variant.users,
            "impressions": int(variant.impressions.sum()),
            "metrics": {},
        }
        for outcome in OUTCOMES:
            estimate = ratio_estimate(variant.outcomes[outcome], variant.impressions)
            metric: dict[str, Any] = {
                "rate": _round(estimate.value),
                "count": int(estimate.numerator),
                "users": estimate.users,
                "users_with_outcome": int((variant.outcomes[outcome] > 0).sum()),
            }
            if variant is not control:
                base = ratio_estimate(control.outcomes[outcome], control.impressions)
                difference = relative_difference(base, estimate)
                metric["relative_to_control"] = (
                    None
                    if difference is None
                    else {
                        "relative": _round(difference.relative),
                        "low": _round(difference.low),
                        "high": _round(difference.high),
                        "confidence": difference.confidence,
                        "excludes_zero": difference.excludes_zero,
                    }
                )
                if outcome == primary:
                    verdicts.append(
                        _verdict(variant, control, base, estimate, difference, outcome, lift)
                    )
            row["metrics"][METRIC_NAMES[outcome]] = metric
        rows.append(row)
    return {
        "control": control.name,
        "primary_metric": METRIC_NAMES[primary],
        "variants": rows,
        "sample_ratio": {
            "users": list(srm.observed),
            "expected_share": [round(s, 6) for s in srm.expected_share],
            "p_value": _round(srm.p_value, 8),
            "mismatch": srm.mismatch,
        },
        "verdict": (
            "sample ratio mismatch: users per variant "
            f"{list(srm.observed)} are unlikely under the split {list(split)} "
            f"(p = {srm.p_value:.2g}); the assignment or the logging is broken, "
            "do not trust the differences"
        )
        if srm.mismatch
        else "; ".join(verdicts),
        "assumptions": (
            "users are the unit: per-user sums, delta-method variance of a ratio of means; "
            f"{int(CONFIDENCE * 100)} % two-sided intervals under the normal approximation; "
            "variants independent; required users for a "
            f"{int(lift * 100)} % relative lift at {int(POWER * 100)} % power and "
            f"alpha {1 - CONFIDENCE:.2f}, with the per-user variance observed so far"
        ),
    }


def _verdict(
    variant: VariantCounts,
    control: VariantCounts,
    base: RatioEstimate,
    estimate: RatioEstimate,
    difference: RelativeDifference | None,
    outcome: str,
    lift: float,
) -> str:
    name, verb = variant.name, VERBS[outcome]
    if difference is not None and difference.excludes_zero:
        direction = "more" if difference.relative > 0 else "less"
        return (
            f"{name} {verb} {abs(difference.relative) * 100:.0f} % {direction} than "
            f"{control.name} per impression, interval {difference.low * 100:.0f} % to "
            f"{difference.high * 100:.0f} % ({estimate.users} and {base.users} users)"
        )
    cv2 = max(base.relative_variance_per_user, estimate.relative_variance_per_user)
    needed = users_needed(cv2, lift)
    have = min(variant.users, control.users)
    if needed < 0:
        return (
            f"not enough data for {name}: no {outcome} counted yet in one of the variants "
            f"({estimate.users} and {base.users} users)"
        )
    if needed > have:
        return (
            f"not enough data for {name}: about {needed - have} more users per variant to "
            f"detect a {lift * 100:.0f} % lift at {POWER * 100:.0f} % power"
        )
    interval = (
        ""
        if difference is None
        else f", interval {difference.low * 100:.0f} % to {difference.high * 100:.0f} %"
    )
    return (
        f"no difference detected between {name} and {control.name}{interval}: "
        f"{have} users per variant would have shown a {lift * 100:.0f} % lift "
        f"at {POWER * 100:.0f} % power"
    )
