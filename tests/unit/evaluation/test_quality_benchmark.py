"""benchmarks/quality.py's summary: the issue's keys, and ratios that are minimums over runs."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from benchmarks.quality import MODELS, logged_runs, summary


def _run(ndcg: dict[str, float], cold: dict[str, float]) -> dict[str, Any]:
    return {
        "models": {
            name: {
                "ndcg@10": ndcg[name],
                "buckets": {"0": cold[name], "1-4": 0.0, "5-19": 0.0, "20+": ndcg[name]},
            }
            for name in MODELS
        }
    }


def test_the_summary_has_exactly_the_issue_keys_and_worst_case_ratios() -> None:
    base = dict.fromkeys(MODELS, 0.1)
    first = _run(
        {**base, "cf": 0.4, "content": 0.3, "eventrec": 0.5, "hybrid": 0.6, "oracle": 0.8},
        {**base, "content": 0.2, "eventrec": 0.3, "hybrid": 0.1},
    )
    second = _run(
        {**base, "cf": 0.2, "content": 0.5, "eventrec": 0.6, "hybrid": 0.4, "oracle": 1.0},
        {**base, "content": 0.2, "eventrec": 0.1, "hybrid": 0.4},
    )
    first["random_split"] = {"eventrec": {"ndcg@10": 0.3}, "puresvd": {"ndcg@10": 0.4}}
    result = summary([first, second])
    assert list(result) == [
        "runs",
        "models",
        "best_single",
        "ratio_to_best_single",
        "cold_ratio_to_content",
        "ratio_to_oracle",
        "random_split_ratio_to_puresvd",
    ]
    assert result["best_single"] == "content"  # mean 0.4 against cf's 0.3
    assert result["ratio_to_best_single"] == pytest.approx(min(0.5 / 0.4, 0.6 / 0.5))
    assert result["cold_ratio_to_content"] == pytest.approx(0.1 / 0.2)
    assert result["ratio_to_oracle"] == pytest.approx(0.6 / 1.0)
    assert result["random_split_ratio_to_puresvd"] == pytest.approx(0.75)
    assert result["models"]["hybrid"]["ratios"]["ratio_to_best_single"] == pytest.approx(0.8)
    assert result["models"]["eventrec"]["ndcg@10"] == pytest.approx(0.55)
    assert set(result["models"]["cf"]["buckets"]) == {"0", "1-4", "5-19", "20+"}


def test_runs_logged_by_invocations_apart_come_back_random_split_first(tmp_path: Path) -> None:
    first = _run(dict.fromkeys(MODELS, 0.2), dict.fromkeys(MODELS, 0.1))
    second = _run(dict.fromkeys(MODELS, 0.3), dict.fromkeys(MODELS, 0.1))
    second["random_split"] = {"eventrec": {"ndcg@10": 0.3}, "puresvd": {"ndcg@10": 0.2}}
    a, b = tmp_path / "a.log", tmp_path / "b.log"
    a.write_text(
        f"2026-11-30 17:00:00,000 cut 1 of 3\n2026-11-30 17:05:00,000 run {json.dumps(first)}\n"
    )
    b.write_text(f"2026-11-30 17:06:00,000 run {json.dumps(second)}\n")
    runs = logged_runs([str(a), str(b)])
    assert runs == [second, first]
    assert summary(runs)["random_split_ratio_to_puresvd"] == pytest.approx(1.5)
