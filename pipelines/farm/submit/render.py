"""Render jobs: a scene version → frames on farm nodes → a movie → a new version in review.

A layered job like any other (`graph.py`): `render` (chunks in spread order), `progressive`
(low-res previews after the first 3, 6, 12... chunks: `render_plan.py`) and `assemble`
(waits for the whole render layer). The assembly's success publishes the movie
(`pipelines.farm.publish.render`).
"""

from __future__ import annotations

import math
from typing import Any

from pipelines.assets.models import AssetKind, AssetStatus
from pipelines.assets.service import AssetNotFound, may_edit
from pipelines.assets.store import ASSETS
from pipelines.assets.versions import AssetFrozen, VersionNotFound, Versions
from pipelines.errors import Forbidden, InvalidInput
from pipelines.farm.frames import chunk, parse_frames
from pipelines.farm.models import RenderOptions
from pipelines.farm.submit.graph import Dependency, Layer, Unit
from pipelines.farm.submit.records import check_template
from pipelines.farm.submit.render_plan import preview_points, spread_order
from pipelines.identity.models import Principal
from pipelines.identity.permissions import Action, can
from pipelines.render.base import RenderNeeds
from pipelines.render.blender import BlenderRenderer
from pipelines.render.command import PLACEHOLDERS, CommandRenderer

NEEDS = {"blender": BlenderRenderer().needs, "command": CommandRenderer().needs}


def render_requirements(job_requirements: dict[str, Any], needs: RenderNeeds) -> dict:
    return job_requirements | {"gpus": max(job_requirements["gpus"], needs.gpus)}


def media_requirements(job_requirements: dict[str, Any]) -> dict[str, Any]:
    """Assembly and previews run FFmpeg: one slot, no GPU, on any node the job may use."""
    return {"slots": min(1.0, job_requirements["slots"]), "gpus": 0, "memory_bytes": 0,
            "tags": job_requirements["tags"]}


class RenderJobs:
    """Checks a render submission against the studio's assets and compiles its layers."""

    def __init__(self, db):
        self.assets = db[ASSETS]
        self.versions = Versions(db)

    async def compile(self, principal: Principal, requirements: dict[str, Any],
                      settings: Any) -> tuple[list[Layer], dict[str, Any], dict[str, Any]]:
        """(layers, target, the job's `render` field) of a render job."""
        options: RenderOptions = settings.render
        frames = parse_frames(settings.frames)
        argv = self._command(principal, settings.command, options)
        needs = NEEDS[options.renderer](options.device)
        target = await self._target(principal, options.target_asset_id)
        scene = await self._scene(principal, options, needs)
        render = options.model_dump(mode="json") | {
            "frames": settings.frames, "frame_count": len(frames),
            "chunk_size": settings.chunk_size, "preview": None, "preview_frames": 0}
        slots = render_requirements(requirements, needs)
        render_payload = {
            "renderer": options.renderer, "argv": argv, "samples": options.samples,
            "percent": options.resolution_percent, "format": options.output_format,
            "device": options.device, "threads": max(1, math.ceil(slots["slots"])),
            "scene": scene and {"key": scene["key"], "sha256": scene["sha256"],
                                "filename": scene["filename"]}}
        media = {"fps": options.fps, "format": options.output_format,
                 "timeline": settings.frames, "target_asset_id": target["_id"]}
        layers = render_layers(frames, settings.chunk_size, options.progressive,
                               render_payload, media, slots, media_requirements(requirements))
        return layers, {"asset_id": target["_id"], "scene": scene and {
            "asset_id": scene["asset_id"], "version": scene["number"]}}, render

    @staticmethod
    def _command(principal: Principal, command: list[str] | None,
                 options: RenderOptions) -> list[str]:
        if options.renderer != "command":
            return []
        if not can(principal.role, Action.JOB_SUBMIT_COMMAND):
            raise Forbidden("the command renderer is for TDs and admins")
        if not command:
            raise InvalidInput("the command renderer needs `command` (an argument list)",
                               code="command_missing")
        check_template(command, PLACEHOLDERS)
        return list(command)

    async def _target(self, principal: Principal, asset_id: str) -> dict[str, Any]:
        asset = await self.assets.find_one({"_id": asset_id, "studio_id": principal.studio_id,
                                            "deleted": False})
        if asset is None:
            raise AssetNotFound("no such target asset")
        if asset["kind"] != AssetKind.RENDER.value:
            raise InvalidInput(f"the target asset is of kind {asset['kind']}, not a render asset",
                               code="target_not_render")
        if not may_edit(principal, asset):
            raise Forbidden("only the target asset's owner, a producer or an admin may "
                            "publish renders to it")
        if asset["status"] == AssetStatus.APPROVED.value:
            raise AssetFrozen("the target asset is approved; its current version is frozen")
        return asset

    async def _scene(self, principal: Principal, options: RenderOptions,
                     needs: RenderNeeds) -> dict[str, Any] | None:
        if options.scene is None:
            if needs.scene:
                raise InvalidInput(f"the {options.renderer} renderer needs `render.scene`",
                                   code="scene_missing")
            return None
        version = await self.versions.one(principal.studio_id, options.scene.asset_id,
                                          options.scene.version)
        if version is None:
            raise VersionNotFound("no such scene version")
        media = version.get("media") or {}
        if media.get("family") != "scene" or (
                needs.scene_mimes and media.get("mime") not in needs.scene_mimes):
            raise InvalidInput(f"the {options.renderer} renderer cannot render a "
                               f"{media.get('label') or 'file of this type'}",
                               code="scene_unsupported")
        return version


def render_layers(frames: list[int], chunk_size: int, progressive: bool,
                  render_payload: dict[str, Any], media: dict[str, Any],
                  render_requirements: dict[str, Any],
                  media_requirements: dict[str, Any]) -> list[Layer]:
    """render → (progressive previews) → assemble, as layers."""
    chunks = chunk(frames, chunk_size)
    order = spread_order(len(chunks))
    layers = [Layer("render", "render", render_payload, frames, chunk_size, spread=True,
                    requirements=render_requirements)]
    points = preview_points(len(chunks)) if progressive else []
    if points:  # each covers the chunks rendered first, in lease (spread) order
        layers.append(Layer("progressive", "progressive", media, requirements=media_requirements,
                            units=tuple(Unit(sorted(f for i in order[:at] for f in chunks[i]),
                                             {"render": list(range(at))}) for at in points)))
    layers.append(Layer("assemble", "assemble", media, requirements=media_requirements,
                        units=(Unit(list(frames)),), depends_on=(Dependency("render"),)))
    return layers


async def render_totals(store, job: dict[str, Any]) -> dict[str, Any]:
    """Per-job totals from the succeeded render tasks' metrics, summed by the database."""
    cursor = await store.tasks.aggregate([
        {"$match": {"job_id": job["_id"], "kind": "render", "state": "succeeded"}},
        {"$group": {"_id": None, "frames": {"$sum": "$metrics.frame_count"},
                    "seconds": {"$sum": "$metrics.frame_seconds"},
                    "wall": {"$sum": "$metrics.wall_s"},
                    "peak": {"$max": "$metrics.peak_rss"}}}])
    rows = await cursor.to_list()
    row = rows[0] if rows else {}
    return {"frames_done": int(row.get("frames") or 0),
            "frame_seconds_total": round(float(row.get("seconds") or 0.0), 3),
            "task_seconds_total": round(float(row.get("wall") or 0.0), 3),
            "peak_rss_max": row.get("peak")}
