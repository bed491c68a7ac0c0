"""What the API answers about assets, versions and uploads (shared with the SDK).

The `public_*` builders in models.py make these shapes from stored documents; the routes
declare them, so the OpenAPI document states every field. Times are ISO 8601 strings in UTC.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import BaseModel, Field

from pipelines.assets.models import AssetKind, AssetStatus, UploadState

Timestamp = Annotated[str, Field(json_schema_extra={"format": "date-time"},
                                 examples=["2026-05-14T09:30:00.000+00:00"])]


class AssetOut(BaseModel):
    id: str
    name: str
    kind: AssetKind
    description: str
    tags: list[str]
    status: AssetStatus
    owner_id: str
    current_version: int | None = Field(description="Number of the newest version; null "
                                                    "before the first upload.")
    version_count: int
    created_at: Timestamp
    updated_at: Timestamp


class AssetPage(BaseModel):
    items: list[AssetOut]
    next_cursor: str | None = Field(description="Pass as `cursor` for the next page; null "
                                                "on the last one.")


class MediaOut(BaseModel):
    mime: str
    family: str = Field(description="video, image, audio, scene, archive, ...")
    label: str


class VersionOut(BaseModel):
    asset_id: str
    number: int
    filename: str
    size: int
    content_type: str
    media: MediaOut
    sha256: str
    uploaded_by: str
    created_at: Timestamp
    previews: dict[str, Any] = Field(description="Preview state and storage facts, filled "
                                                 "in when the preview job ends.")


class VersionList(BaseModel):
    items: list[VersionOut]
    next_cursor: str | None = Field(description="Always null: every version is on one page.")


class DownloadOut(BaseModel):
    url: str = Field(description="Presigned GET URL of the version's file.")
    expires_in_s: int
    filename: str
    size: int
    sha256: str


class PreviewUrls(BaseModel):
    state: Literal["ready", "pending"]
    urls: dict[str, str] = Field(description="Presigned URLs by preview name (poster, "
                                             "proxy, filmstrip...).")
    expires_in_s: int
    probe: dict[str, Any] | None = Field(description="What ffprobe found in the file.")
    filmstrip: dict[str, Any] | None = Field(description="Layout of the filmstrip image.")


class PartUrl(BaseModel):
    part: int
    url: str


class StoredPart(BaseModel):
    part: int
    size: int
    etag: str


class UploadOut(BaseModel):
    id: str
    asset_id: str
    filename: str
    size: int
    part_size: int
    part_count: int
    state: UploadState = Field(description="open (parts arrive) or receiving (a simple "
                                           "upload's bytes stream in) → completing → "
                                           "completed; or rejected, aborted or expired.")
    expires_at: Timestamp
    version: int | None = Field(description="The version it became, once completed.")
    proxy_part_url_template: str | None = Field(
        None, description="Multipart uploads only: where to PUT a part through the upload "
                          "gateway (`{part}` is the part number).")


class UploadBegun(UploadOut):
    part_urls: list[PartUrl] = Field(description="Presigned PUT URLs of the first parts.")
    urls_expire_in_s: int


class UploadStatus(UploadOut):
    parts: list[StoredPart] | None = Field(None, description="Open uploads: parts stored.")
    missing_parts: list[int] | None = Field(None, description="Open uploads: parts to send.")


class PartUrls(BaseModel):
    part_urls: list[PartUrl]
    urls_expire_in_s: int
