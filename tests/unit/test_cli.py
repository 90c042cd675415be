"""The `eventrec` command line: its commands, and readable failures."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from eventrec.cli import build_parser, main


def test_lists_every_setting(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["settings"]) == 0
    out = capsys.readouterr().out
    assert "EVENTREC_REDIS_URL=redis://127.0.0.1:16379/0" in out
    assert "EVENTREC_TOPIC_DLQ=interactions.dlq" in out


def test_bad_setting_exits_2_naming_the_variable(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("EVENTREC_TRAIN_INTERVAL_SECONDS", "-1")
    assert main(["settings"]) == 2
    assert "EVENTREC_TRAIN_INTERVAL_SECONDS" in capsys.readouterr().err


def test_unknown_command_is_refused() -> None:
    with pytest.raises(SystemExit) as caught:
        build_parser().parse_args(["launch-rockets"])
    assert caught.value.code == 2


def test_settings_shows_the_values_in_effect_and_hides_secrets(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("EVENTREC_LOCAL_REDIS_PORT", "16679")
    monkeypatch.setenv("EVENTREC_TOPIC_PARTITIONS", "12")
    monkeypatch.setenv("EVENTREC_ADMIN_TOKEN", "a-secret-admin-token-0123")
    assert main(["settings"]) == 0
    out = capsys.readouterr().out
    assert "EVENTREC_REDIS_URL=redis://127.0.0.1:16679/0\n" in out
    assert "EVENTREC_TOPIC_PARTITIONS=12\n" in out
    assert "EVENTREC_ADMIN_TOKEN=(set)\n" in out
    assert "a-secret-admin-token-0123" not in out
    assert main(["settings", "--defaults"]) == 0
    defaults = capsys.readouterr().out
    assert "EVENTREC_REDIS_URL=redis://127.0.0.1:16379/0\n" in defaults
    assert "EVENTREC_TOPIC_PARTITIONS=6\n" in defaults
    assert "EVENTREC_ADMIN_TOKEN=\n" in defaults


def test_settings_into_a_pipe_closed_early_ends_quietly() -> None:
    # `true` exits without reading: every write of ours meets a closed pipe, as after `head`.
    pipeline = subprocess.run(
        f"set -o pipefail; {sys.executable} -m eventrec.cli settings --markdown | true",
        shell=True,
        executable="/bin/bash",
        capture_output=True,
        text=True,
        timeout=60,
        env={k: v for k, v in os.environ.items() if not k.startswith("EVENTREC_")},
        check=False,
    )
    assert pipeline.stderr == ""
    assert pipeline.returncode == 0


def test_synth_help_describes_every_option_with_its_default(
    capsys: pytest.CaptureFixture[str],
) -> None:
    with pytest.raises(SystemExit) as caught:
        build_parser().parse_args(["synth", "--help"])
    assert caught.value.code == 0
    text = " ".join(capsys.readouterr().out.split())
    assert "Generate a synthetic event platform" in text
    for option, default in (
        ("--users USERS", "30000"),
        ("--events EVENTS", "3000"),
        ("--interactions INTERACTIONS", "1000000"),
        ("--seed SEED", "42"),
    ):
        assert f"{option} number" in text or f"{option} random" in text, option
        assert f"(default: {default})" in text
    assert (
        "--rate RATE cap publishing at this many msg/s; when unset, as fast as the broker" in text
    )
