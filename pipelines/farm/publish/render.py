"""What a render job's succeeded tasks mean beyond the farm (dispatcher side, no FFmpeg).

- `progressive`: the newest low-res preview is recorded on the job and announced as a
  `job.progress` event carrying its (presigned) URL.
- `assemble`: the movie becomes a new version of the target `render` asset through the
  same VersionRecorder every upload ends in (`asset.version_created`), with its previews
  already made (`asset.preview_ready`), and the asset goes `in_review`. If it cannot be
  published, the assembly task fails with the reason (`TaskFailed`), so the job never
  completes without a version: refused (the asset was approved or deleted meanwhile) is
  `bad_input`, dead at once; anything else (storage away) is a `crash`, retried with
  backoff. `retry` on the job assembles and publishes again.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from typing import Any

from pipelines.assets.lifecycle import Cause
from pipelines.assets.models import AssetStatus, public_version, safe_filename
from pipelines.assets.quota import Quota
from pipelines.assets.service import AssetService
from pipelines.assets.versions import VersionRecorder, Versions
from pipelines.errors import Conflict, FarmError, InvalidInput, NotFound
from pipelines.events.log import EventLog
from pipelines.farm.protocol import FailureClass, Finished, TaskFailed
from pipelines.farm.store import FarmStore
from pipelines.storage import ObjectStore

log = logging.getLogger("farm.dispatcher")


class ProgressivePublisher:
    def __init__(self, db, events: EventLog, store: ObjectStore, url_ttl_s: int = 3600,
                 clock: Callable[[], float] = time.time):
        self.farm = FarmStore(db)
        self.events, self.store, self.url_ttl_s, self.clock = events, store, url_ttl_s, clock

    async def __call__(self, job: dict[str, Any], task: dict[str, Any],
                       outcome: Finished) -> None:
        preview = outcome.results.get("preview")
        if not preview:
            return
        newer = await self.farm.set_job(
            job["_id"], {"render.preview": preview | {"made_s": self.clock()},
                         "render.preview_frames": preview["frames"]},
            where={"render.preview_frames": {"$lt": preview["frames"]}})
        if not newer:
            return  # a preview of more frames finished first: it stays the one shown
        url = await self.store.presigned_get(preview["key"], self.url_ttl_s)
        await self.events.append(job["studio_id"], "job.progress", f"job:{job['_id']}", {
            "job_id": job["_id"], "status": job["status"], "preview": {
                "url": url, "frames": preview["frames"], "of": preview["of"],
                "task_id": task["_id"], "expires_in_s": self.url_ttl_s}})


class RenderPublisher:
    def __init__(self, db, events: EventLog, store: ObjectStore,
                 clock: Callable[[], float] = time.time):
        self.farm = FarmStore(db)
        self.events = events
        self.assets = AssetService(db, events, clock)
        self.versions = Versions(db)
        self.usage = Quota(db, max_bytes=0, max_open_uploads=0)  # counts only, never refuses
        self.recorder = VersionRecorder(db, store, self.assets, events,
                                        on_version_created=None, clock=clock)
        self.clock = clock

    async def __call__(self, job: dict[str, Any], task: dict[str, Any],
                       outcome: Finished) -> None:
        try:
            version = await self._version(job, outcome)
        except Exception as exc:  # noqa: BLE001 - whatever it was, the job must say so
            message = exc.message if isinstance(exc, FarmError) else type(exc).__name__
            refused = isinstance(exc, InvalidInput | Conflict | NotFound)
            log.warning("render not published", extra={"job_id": job["_id"],
                                                        "error": message})
            raise TaskFailed(f"publish: {message}", failure_class=(
                FailureClass.BAD_INPUT if refused else FailureClass.CRASH).value) from exc
        await self.farm.set_job(job["_id"], {"render.published": {
            "asset_id": version["asset_id"], "version": version["number"]}})
        await self.events.append(job["studio_id"], "asset.preview_ready",
                                 f"asset:{version['asset_id']}", {
                                     "asset_id": version["asset_id"],
                                     "version": version["number"], "job_id": job["_id"],
                                     "previews": version["previews"]})

    async def _version(self, job: dict[str, Any], outcome: Finished) -> dict[str, Any]:
        """The version of this job's movie: recorded once, found again on a repeat (the
        hook runs again when a dispatcher died while publishing)."""
        upload_id, target = f"job:{job['_id']}", job["target"]["asset_id"]
        movie = outcome.results["movie"]
        version = await self.versions.of_upload(job["studio_id"], target, upload_id)
        if version is None:
            upload = {"_id": upload_id, "asset_id": target, "studio_id": job["studio_id"],
                      "key": movie["key"], "filename": safe_filename(f"{job['name']}.mp4"),
                      "size": movie["size"], "user_id": job["submitted_by"],
                      "content_type": "video/mp4"}
            media, sha256 = await self.recorder.verify(upload, movie["size"], movie["sha256"])
            version = await self.recorder.record(upload, media, sha256)
        version["previews"] = outcome.results.get("previews") or {}
        # Whoever sets `render_job_id` finishes the publication, once: the asset goes in
        # review and the bytes count against the quota. (A crash right after this update
        # leaves the usage short by one movie, never counted twice.)
        if await self.versions.mark_published(version["_id"], version["previews"], job["_id"]):
            await self.assets.move(job["studio_id"], target, AssetStatus.IN_REVIEW,
                                   Cause.RENDER_PUBLISHED)
            await self.usage.add_bytes(job["studio_id"], movie["size"])
            log.info("render published", extra={"job_id": job["_id"], "asset_id": target,
                                                 "version": public_version(version)["number"]})
        return version
