"""The assets domain wired together from the platform's clients and settings."""

from __future__ import annotations

from dataclasses import dataclass

from config.settings import Settings
from pipelines.assets.janitor import Janitor
from pipelines.assets.previews import PreviewRequests
from pipelines.assets.quota import Quota
from pipelines.assets.service import AssetService
from pipelines.assets.uploads import UploadLimits, UploadService
from pipelines.assets.versions import VersionHook, VersionRecorder
from pipelines.events.log import EventLog
from pipelines.storage import ObjectStore


@dataclass
class AssetsDomain:
    assets: AssetService
    versions: VersionRecorder
    uploads: UploadService
    quota: Quota
    janitor: Janitor

    @classmethod
    def build(cls, db, store: ObjectStore, settings: Settings, events: EventLog,
              on_version_created: VersionHook | None = None) -> AssetsDomain:
        assets = AssetService(db, events)
        quota = Quota(db, settings.studio_quota_bytes, settings.studio_max_open_uploads)
        hook = on_version_created or PreviewRequests(db)
        versions = VersionRecorder(db, store, assets, events, hook)
        limits = UploadLimits(
            part_size=settings.upload_part_size_bytes,
            simple_limit=settings.simple_upload_limit_bytes,
            max_bytes=settings.max_upload_bytes, ttl_s=settings.upload_ttl_s,
            url_ttl_s=settings.upload_url_ttl_s,
        )
        uploads = UploadService(db, store, assets, quota, versions, limits,
                                bytes_url=settings.upload_url)
        return cls(assets, versions, uploads, quota, Janitor(db, store, assets, uploads, quota))
