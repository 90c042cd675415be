"""An experiment's report: per-user counts from Redis through ``model.abtest``."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import numpy as np

from eventrec.model.abtest import OUTCOMES, VariantCounts, experiment_report
from eventrec.schemas.impressions import Experiment
from eventrec.store.attribution import AttributionStore

COUNTERS = ("impressions", *OUTCOMES)


def variant_counts(
    attribution: AttributionStore, topic: str, experiment: Experiment
) -> list[VariantCounts]:
    """Each variant's users (those with an impression) and their counts, aligned."""
    per_variant = attribution.user_counts(
        topic, experiment.code, len(experiment.variants), COUNTERS
    )
    variants = []
    for variant, counts in zip(experiment.variants, per_variant, strict=True):
        users = sorted(counts["impressions"])
        impressions = np.array([counts["impressions"][u] for u in users], dtype=np.float64)
        outcomes = {
            outcome: np.array([counts[outcome].get(u, 0) for u in users], dtype=np.float64)
            for outcome in OUTCOMES
        }
        variants.append(VariantCounts(variant.name, impressions, outcomes))
    return variants


def build_report(
    attribution: AttributionStore, topic: str, experiment: Experiment
) -> dict[str, Any]:
    """The whole report as JSON-ready values: definition, statistics, counts per day."""
    statistics = experiment_report(
        variant_counts(attribution, topic, experiment),
        experiment.weights,
        primary=experiment.primary_metric,
    )
    names = {str(i): v.name for i, v in enumerate(experiment.variants)}
    days: dict[str, dict[str, dict[str, int]]] = {}
    for day, fields in attribution.day_counts(topic, experiment.code).items():
        date = datetime.fromtimestamp(day * 86_400, UTC).date().isoformat()
        by_variant: dict[str, dict[str, int]] = {}
        for field, value in fields.items():
            index, _, counter = field.partition(":")
            by_variant.setdefault(names.get(index, index), {})[counter] = value
        days[date] = by_variant
    return {
        "experiment": experiment.model_dump(mode="json"),
        **statistics,
        "days": days,
    }


def outside_experiments(attribution: AttributionStore, topic: str) -> dict[str, Any]:
    """Day (ISO date) -> counter -> count, for responses outside every experiment."""
    days: dict[str, dict[str, int]] = {}
    for day, fields in attribution.day_counts(topic, 0).items():
        date = datetime.fromtimestamp(day * 86_400, UTC).date().isoformat()
        days[date] = {field.partition(":")[2]: value for field, value in sorted(fields.items())}
    return {"days": days}


def format_report(report: dict[str, Any]) -> str:
    """The report as a few lines of text for the terminal."""
    experiment = report["experiment"]
    lines = [
        f"experiment {experiment['name']} ({experiment['status']}, since "
        f"{experiment['created_at']}), primary metric {report['primary_metric']}",
        f"{'variant':<12} {'users':>8} {'impr.':>9}  "
        + "  ".join(f"{name:>28}" for name in ("click_through", "save_rate", "booking_rate")),
    ]
    for row in report["variants"]:
        cells = []
        for name in ("click_through", "save_rate", "booking_rate"):
            metric = row["metrics"][name]
            rate = "-" if metric["rate"] is None else f"{metric['rate']:.4f}"
            relative = metric.get("relative_to_control")
            if relative:
                rate += (
                    f" {relative['relative'] * 100:+.1f}% "
                    f"[{relative['low'] * 100:+.1f},{relative['high'] * 100:+.1f}]"
                )
            cells.append(f"{rate:>28}")
        lines.append(
            f"{row['variant']:<12} {row['users']:>8} {row['impressions']:>9}  " + "  ".join(cells)
        )
    sample = report["sample_ratio"]
    lines.append(
        f"sample ratio: users {sample['users']} for shares {sample['expected_share']}, "
        f"p = {sample['p_value']}" + (" MISMATCH" if sample["mismatch"] else "")
    )
    lines.append(f"verdict: {report['verdict'] or 'no variant besides the control'}")
    lines.append(f"assumptions: {report['assumptions']}")
    return "\n".join(lines)
