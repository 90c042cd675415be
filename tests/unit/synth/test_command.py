"""`eventrec synth` as the lead wires it: a sub-parser with its own handler."""

from __future__ import annotations

import argparse
import csv
from pathlib import Path

import pytest

from eventrec.config import Settings
from eventrec.schemas import decode_interaction
from eventrec.synth.command import register


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="eventrec")
    register(parser.add_subparsers(dest="command", required=True))
    return parser


def test_writes_jsonl_and_csv(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    args = _parser().parse_args(
        [
            "synth",
            "--users=200",
            "--events=60",
            "--interactions=3000",
            "--seed=5",
            "--now=2026-06-01T00:00:00+05:30",
            f"--out={tmp_path}",
        ]
    )
    assert args.json_logs is False
    assert args.handler(args, Settings()) == 0
    names = sorted(path.name for path in tmp_path.iterdir())
    assert names == ["events.jsonl", "interactions.csv", "interactions.jsonl", "users.jsonl"]
    with (tmp_path / "interactions.csv").open(newline="") as source:
        assert len(list(csv.DictReader(source))) == 3000
    first = (tmp_path / "interactions.jsonl").read_bytes().splitlines()[0]
    assert decode_interaction(None, first).schema_version == 1
    assert "3,000 interactions" in capsys.readouterr().out


def test_refuses_to_do_nothing(capsys: pytest.CaptureFixture[str]) -> None:
    args = _parser().parse_args(["synth", "--users=10"])
    assert args.handler(args, Settings()) == 2
    assert "--out" in capsys.readouterr().err


@pytest.mark.parametrize("bad", [["--now=2026-06-01T00:00:00"], ["--rate=0"]])
def test_rejects_a_naive_now_and_a_zero_rate(bad: list[str]) -> None:
    with pytest.raises(SystemExit):
        _parser().parse_args(["synth", *bad])
