"""Render jobs: a scene version → frames on farm nodes → a movie → a new version in review.

The DAG (`pipelines.farm.submit.render_plan.plan`): render chunks in spread order, progressive
previews after 3, 6, 12... chunks, and an assembly that waits for every chunk. The
assembly's success publishes the movie (`pipelines.farm.publish.render`).
"""

from __future__ import annotations

import math
from typing import Any

from pipelines.assets.models import AssetKind, AssetStatus
from pipelines.assets.service import AssetNotFound, may_edit
from pipelines.assets.store import ASSETS, VERSIONS
from pipelines.assets.versions import AssetFrozen, VersionNotFound
from pipelines.errors import Forbidden, InvalidInput
from pipelines.farm.frames import parse_frames
from pipelines.farm.models import JobSubmit, RenderOptions
from pipelines.farm.submit.records import check_template, new_job, new_task
from pipelines.farm.submit.render_plan import PlannedTask, plan
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
    def __init__(self, db, clock):
        self.assets = db[ASSETS]
        self.versions = db[VERSIONS]
        self.clock = clock

    async def build(self, principal: Principal, body: JobSubmit) -> tuple[dict, list[dict]]:
        options = body.render
        if options is None:
            raise InvalidInput("render jobs need `render` (scene, target asset, settings)",
                               code="render_missing")
        if not body.frames:
            raise InvalidInput("render jobs need `frames`, e.g. \"1-48\"", code="frames_missing")
        frames = parse_frames(body.frames)
        argv = self._command(principal, body, options)
        needs = NEEDS[options.renderer](options.device)
        target = await self._target(principal, options.target_asset_id)
        scene = await self._scene(principal, options, needs)
        job = new_job(principal.studio_id, principal.user_id, body, self.clock(), {
            "asset_id": target["_id"], "scene": scene and {
                "asset_id": scene["asset_id"], "version": scene["number"]}})
        job["render"] = options.model_dump(mode="json") | {
            "frames": body.frames, "frame_count": len(frames), "chunk_size": body.chunk_size,
            "preview": None, "preview_frames": 0}
        requirements = render_requirements(job["requirements"], needs)
        render_payload = {
            "renderer": options.renderer, "argv": argv, "samples": options.samples,
            "percent": options.resolution_percent, "format": options.output_format,
            "device": options.device, "threads": max(1, math.ceil(requirements["slots"])),
            "scene": scene and {"key": scene["key"], "sha256": scene["sha256"],
                                "filename": scene["filename"]}}
        tasks = self._tasks(job, plan(frames, body.chunk_size, options.progressive),
                            render_payload, requirements)
        return job, tasks

    def _tasks(self, job: dict, planned: list[PlannedTask], render_payload: dict,
               requirements: dict) -> list[dict]:
        options = job["render"]
        media = {"fps": options["fps"], "format": options["output_format"],
                 "timeline": options["frames"], "target_asset_id": job["target"]["asset_id"]}
        tasks: list[dict] = []
        for index, item in enumerate(planned):
            deps = [tasks[d]["_id"] for d in item.deps]
            if item.kind == "render":
                tasks.append(new_task(job, index, render_payload, item.frames, kind="render",
                                      requirements=requirements))
            else:
                tasks.append(new_task(job, index, media, item.frames, deps, kind=item.kind,
                                      requirements=media_requirements(job["requirements"])))
        return tasks

    @staticmethod
    def _command(principal: Principal, body: JobSubmit, options: RenderOptions) -> list[str]:
        if options.renderer != "command":
            return []
        if not can(principal.role, Action.JOB_SUBMIT_COMMAND):
            raise Forbidden("the command renderer is for TDs and admins")
        if not body.command:
            raise InvalidInput("the command renderer needs `command` (an argument list)",
                               code="command_missing")
        check_template(body.command, PLACEHOLDERS)
        return list(body.command)

    async def _target(self, principal: Principal, asset_id: str) -> dict[str, Any]:
        asset = await self.assets.find_one({"_id": asset_id, "studio_id": principal.studio_id,
                                            "deleted": False})
        if asset is None:
            raise AssetNotFound("no such target asset")
        if asset["kind"] != AssetKind.RENDER.value:
            raise InvalidInput(f"the target asset is a {asset['kind']}, not a render asset",
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
        version = await self.versions.find_one({
            "studio_id": principal.studio_id, "asset_id": options.scene.asset_id,
            "number": options.scene.version})
        if version is None:
            raise VersionNotFound("no such scene version")
        media = version.get("media") or {}
        if media.get("family") != "scene" or (
                needs.scene_mimes and media.get("mime") not in needs.scene_mimes):
            raise InvalidInput(f"the {options.renderer} renderer cannot render a "
                               f"{media.get('label') or 'file of this type'}",
                               code="scene_unsupported")
        return version


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
