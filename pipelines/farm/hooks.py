"""What a succeeded task means beyond the farm: preview tasks publish their previews."""

from __future__ import annotations

from typing import Any

from pipelines.events.log import EventLog


class PreviewPublisher:
    """Records a preview task's outputs on its asset version and announces them."""

    def __init__(self, db, events: EventLog):
        self.versions = db["asset_versions"]
        self.events = events

    async def __call__(self, job: dict[str, Any], task: dict[str, Any],
                       outcome: dict[str, Any]) -> None:
        target = job.get("target") or {}
        previews = outcome.get("previews") or {}
        await self.versions.update_one(
            {"studio_id": job["studio_id"], "asset_id": target.get("asset_id"),
             "number": target.get("version")},
            {"$set": {"previews": previews}})
        await self.events.append(job["studio_id"], "asset.preview_ready",
                                 f"asset:{target.get('asset_id')}",
                                 {"asset_id": target.get("asset_id"),
                                  "version": target.get("version"), "previews": previews})
