"""New asset versions become preview jobs: pending preview requests are adopted here."""

from __future__ import annotations

from pipelines.assets.previews import PreviewRequests
from pipelines.farm.jobs import JobService


class PreviewAdopter:
    def __init__(self, db, jobs: JobService, batch: int = 50):
        self.queue = PreviewRequests(db)
        self.requests = self.queue.requests
        self.versions = db["asset_versions"]
        self.jobs = jobs
        self.batch = batch

    async def __call__(self) -> int:
        adopted = 0
        for request in await self.queue.pending(self.batch):
            claimed = await self.requests.find_one_and_update(
                {"_id": request["_id"], "state": "pending"}, {"$set": {"state": "adopted"}})
            if claimed is None:
                continue
            version = await self.versions.find_one({"_id": request["_id"]})
            if version is None:
                continue  # the asset was deleted meanwhile
            job, tasks = self.jobs.preview_job_for(version, version["uploaded_by"])
            public = await self.jobs.store_and_announce(job, tasks)
            await self.requests.update_one({"_id": request["_id"]},
                                           {"$set": {"job_id": public["id"]}})
            adopted += 1
        return adopted
