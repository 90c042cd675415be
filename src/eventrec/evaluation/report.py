"""The evaluation result as a table for people (``--json`` writes it for machines)."""

from __future__ import annotations

from typing import Any

__all__ = ["format_table"]


def _number(value: Any, digits: int = 4) -> str:
    if value is None:
        return "n/a"
    if isinstance(value, float):
        return f"{value:.{digits}f}"
    return str(value)


def format_table(result: dict[str, Any]) -> str:
    """A readable, column-aligned summary of an :func:`evaluate_log` result."""
    protocol, data = result["protocol"], result["data"]
    k = protocol["k"]
    split = protocol["split"]
    if protocol.get("test_fraction") is not None and split in ("random", "temporal"):
        split += f" (test fraction {protocol['test_fraction']}, seed {protocol['seed']})"
    lines = [
        f"split: {split}; k={k}; relevant: test bookings, saves, "
        f"ratings >= {protocol['relevant_min_rating']:g}",
        f"data: {data['users']} users, {data['events']} events, {data['train']} train and "
        f"{data['test']} test interactions, {data['eval_users']} users evaluated",
        "",
    ]
    columns = [f"precision@{k}", f"recall@{k}", f"f1@{k}", f"ndcg@{k}", "coverage"]
    header = ["model", *columns, "fit s"]
    rows = [
        [name, *(_number(metrics[c]) for c in columns), _number(metrics["fit_seconds"], 2)]
        for name, metrics in result["models"].items()
    ]
    widths = [max(len(row[i]) for row in [header, *rows]) for i in range(len(header))]
    for row in [header, *rows]:
        cells = [row[0].ljust(widths[0])] + [
            cell.rjust(width) for cell, width in zip(row[1:], widths[1:], strict=True)
        ]
        lines.append("  ".join(cells).rstrip())
    rmse = result.get("rmse", {})
    lines.append("")
    lines.append(
        "RMSE on test ratings: "
        + ", ".join(f"{name} {_number(value)}" for name, value in rmse.items())
    )
    return "\n".join(lines)
