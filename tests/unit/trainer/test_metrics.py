"""The trainer's metrics: validation figures of a fit, the gate's decisions, the version."""

from __future__ import annotations

from prometheus_client import REGISTRY

from eventrec.trainer import metrics


def sample(name: str, **labels: str) -> float | None:
    return REGISTRY.get_sample_value(name, labels)


def test_a_fits_figures_and_phases_are_exported() -> None:
    before = sample("eventrec_trainer_phase_duration_seconds_count", phase="content_map") or 0
    metrics.fit_finished(
        {
            "metrics": {
                "validation_ndcg@10": 0.31,
                "popularity_validation_ndcg@10": 0.17,
                "trending_validation_ndcg@10": 0.22,
                "precision@10": 0.12,
                "popularity_precision@10": None,
            },
            "data": {"validation_users": 215},
            "timings": {"search_and_refit": 1.5, "content_map": 0.2, "fit_total": 1.9},
        }
    )
    score = "eventrec_trainer_validation_score"
    assert sample(score, metric="ndcg@10", model="candidate") == 0.31
    assert sample(score, metric="ndcg@10", model="popularity") == 0.17
    assert sample(score, metric="ndcg@10", model="trending") == 0.22
    assert sample(score, metric="precision@10", model="candidate") == 0.12
    assert sample("eventrec_trainer_validation_users") == 215
    phases = "eventrec_trainer_phase_duration_seconds_count"
    assert sample(phases, phase="content_map") == before + 1
    assert sample(phases, phase="fit_total") is None  # the sum of the others


def test_gate_decisions_are_counted_and_only_the_last_published_version_is_1() -> None:
    gated = sample("eventrec_trainer_cycles_total", outcome="gated") or 0
    metrics.cycle_finished("published", 3.0, "v000007")
    metrics.cycle_finished("gated", 2.0, None)
    metrics.cycle_finished("published", 3.0, "v000008")
    assert sample("eventrec_trainer_cycles_total", outcome="gated") == gated + 1
    assert sample("eventrec_trainer_published_version_info", version="v000008") == 1
    assert sample("eventrec_trainer_published_version_info", version="v000007") is None
