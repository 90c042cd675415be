"""The trainer's Prometheus metrics: cycle phases, validation figures, gate decisions."""

from __future__ import annotations

import math
import time
from collections.abc import Mapping
from typing import Any

from prometheus_client import Counter, Gauge, Histogram

CYCLE_BUCKETS = (0.1, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 600, 1200, 3600)

PHASE_SECONDS = Histogram(
    "eventrec_trainer_phase_duration_seconds",
    "Time of each phase of a training cycle (snapshot, the fit's steps, publish, total).",
    ["phase"],
    buckets=CYCLE_BUCKETS,
)
CYCLES = Counter(
    "eventrec_trainer_cycles_total",
    "Training cycles by outcome: published, gated (refused by the gate), too_little_data, "
    "no_model, failed, lock_busy, stopped.",
    ["outcome"],
)
VALIDATION = Gauge(
    "eventrec_trainer_validation_score",
    "The last fit's validation figures (metric: ndcg@10, precision@10, recall@10) for the "
    "candidate model and the baselines the fit reports (popularity, trending).",
    ["metric", "model"],
)
VALIDATION_USERS = Gauge(
    "eventrec_trainer_validation_users", "Validation users of the last fit's gate."
)
PUBLISHED = Gauge(
    "eventrec_trainer_published_version_info",
    "1 for the model version this trainer published last (label version).",
    ["version"],
)
LAST_PUBLISH = Gauge(
    "eventrec_trainer_last_publish_timestamp_seconds",
    "Unix time this trainer last published a model version.",
)

_FIGURES = ("ndcg@10", "precision@10", "recall@10")


def fit_finished(metadata: Mapping[str, Any]) -> None:
    """A fit ended (published or not): its validation figures and the fit's phase times."""
    figures = metadata.get("metrics", {})
    for figure in _FIGURES:
        key = "validation_ndcg@10" if figure == "ndcg@10" else figure
        baselines = (("popularity", f"popularity_{key}"), ("trending", f"trending_{key}"))
        for model, name in (("candidate", key), *baselines):
            value = figures.get(name)
            if value is not None and math.isfinite(value):
                VALIDATION.labels(metric=figure, model=model).set(value)
    validation_users = metadata.get("data", {}).get("validation_users")
    if validation_users is not None:
        VALIDATION_USERS.set(validation_users)
    for phase, seconds in metadata.get("timings", {}).items():
        if isinstance(seconds, int | float) and phase != "fit_total":
            PHASE_SECONDS.labels(phase=phase).observe(seconds)


def cycle_finished(outcome: str, seconds: float, version: str | None) -> None:
    """A cycle ended: the gate's (or the lock's) decision, its time, what was published."""
    CYCLES.labels(outcome=outcome).inc()
    if outcome in ("lock_busy", "stopped"):
        return
    PHASE_SECONDS.labels(phase="total").observe(seconds)
    if outcome == "published" and version is not None:
        PUBLISHED.clear()
        PUBLISHED.labels(version=version).set(1)
        LAST_PUBLISH.set(time.time())
