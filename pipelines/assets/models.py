"""Assets, versions and upload sessions: request models and the public shapes."""

from __future__ import annotations

import re
from enum import StrEnum
from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, Field, StringConstraints, field_validator

from pipelines.clock import iso
from pipelines.numbers import MAX_INT64, Int
from pipelines.schema import at_least_one
from pipelines.text import NAME_PATTERN, AssetName

Tag = Annotated[str, StringConstraints(pattern=r"^[a-z0-9][a-z0-9_.-]{0,39}$")]
Sha256 = Annotated[str, StringConstraints(pattern=r"^[0-9a-f]{64}$")]
MAX_TAGS = 20


class AssetKind(StrEnum):
    CHARACTER = "character"
    PROP = "prop"
    ENVIRONMENT = "environment"
    SHOT = "shot"
    PLATE = "plate"
    RENDER = "render"
    OTHER = "other"


class AssetStatus(StrEnum):
    DRAFT = "draft"
    IN_REVIEW = "in_review"
    APPROVED = "approved"
    CHANGES_REQUESTED = "changes_requested"


class UploadState(StrEnum):
    """An upload session's life: open (parts arrive) or receiving (a simple upload's bytes
    stream in) → completing → completed, or rejected, aborted or expired."""

    OPEN = "open"
    RECEIVING = "receiving"
    COMPLETING = "completing"
    COMPLETED = "completed"
    REJECTED = "rejected"
    ABORTED = "aborted"
    EXPIRED = "expired"


# Review decisions (approve, request changes) move an asset into these; PATCH may not.
DECISION_STATUSES = {AssetStatus.APPROVED, AssetStatus.CHANGES_REQUESTED}


class AssetCreate(BaseModel):
    model_config = ConfigDict(extra="forbid", json_schema_extra={"examples": [{
        "name": "Hero ship", "kind": "prop", "description": "The ship of act 2.",
        "tags": ["act2", "hero"]}]})
    name: AssetName
    kind: AssetKind
    description: str = Field("", max_length=5000)
    tags: list[Tag] = Field(default_factory=list, max_length=MAX_TAGS)

    @field_validator("tags")
    @classmethod
    def _unique_tags(cls, tags: list[str]) -> list[str]:
        return list(dict.fromkeys(tags))


# approved and changes_requested come from review decisions (422 status_needs_decision).
_PATCH_STATUS: dict[str, Any] = {"anyOf": [
    {"enum": sorted(str(s) for s in set(AssetStatus) - DECISION_STATUSES), "type": "string"},
    {"type": "null"}]}


class AssetPatch(BaseModel):
    model_config = ConfigDict(extra="forbid", json_schema_extra=at_least_one(
        "name", "description", "tags", "status") | {"examples": [{"status": "in_review"}]})
    name: AssetName | None = None
    description: str | None = Field(None, max_length=5000)
    tags: list[Tag] | None = Field(None, max_length=MAX_TAGS)
    status: AssetStatus | None = Field(None, json_schema_extra=_PATCH_STATUS)


_UNSAFE = re.compile(r"[^A-Za-z0-9._-]+")


def safe_filename(name: str) -> str:
    """A storage-safe version of a client's file name (the original is kept as metadata)."""
    base = name.replace("\\", "/").rsplit("/", 1)[-1]
    cleaned = _UNSAFE.sub("_", base).strip("._") or "file"
    return cleaned[:120]


class UploadDeclare(BaseModel):
    model_config = ConfigDict(extra="forbid", json_schema_extra={"examples": [{
        "filename": "sh010_plate_v3.mov", "size": 734003200, "content_type": "video/quicktime",
        "sha256": "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08"}]})
    # The rule for names, stated here so that the schema says it (uploads.py checks form
    # uploads, which arrive outside a model, the same way).
    filename: Annotated[str, StringConstraints(min_length=1, max_length=255,
                                               pattern=NAME_PATTERN)]
    size: Int = Field(gt=0, le=MAX_INT64)
    sha256: Sha256 | None = None
    content_type: Annotated[str, StringConstraints(max_length=200)] | None = None


class CompletedPart(BaseModel):
    model_config = ConfigDict(extra="forbid")
    part: Int = Field(ge=1, le=10000)
    etag: Annotated[str, StringConstraints(min_length=1, max_length=200)]


class UploadComplete(BaseModel):
    model_config = ConfigDict(extra="forbid")
    parts: list[CompletedPart] | None = Field(None, max_length=10000)


def public_asset(doc: dict[str, Any]) -> dict[str, Any]:
    return {
        "id": doc["_id"], "name": doc["name"], "kind": doc["kind"],
        "description": doc["description"], "tags": doc["tags"], "status": doc["status"],
        "owner_id": doc["owner_id"], "current_version": doc.get("current_version"),
        "version_count": doc.get("version_count", 0),
        "created_at": iso(doc["created_at"]), "updated_at": iso(doc["updated_at"]),
    }


def public_version(doc: dict[str, Any]) -> dict[str, Any]:
    return {
        "asset_id": doc["asset_id"], "number": doc["number"], "filename": doc["filename"],
        "size": doc["size"], "content_type": doc["content_type"], "media": doc["media"],
        "sha256": doc["sha256"], "uploaded_by": doc["uploaded_by"],
        "created_at": iso(doc["created_at"]), "previews": doc.get("previews", {}),
    }
