"""`eventrec synth` as the lead wires it: a sub-parser with its own handler."""

from __future__ import annotations

import argparse
import csv
from pathlib import Path

import pytest

from eventrec.config import Settings
from eventrec.schemas import decode_interaction
from eventrec.synth.command import register
from eventrec.synth.config import SynthConfig
from eventrec.synth.truth import PlantedTastes


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
    assert names == [
        "events.jsonl",
        "interactions.csv",
        "interactions.jsonl",
        "truth.npz",
        "users.jsonl",
    ]
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


def test_help_documents_every_knob_with_its_default(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        _parser().parse_args(["synth", "--help"])
    text = " ".join(capsys.readouterr().out.split())
    defaults = SynthConfig()
    for option, default in (
        ("--users", "30000"),
        ("--events", "3000"),
        ("--interactions", "1000000"),
        ("--seed", "42"),
        ("--latent-share", str(defaults.latent_share)),
        ("--history-days", str(defaults.history_days)),
        ("--horizon-days", str(defaults.horizon_days)),
        ("--past-event-share", str(defaults.past_event_share)),
        ("--new-event-share", str(defaults.new_event_share)),
        ("--lead-days", str(defaults.lead_days)),
        ("--booking-days", str(defaults.booking_days)),
        ("--search-share", str(defaults.search_share)),
        ("--dismiss-share", str(defaults.dismiss_share)),
    ):
        assert option in text
        after = text[text.index(option + " ", text.index("options:")) :]
        assert f"(default: {default})" in after[: after.index("--", 2)], option


def test_knobs_reach_the_generator(tmp_path: Path) -> None:
    args = _parser().parse_args(
        [
            "synth",
            "--users=100",
            "--events=40",
            "--interactions=1000",
            "--latent-share=0.8",
            "--lead-days=20",
            "--booking-days=3",
            f"--out={tmp_path}",
        ]
    )
    assert args.handler(args, Settings()) == 0
    truth = PlantedTastes.load(tmp_path / "truth.npz")
    assert truth.latent_share == 0.8
    assert truth.booking_days == 3.0
    assert len(truth.user_ids) == 100
    assert len(truth.event_ids) == 40


def test_refuses_a_latent_share_outside_0_1() -> None:
    with pytest.raises(SystemExit):
        _parser().parse_args(["synth", "--latent-share=1.5"])
