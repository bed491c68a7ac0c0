"""New asset versions become preview jobs: pending preview requests are adopted here."""

from __future__ import annotations

import time
from collections.abc import Callable

from pipelines.assets.previews import PreviewRequests
from pipelines.assets.versions import Versions
from pipelines.farm.submit.jobs import JobService


class PreviewAdopter:
    def __init__(self, db, jobs: JobService, batch: int = 50,
                 clock: Callable[[], float] = time.time):
        self.queue = PreviewRequests(db, clock)
        self.versions = Versions(db)
        self.jobs = jobs
        self.batch = batch

    async def __call__(self) -> int:
        """Claim, make the job, record it. A dispatcher dying after its claim leaves the
        request without a job: after `CLAIM_S` the claim is void and it is adopted again."""
        adopted = 0
        for request in await self.queue.pending(self.batch):
            if not await self.queue.claim(request["_id"]):
                continue
            version = await self.versions.by_id(request["_id"])
            if version is None:  # the asset was deleted meanwhile: nothing to make
                await self.queue.adopted(request["_id"], None)
                continue
            job, tasks = self.jobs.preview_job_for(version, version["uploaded_by"])
            public = await self.jobs.store_and_announce(job, tasks)
            await self.queue.adopted(request["_id"], public["id"])
            adopted += 1
        return adopted
