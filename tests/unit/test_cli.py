"""The `eventrec` command line: its commands, and readable failures."""

from __future__ import annotations

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
