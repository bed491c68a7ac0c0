"""Per-studio stored bytes and open uploads, counted atomically so replicas agree."""

from __future__ import annotations

from pipelines.assets.store import USAGE
from pipelines.errors import RateLimited


class QuotaExceeded(RateLimited):
    code = "quota_exceeded"


class Quota:
    def __init__(self, db, max_bytes: int, max_open_uploads: int):
        self.usage = db[USAGE]
        self.max_bytes = max_bytes
        self.max_open_uploads = max_open_uploads

    async def _ensure(self, studio_id: str) -> None:
        await self.usage.update_one(
            {"_id": studio_id}, {"$inc": {"bytes": 0, "open_uploads": 0}}, upsert=True
        )

    async def open_upload(self, studio_id: str, size: int) -> None:
        """Take an upload slot if the studio has one and room for `size` more bytes."""
        await self._ensure(studio_id)
        taken = await self.usage.find_one_and_update(
            {"_id": studio_id, "open_uploads": {"$lt": self.max_open_uploads},
             "bytes": {"$lte": self.max_bytes - size}},
            {"$inc": {"open_uploads": 1}},
        )
        if taken is not None:
            return
        usage = await self.usage.find_one({"_id": studio_id}) or {}
        if usage.get("open_uploads", 0) >= self.max_open_uploads:
            raise QuotaExceeded(
                f"the studio already has {self.max_open_uploads} uploads open; finish or "
                "abort one", code="too_many_uploads", retry_after_s=60)
        raise QuotaExceeded("the studio's storage quota would be exceeded", retry_after_s=3600)

    async def close_upload(self, studio_id: str, stored_bytes: int = 0) -> None:
        await self.usage.update_one(
            {"_id": studio_id}, {"$inc": {"open_uploads": -1, "bytes": stored_bytes}}
        )

    async def release_bytes(self, studio_id: str, size: int) -> None:
        await self.usage.update_one({"_id": studio_id}, {"$inc": {"bytes": -size}})

    async def add_bytes(self, studio_id: str, size: int) -> None:
        """Bytes stored without an upload (a render's movie)."""
        await self.usage.update_one({"_id": studio_id}, {"$inc": {"bytes": size}}, upsert=True)

    async def get(self, studio_id: str) -> dict[str, int]:
        usage = await self.usage.find_one({"_id": studio_id}) or {}
        return {"bytes": int(usage.get("bytes", 0)),
                "open_uploads": int(usage.get("open_uploads", 0))}
