"""Job types: a name, a settings model, who may submit it, and a compiler into layers.

The built-in types and a studio's own register the same way, as Python entry points in
the group `studio_farm.job_types` (docs/job-types.md):

    [project.entry-points."studio_farm.job_types"]
    dailies = "studio_tools.farm:Dailies"

A type's compiled layers run as any job's do: command layers through the same hardened
runner as command jobs (an argument list, no shell, limits, the job's timeout).
"""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass, field
from importlib.metadata import entry_points
from typing import Any, ClassVar

from pydantic import BaseModel

from pipelines.farm.submit.graph import Layer
from pipelines.identity.models import Principal
from pipelines.identity.permissions import Action

log = logging.getLogger("farm.job_types")
GROUP = "studio_farm.job_types"
NAME = re.compile(r"^[a-z][a-z0-9_-]{0,31}$")


@dataclass
class Compiled:
    layers: list[Layer]
    target: dict[str, Any] | None = None  # what the job works on (an asset, a version)
    fields: dict[str, Any] = field(default_factory=dict)  # more of the job (e.g. `render`)


@dataclass
class Context:
    """What a compiler may know besides its settings: who submits, the job's own
    requirements, and (for the built-ins) the studio's assets to check against."""

    principal: Principal
    requirements: dict[str, Any]
    lookups: Any = None


class JobType:
    """Subclass with `name`, `title`, `Settings` (a pydantic model) and `compile`."""

    name: ClassVar[str]
    title: ClassVar[str]
    description: ClassVar[str] = ""
    Settings: ClassVar[type[BaseModel]]
    # Who may submit it, through the permission table. A type whose commands come from the
    # submitter's settings must keep the command permission (TDs and admins).
    action: ClassVar[Action] = Action.JOB_SUBMIT_COMMAND

    async def compile(self, settings: Any, ctx: Context) -> Compiled:
        raise NotImplementedError

    @classmethod
    def schema(cls) -> dict[str, Any]:
        return cls.Settings.model_json_schema()


def _valid(cls: Any) -> str | None:
    """Why a loaded object is not a job type; None when it is one."""
    if not (isinstance(cls, type) and issubclass(cls, JobType)):
        return "not a JobType subclass"
    if not NAME.match(getattr(cls, "name", "") or ""):
        return f"name must match {NAME.pattern}"
    if not (isinstance(getattr(cls, "Settings", None), type)
            and issubclass(cls.Settings, BaseModel)):
        return "Settings must be a pydantic model"
    if cls.action not in (Action.JOB_SUBMIT, Action.JOB_SUBMIT_COMMAND):
        return "action must be job.submit or job.submit_command"
    return None


def load_job_types(builtins: list[type[JobType]]) -> dict[str, JobType]:
    """Every installed entry point. The built-ins come first, whatever the install order:
    no plugin may take their names (nor each other's); a broken plugin is logged and left
    out, and the farm runs on without it."""
    types: dict[str, JobType] = {cls.name: cls() for cls in builtins}
    registered: set[str] = set()
    for point in sorted(entry_points(group=GROUP), key=lambda p: p.name):
        try:
            cls = point.load()
        except Exception as exc:  # noqa: BLE001 - a plugin's import error is its own
            log.error("job type %s not loaded: %s: %s", point.name, type(exc).__name__, exc)
            continue
        if cls in builtins:
            registered.add(cls.name)
            continue
        problem = _valid(cls)
        if problem is None and cls.name in types:
            problem = f"{cls.name!r} is taken"
        if problem:
            log.error("job type %s refused: %s", point.name, problem)
            continue
        types[cls.name] = cls()
    for name in sorted(set(types) & {cls.name for cls in builtins} - registered):
        # A checkout run without installing the project has no entry points.
        log.warning("built-in job type %s is not registered as an entry point (is the "
                    "project installed?)", name)
    return types
