"""The README starts with the two commands and documents every setting."""

from __future__ import annotations

from pathlib import Path

from eventrec.config import describe_settings

README = (Path(__file__).resolve().parents[2] / "README.md").read_text()


def test_readme_starts_with_the_two_commands() -> None:
    first_block = README.split("```")[1]
    commands = [line.split("#")[0].strip() for line in first_block.splitlines()[1:] if line]
    assert commands == ["make demo", "make test"]


def test_every_setting_is_documented_with_its_default() -> None:
    for variable, default, _ in describe_settings():
        shown = f"`{default}`" if default else "(unset)"
        assert f"| `{variable}` | {shown} |" in README, variable
