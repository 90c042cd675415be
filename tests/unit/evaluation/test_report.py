"""The table printed by `eventrec evaluate`."""

from __future__ import annotations

from typing import Any

from eventrec.evaluation.report import format_table


def metrics(precision: float, fit_seconds: float) -> dict[str, Any]:
    return {
        "precision@5": precision,
        "recall@5": 0.25,
        "f1@5": 0.2,
        "ndcg@5": 0.3,
        "coverage": 0.05,
        "fit_seconds": fit_seconds,
        "params": {},
    }


RESULT: dict[str, Any] = {
    "protocol": {
        "split": "temporal",
        "seed": 1,
        "test_fraction": 0.3,
        "k": 5,
        "relevant_min_rating": 4.0,
    },
    "data": {"users": 10, "events": 20, "train": 70, "test": 30, "eval_users": 8},
    "models": {
        "popularity": metrics(0.1, 0.001),
        "guide_svd_cosine": metrics(0.12345678, 1.5),
        "eventrec": metrics(0.2, 12.25),
    },
    "rmse": {"eventrec": 0.91234, "bias_baseline": None},
}


def test_the_table_has_one_aligned_row_per_model() -> None:
    lines = format_table(RESULT).splitlines()
    header = next(line for line in lines if line.startswith("model"))
    assert header.split() == [
        "model", "precision@5", "recall@5", "f1@5", "ndcg@5", "coverage", "fit", "s",
    ]  # fmt: skip
    rows = lines[lines.index(header) + 1 : lines.index(header) + 4]
    assert [row.split()[0] for row in rows] == ["popularity", "guide_svd_cosine", "eventrec"]
    assert rows[1].split()[1] == "0.1235"
    assert rows[2].split()[-1] == "12.25"
    # Right-aligned numbers: every row ends at the header's width.
    assert {len(row) for row in rows} == {len(header)}


def test_the_table_names_the_protocol_data_and_rmse() -> None:
    table = format_table(RESULT)
    assert "temporal (test fraction 0.3, seed 1)" in table
    assert "k=5" in table
    assert "ratings >= 4" in table
    assert "8 users evaluated" in table
    assert "RMSE on test ratings: eventrec 0.9123, bias_baseline n/a" in table
