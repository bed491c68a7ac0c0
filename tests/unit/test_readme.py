"""The README is the manual: the two commands first, and every setting documented."""

from __future__ import annotations

from pathlib import Path

from config.settings import Settings

README = (Path(__file__).resolve().parents[2] / "README.md").read_text()


def test_the_two_commands_come_first():
    first_screen = "\n".join(README.splitlines()[:15])
    assert "make run" in first_screen and "make test" in first_screen


def test_every_setting_is_documented():
    missing = [f"FARM_{name.upper()}" for name in Settings.model_fields
               if f"`FARM_{name.upper()}`" not in README]
    assert missing == []
