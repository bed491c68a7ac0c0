"""Load settings or stop with one readable line per problem (exit code 2)."""

from __future__ import annotations

import sys
from collections.abc import Mapping

from pydantic import ValidationError

from config.settings import Settings, production_problems

EXIT_BAD_SETTINGS = 2


class SettingsError(Exception):
    def __init__(self, problems: list[str]):
        super().__init__(problems)
        self.problems = problems


def _describe(error: Mapping) -> str:
    name = "FARM_" + "_".join(str(part) for part in error["loc"][:1]).upper()
    given = error.get("input")
    shown = "" if isinstance(given, dict) or given is None else f" (got {str(given)[:40]!r})"
    if "SECRET" in name or "KEY" in name or "MONGO_URL" in name:
        shown = ""  # never echo what may be a secret
    return f"{name}: {error['msg']}{shown}"


def load_settings(**overrides: object) -> Settings:
    """Settings from the environment; raises SettingsError listing every problem."""
    try:
        settings = Settings(**overrides)  # type: ignore[arg-type]
    except ValidationError as exc:
        raise SettingsError([_describe(err) for err in exc.errors()]) from None
    problems = production_problems(settings)
    if problems:
        raise SettingsError(problems)
    return settings


def load_settings_or_exit(**overrides: object) -> Settings:
    try:
        return load_settings(**overrides)
    except SettingsError as exc:
        print("farm: invalid settings:", file=sys.stderr)
        for line in exc.problems:
            print(f"  {line}", file=sys.stderr)
        raise SystemExit(EXIT_BAD_SETTINGS) from None
