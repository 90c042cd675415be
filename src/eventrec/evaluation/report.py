"""The evaluation result as a table for people (``--json`` writes it for machines)."""

from __future__ import annotations

from typing import Any

__all__ = ["format_table", "format_time_table"]


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


def _aligned(header: list[str], rows: list[list[str]]) -> list[str]:
    widths = [max(len(row[i]) for row in [header, *rows]) for i in range(len(header))]
    lines = []
    for row in [header, *rows]:
        cells = [row[0].ljust(widths[0])] + [
            cell.rjust(width) for cell, width in zip(row[1:], widths[1:], strict=True)
        ]
        lines.append("  ".join(cells).rstrip())
    return lines


def format_time_table(result: dict[str, Any]) -> str:
    """A readable summary of an ``evaluate_time`` result: means over cuts, buckets, cuts."""
    protocol, data, models = result["protocol"], result["data"], result["models"]
    k = protocol["k"]
    lines = [
        f"split: time, cuts {', '.join(protocol['cuts'])}; horizon {protocol['horizon_days']:g} "
        f"days; k={k}; relevant: bookings, saves, ratings >= "
        f"{protocol['relevant_min_rating']:g} on candidates on sale at the cut",
        f"data: {data['users']} users, {data['events']} events; {data['eval_users']} "
        f"user-cuts evaluated",
    ]
    for cut in result["cuts"]:
        lines.append(
            f"  cut {cut['cut']}: {cut['train']} training records, {cut['candidates']} "
            f"candidates ({cut['cold_candidates']} never interacted with), "
            f"{cut['eval_users']} users, {cut['new_users']} new users, "
            f"{cut['relevant']} relevant pairs"
        )
    lines.append("")
    lines.append("mean over cuts:")
    columns = [f"precision@{k}", f"recall@{k}", f"f1@{k}", f"ndcg@{k}", "coverage"]
    lines += _aligned(
        ["model", *columns, "fit s"],
        [
            [name, *(_number(m[c]) for c in columns), _number(m["fit_seconds"], 2)]
            for name, m in models.items()
        ],
    )
    lines.append("")
    buckets = list(next(iter(models.values()))["buckets"]) if models else []
    counts = next(iter(models.values()))["buckets"] if models else {}
    lines.append(
        f"NDCG@{k} / recall@{k} by the relevant event's interactions before the cut "
        "(relevant pairs: "
        + ", ".join(f"{b}: {counts[b]['relevant']}" for b in buckets)
        + "), and new users:"
    )
    lines += _aligned(
        ["model", *buckets, "new_users"],
        [
            [
                name,
                *(
                    f"{_number(m['buckets'][b][f'ndcg@{k}'])} / "
                    f"{_number(m['buckets'][b][f'recall@{k}'])}"
                    for b in buckets
                ),
                f"{_number(m['new_users'][f'ndcg@{k}'])} / "
                f"{_number(m['new_users'][f'recall@{k}'])}",
            ]
            for name, m in models.items()
        ],
    )
    lines.append("")
    lines.append(f"NDCG@{k} per cut:")
    lines += _aligned(
        ["model", *(c["cut"][:10] for c in result["cuts"])],
        [
            [name, *(_number(c["models"][name][f"ndcg@{k}"]) for c in result["cuts"])]
            for name in models
        ],
    )
    rmse = result.get("rmse", {})
    lines.append("")
    lines.append(
        "RMSE on ratings after the last cut: "
        + ", ".join(f"{name} {_number(value)}" for name, value in rmse.items())
    )
    return "\n".join(lines)
