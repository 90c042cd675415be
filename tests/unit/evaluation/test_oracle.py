"""`evaluate --split time --truth FILE`: the planted oracle as one more model."""

from __future__ import annotations

import argparse
import json
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import pytest

from eventrec.config import Settings
from eventrec.evaluation.command import register
from eventrec.evaluation.loader import EvaluationInputError
from eventrec.evaluation.time_protocol import TIME_MODELS
from eventrec.synth.config import SynthConfig
from eventrec.synth.platform import generate
from eventrec.synth.truth import PlantedTastes

NOW = datetime(2026, 11, 30, 12, tzinfo=UTC)
# The models a test keeps: the command's own loading, cuts and table, without the slow fits.
KEPT = ("popularity", "trending")


def write_platform(directory: Path, seed: int) -> Path:
    platform = generate(
        SynthConfig(n_users=1200, n_events=200, n_interactions=30_000, seed=seed, now=NOW)
    )
    platform.write_jsonl(directory)
    platform.write_csv(directory / "interactions.csv")
    platform.write_truth(directory)
    return directory


@pytest.fixture(scope="module")
def platform_files(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_platform(tmp_path_factory.mktemp("platform"), seed=5)


@pytest.fixture
def fast_models(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in [name for name in TIME_MODELS if name not in KEPT]:
        monkeypatch.delitem(TIME_MODELS, name)


def run(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="eventrec")
    register(parser.add_subparsers(dest="command", required=True))
    args = parser.parse_args(argv)
    code: int = args.handler(args, Settings())
    return code


def time_argv(directory: Path, out: Path, truth: Path | None) -> list[str]:
    argv = ["evaluate", "--split", "time", "--interactions", str(directory / "interactions.csv")]
    argv += ["--events", str(directory / "events.jsonl"), "--users", str(directory / "users.jsonl")]
    argv += ["--json", str(out)]
    return argv + (["--truth", str(truth)] if truth is not None else [])


@pytest.mark.usefixtures("fast_models")
def test_truth_adds_the_oracle_last_and_it_ranks_best_at_every_cut(
    platform_files: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "time.json"
    assert run(time_argv(platform_files, out, platform_files / "truth.npz")) == 0
    result = json.loads(out.read_text())
    assert list(result["models"]) == [*KEPT, "oracle"]
    oracle = result["models"]["oracle"]
    assert oracle["params"]["latent_share"] == 0.5
    for cut in result["cuts"]:
        ndcg = {name: row["ndcg@10"] for name, row in cut["models"].items()}
        assert ndcg["oracle"] == max(ndcg.values()), cut["cut"]
        assert ndcg["oracle"] > 1.3 * max(ndcg[name] for name in KEPT), cut["cut"]
    assert "oracle" in capsys.readouterr().out


@pytest.mark.usefixtures("fast_models")
def test_without_truth_there_is_no_oracle(platform_files: Path, tmp_path: Path) -> None:
    out = tmp_path / "time.json"
    assert run(time_argv(platform_files, out, None)) == 0
    assert list(json.loads(out.read_text())["models"]) == list(KEPT)


def test_the_help_says_the_oracle_needs_a_truth(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        run(["evaluate", "--help"])
    help_text = " ".join(capsys.readouterr().out.split())
    assert "--truth FILE" in help_text
    assert "Without it there is no oracle" in help_text


def test_another_platforms_truth_is_refused(platform_files: Path, tmp_path: Path) -> None:
    # Same sizes, so the same user and event ids: only the catalogue's dates tell them apart.
    other = write_platform(tmp_path / "other", seed=6)
    with pytest.raises(EvaluationInputError, match="another platform's"):
        run(time_argv(platform_files, tmp_path / "time.json", other / "truth.npz"))


def test_a_truth_that_misses_the_logs_users_is_refused(
    platform_files: Path, tmp_path: Path
) -> None:
    tastes = PlantedTastes.load(platform_files / "truth.npz")
    renamed = replace(tastes, user_ids=np.array([f"x{u}" for u in tastes.user_ids.tolist()]))
    path = renamed.save(tmp_path / "truth.npz")
    with pytest.raises(EvaluationInputError, match="users are not in this truth"):
        run(time_argv(platform_files, tmp_path / "time.json", path))


@pytest.mark.parametrize("content", [b"not an npz", None])
def test_an_unreadable_truth_is_an_input_error(
    platform_files: Path, tmp_path: Path, content: bytes | None
) -> None:
    path = tmp_path / "truth.npz"
    if content is not None:
        path.write_bytes(content)
    with pytest.raises(EvaluationInputError, match=r"truth\.npz"):
        run(time_argv(platform_files, tmp_path / "time.json", path))


def test_truth_goes_with_the_time_split(platform_files: Path) -> None:
    argv = ["evaluate", "--interactions", str(platform_files / "interactions.csv")]
    argv += ["--truth", str(platform_files / "truth.npz")]
    with pytest.raises(EvaluationInputError, match="--truth go with --split time"):
        run(argv)
