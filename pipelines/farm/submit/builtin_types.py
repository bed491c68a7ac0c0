"""The job types the farm ships with, registered like a studio's own (pyproject.toml's
`studio_farm.job_types` entry points): command, layered, preview, render and encode."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, StringConstraints

from pipelines.errors import InvalidInput, NotFound
from pipelines.farm.frames import parse_frames
from pipelines.farm.models import Arg, Frames, LayerSubmit, RenderOptions
from pipelines.farm.submit.graph import BadLayers, Dependency, Layer
from pipelines.farm.submit.records import check_template
from pipelines.farm.submit.render import media_requirements
from pipelines.farm.submit.types import Compiled, Context, JobType
from pipelines.identity.permissions import Action
from pipelines.numbers import Int, VersionNumber

AssetId = Annotated[str, StringConstraints(min_length=1, max_length=64)]


class CommandSettings(BaseModel):
    model_config = ConfigDict(extra="forbid")
    command: list[Arg] = Field(min_length=1, max_length=256, description=(
        "An argument list (no shell); `{frame}`, `{first}`, `{last}`, `{output}` are filled "
        "in per task."))
    frames: Frames = "1"
    chunk_size: Int = Field(1, ge=1, le=10_000)


class CommandType(JobType):
    name = "command"
    title = "Command"
    description = "One command over frames in chunks."
    Settings = CommandSettings
    action = Action.JOB_SUBMIT_COMMAND

    async def compile(self, settings: CommandSettings, ctx: Context) -> Compiled:
        check_template(settings.command)
        return Compiled([Layer("command", "command", {"argv": settings.command},
                               parse_frames(settings.frames), settings.chunk_size)])


class LayeredSettings(BaseModel):
    model_config = ConfigDict(extra="forbid")
    layers: list[LayerSubmit] = Field(min_length=1, max_length=64)


def _in_layer(name: str, exc: InvalidInput) -> BadLayers:
    return BadLayers(f"layer {name!r}: {exc.message}", code=exc.code, details=[
        {"loc": ["body", "layers", name], "msg": exc.message, "type": exc.code}])


def check_layer_template(name: str, argv: list[str]) -> None:
    try:
        check_template(argv)
    except InvalidInput as exc:
        raise _in_layer(name, exc) from None


def command_layer(submitted: LayerSubmit) -> Layer:
    """A submitted layer, checked: a bad template or frame range names its layer."""
    check_layer_template(submitted.name, submitted.command)
    try:
        frames = parse_frames(submitted.frames) if submitted.frames else []
    except InvalidInput as exc:
        raise _in_layer(submitted.name, exc) from None
    depends = tuple(Dependency(d) if isinstance(d, str) else Dependency(d.layer, d.per_frame)
                    for d in submitted.depends_on)
    return Layer(submitted.name, "command", {"argv": submitted.command}, frames,
                 submitted.chunk_size, depends,
                 submitted.requirements.model_dump() if submitted.requirements else None)


class LayeredType(JobType):
    name = "layered"
    title = "Layered commands"
    description = ("Command layers over frames; a layer may wait for others whole or "
                   "frame by frame.")
    Settings = LayeredSettings
    action = Action.JOB_SUBMIT_COMMAND

    async def compile(self, settings: LayeredSettings, ctx: Context) -> Compiled:
        return Compiled([command_layer(layer) for layer in settings.layers])


class VersionSettings(BaseModel):
    model_config = ConfigDict(extra="forbid")
    asset_id: AssetId
    version: VersionNumber


async def _version(ctx: Context, settings: VersionSettings) -> dict[str, Any]:
    version = await ctx.lookups.versions.one(ctx.principal.studio_id, settings.asset_id,
                                             settings.version)
    if version is None:
        raise NotFound("no such version", code="version_not_found")
    return version


def preview_layer(version: dict[str, Any]) -> tuple[Layer, dict[str, Any]]:
    """The one task previewing `version`, and the job's target."""
    target = {"asset_id": version["asset_id"], "version": version["number"]}
    payload = {"key": version["key"], "sha256": version["sha256"],
               "family": version["media"]["family"], "filename": version["filename"], **target}
    return Layer("preview", "preview", payload), target


class PreviewType(JobType):
    name = "preview"
    title = "Preview"
    description = "Previews of an asset version: poster, proxy, filmstrip, waveform."
    Settings = VersionSettings
    action = Action.JOB_SUBMIT

    async def compile(self, settings: VersionSettings, ctx: Context) -> Compiled:
        layer, target = preview_layer(await _version(ctx, settings))
        return Compiled([layer], target)


class RenderSettings(BaseModel):
    model_config = ConfigDict(extra="forbid")
    frames: Frames
    chunk_size: Int = Field(1, ge=1, le=10_000)
    render: RenderOptions
    command: list[Arg] | None = Field(None, min_length=1, max_length=256,
                                      description="The command renderer's argument list.")


class RenderType(JobType):
    name = "render"
    title = "Render"
    description = ("A scene version rendered in chunks, previewed while it renders, "
                   "assembled into a movie and published as a version in review.")
    Settings = RenderSettings
    action = Action.JOB_SUBMIT  # the command renderer checks the command permission

    async def compile(self, settings: RenderSettings, ctx: Context) -> Compiled:
        layers, target, render = await ctx.lookups.renders.compile(
            ctx.principal, ctx.requirements, settings)
        return Compiled(layers, target, {"render": render})


class EncodeSettings(VersionSettings):
    codec: Literal["h264", "prores"] = "h264"
    crf: Int = Field(18, ge=0, le=51, description="H.264 quality: lower is better.")
    max_height: Int | None = Field(None, ge=16, le=4320)


class EncodeType(JobType):
    name = "encode"
    title = "Encode"
    description = "A video version encoded as a deliverable (H.264 or ProRes 422 HQ)."
    Settings = EncodeSettings
    action = Action.JOB_SUBMIT

    async def compile(self, settings: EncodeSettings, ctx: Context) -> Compiled:
        version = await _version(ctx, settings)
        if (version.get("media") or {}).get("family") != "video":
            raise InvalidInput("only video versions can be encoded", code="not_a_video")
        payload = {"key": version["key"], "sha256": version["sha256"],
                   "filename": version["filename"], "codec": settings.codec,
                   "crf": settings.crf, "max_height": settings.max_height}
        return Compiled([Layer("encode", "encode", payload,
                               requirements=media_requirements(ctx.requirements))],
                        {"asset_id": version["asset_id"], "version": version["number"]})


BUILTINS: list[type[JobType]] = [CommandType, LayeredType, PreviewType, RenderType,
                                 EncodeType]
