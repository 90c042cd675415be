"""`eventrec evaluate` end to end on generated MovieLens-like files."""

from __future__ import annotations

import argparse
import json
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from eventrec.config import Settings
from eventrec.evaluation.command import register
from eventrec.evaluation.loader import EvaluationInputError

METRIC_KEYS = {"precision@10", "recall@10", "f1@10", "ndcg@10", "coverage", "fit_seconds", "params"}


def run(argv: list[str]) -> int:
    """Parse ``argv`` as the ``eventrec`` parser would, then run the handler."""
    parser = argparse.ArgumentParser(prog="eventrec")
    register(parser.add_subparsers(dest="command", required=True))
    args = parser.parse_args(argv)
    assert args.json_logs is False
    code: int = args.handler(args, Settings())
    return code


def test_evaluate_prints_the_table_and_writes_exactly_the_json_keys(
    movielens_like: Callable[..., Path],
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    ratings = movielens_like(n_ratings=20_000, n_users=300, n_movies=600)
    out = tmp_path / "result.json"
    started = time.perf_counter()
    code = run(["evaluate", "--interactions", str(ratings), "--json", str(out)])
    assert time.perf_counter() - started < 20.0
    assert code == 0
    result = json.loads(out.read_text())
    assert set(result) == {"protocol", "data", "models", "rmse"}
    protocol = result["protocol"]
    assert {"split", "seed", "test_fraction", "k", "relevant_min_rating"} <= set(protocol)
    assert (protocol["split"], protocol["seed"], protocol["test_fraction"]) == ("random", 42, 0.2)
    assert (protocol["k"], protocol["relevant_min_rating"]) == (10, 4.0)
    assert set(result["data"]) == {"users", "events", "train", "test", "eval_users"}
    assert result["data"]["train"] + result["data"]["test"] == 20_000
    assert list(result["models"]) == ["popularity", "guide_svd_cosine", "eventrec"]
    for name, metrics in result["models"].items():
        assert set(metrics) == METRIC_KEYS, name
        assert isinstance(metrics["params"], dict)
        assert 0.0 <= metrics["precision@10"] <= 1.0
    # A random split is mirrored by a random validation inside the training data.
    assert result["models"]["eventrec"]["params"]["validation"] == "random pairs"
    assert set(result["rmse"]) == {"eventrec", "bias_baseline"}
    assert all(isinstance(value, float) for value in result["rmse"].values())
    table = capsys.readouterr().out
    for name in ("popularity", "guide_svd_cosine", "eventrec", "precision@10", "RMSE"):
        assert name in table


def test_a_given_split_and_another_k(
    movielens_like: Callable[..., Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    ratings = movielens_like(n_ratings=6_000, n_users=150, n_movies=300)
    lines = ratings.read_text().splitlines()
    # Each (user, movie) pair appears once in the file, so any cut keeps pairs whole.
    train = tmp_path / "train.csv"
    test = tmp_path / "test.csv"
    train.write_text("\n".join(lines[:4_001]) + "\n")
    test.write_text("\n".join([lines[0], *lines[4_001:]]) + "\n")
    out = tmp_path / "result.json"
    code = run(
        ["evaluate", "--train", str(train), "--test", str(test), "--k", "5", "--json", str(out)]
    )
    assert code == 0
    result = json.loads(out.read_text())
    assert result["protocol"]["split"] == "given"
    assert result["protocol"]["test_fraction"] is None
    assert (result["data"]["train"], result["data"]["test"]) == (4_000, 2_000)
    assert "precision@5" in result["models"]["eventrec"]
    assert "precision@5" in capsys.readouterr().out


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--train", "a.csv"], "--train needs --test"),
        (["--interactions", "a.csv", "--test", "b.csv"], "--test goes with --train"),
    ],
)
def test_inconsistent_inputs_are_refused(
    argv: list[str], message: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    (tmp_path / "a.csv").write_text("userId,movieId,rating,timestamp\n1,1,4,1\n")
    with pytest.raises(EvaluationInputError, match=message):
        run(["evaluate", *argv])


def test_too_many_bad_rows_stop_the_run(tmp_path: Path) -> None:
    ratings = tmp_path / "bad.csv"
    ratings.write_text("userId,movieId,rating,timestamp\n1,1,4,1\n1,2,x,2\n2,1,5,3\n")
    with pytest.raises(EvaluationInputError, match="line 3"):
        run(["evaluate", "--interactions", str(ratings)])


def test_a_100k_rating_file_evaluates_in_under_60_seconds(
    movielens_like: Callable[..., Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    ratings = movielens_like(n_ratings=100_000)
    out = tmp_path / "result.json"
    started = time.perf_counter()
    code = run(["evaluate", "--interactions", str(ratings), "--json", str(out)])
    assert time.perf_counter() - started < 60.0
    assert code == 0
    result = json.loads(out.read_text())
    assert (result["data"]["train"], result["data"]["test"]) == (80_000, 20_000)
    models = result["models"]
    # The file has planted taste groups: a personalised model must beat popularity.
    assert models["eventrec"]["ndcg@10"] > models["popularity"]["ndcg@10"]
    assert result["rmse"]["eventrec"] < result["rmse"]["bias_baseline"]
    capsys.readouterr()


def test_leave_last_reports_no_test_fraction(
    movielens_like: Callable[..., Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    ratings = movielens_like(n_ratings=8_000, n_users=200, n_movies=400)
    out = tmp_path / "result.json"
    code = run(
        ["evaluate", "--interactions", str(ratings), "--split", "leave-last", "--json", str(out)]
    )
    assert code == 0
    result = json.loads(out.read_text())
    assert result["protocol"]["split"] == "leave-last"
    assert result["protocol"]["test_fraction"] is None
    assert result["data"]["test"] == 200  # every generated user has at least 5 ratings
    assert "leave-last" in capsys.readouterr().out
