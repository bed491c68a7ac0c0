"""The job type registry: built-ins and plugins through entry points; a broken or
clashing plugin is left out with a log line, never taking the farm down."""

from __future__ import annotations

import logging
from importlib.metadata import EntryPoint

from pydantic import BaseModel

from pipelines.farm.submit import types
from pipelines.farm.submit.builtin_types import BUILTINS
from pipelines.farm.submit.graph import Layer
from pipelines.farm.submit.types import Compiled, JobType, load_job_types
from pipelines.identity.permissions import Action


class _Settings(BaseModel):
    frames: str = "1"


class Dailies(JobType):
    name = "dailies"
    title = "Dailies"
    Settings = _Settings
    action = Action.JOB_SUBMIT

    async def compile(self, settings, ctx):
        return Compiled([Layer("dailies", "command", {"argv": ["mkdailies"]})])


class ClaimsRender(Dailies):
    name = "render"


class BadName(Dailies):
    name = "Not A Name"


class NoSettings(JobType):
    name = "nosettings"
    title = "x"
    Settings = dict  # type: ignore[assignment]


class TooPowerful(Dailies):
    name = "admin-stuff"
    action = Action.USER_CREATE


def points(*pairs: tuple[str, str]) -> list[EntryPoint]:
    return [EntryPoint(name, value, types.GROUP) for name, value in pairs]


def test_the_built_ins_are_registered_through_the_project_s_entry_points():
    found = {p.name: p.value for p in types.entry_points(group=types.GROUP)}
    assert set(found) >= {"command", "layered", "preview", "render", "encode"}
    assert found["encode"] == "pipelines.farm.submit.builtin_types:EncodeType"


def test_a_plugin_is_added_and_bad_ones_are_left_out_with_a_reason(monkeypatch, caplog):
    here = __name__
    monkeypatch.setattr(types, "entry_points", lambda group: points(
        ("dailies", f"{here}:Dailies"), ("render2", f"{here}:ClaimsRender"),
        ("bad", f"{here}:BadName"), ("none", f"{here}:NoSettings"),
        ("power", f"{here}:TooPowerful"), ("gone", "no_such_module:Thing")))
    with caplog.at_level(logging.WARNING, "farm.job_types"):
        loaded = load_job_types(BUILTINS)
    assert sorted(loaded) == ["command", "dailies", "encode", "layered", "preview", "render"]
    assert type(loaded["render"]).__name__ == "RenderType"  # a plugin cannot replace it
    logged = caplog.text
    for words in ("'render' is taken", "name must match", "Settings must be a pydantic model",
                  "action must be", "no_such_module", "is not registered"):
        assert words in logged, words


def test_each_type_publishes_its_settings_schema():
    loaded = load_job_types(BUILTINS)
    schema = loaded["encode"].schema()
    assert set(schema["required"]) == {"asset_id", "version"}
    assert schema["properties"]["codec"]["enum"] == ["h264", "prores"]
    assert loaded["layered"].action is Action.JOB_SUBMIT_COMMAND
    assert loaded["encode"].action is Action.JOB_SUBMIT
