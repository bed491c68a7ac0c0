"""What a succeeded task means beyond the farm: preview tasks publish their previews."""

from __future__ import annotations

from typing import Any

from pipelines.assets.versions import Versions
from pipelines.events.log import EventLog
from pipelines.farm.protocol import Finished


class PreviewPublisher:
    """Records a preview task's outputs on its asset version and announces them."""

    def __init__(self, db, events: EventLog):
        self.versions = Versions(db)
        self.events = events

    async def __call__(self, job: dict[str, Any], task: dict[str, Any],
                       outcome: Finished) -> None:
        target = job["target"]  # a preview job is made for one version, always named
        previews = outcome.results.get("previews") or {}
        await self.versions.set_previews(job["studio_id"], target["asset_id"],
                                         target["version"], previews)
        await self.events.append(job["studio_id"], "asset.preview_ready",
                                 f"asset:{target['asset_id']}",
                                 {"asset_id": target["asset_id"],
                                  "version": target["version"], "previews": previews})
