"""Upload sessions: declare, get part URLs, complete, abort (part bytes: upload_bytes.py)."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query, Response

from pipelines.assets.models import UploadComplete, UploadDeclare, public_version
from pipelines.assets.views import PartUrls, UploadBegun, UploadStatus, VersionOut
from pipelines.identity.models import Principal
from pipelines.identity.permissions import Action
from serve.contract import errors
from serve.deps import require
from serve.routes.assets import AssetsDep

router = APIRouter(tags=["uploads"])
Editor = Annotated[Principal, require(Action.ASSET_EDIT_OWN)]
NOT_FOUND = {404: ["upload_not_found"]}
NOT_OPEN = {409: ["upload_not_open", "upload_expired"]}


# Upload answers leave out the keys that do not apply (a simple upload has no part URL
# template; only open uploads list their parts) rather than showing them as null.
@router.post("/assets/{asset_id}/uploads", status_code=201, response_model=UploadBegun,
             response_model_exclude_unset=True,
             summary="Declare an upload; returns its id, part size and presigned part URLs",
             responses=errors(codes={404: ["asset_not_found"], 409: ["asset_frozen"],
                                     413: ["payload_too_large"],
                                     429: ["quota_exceeded", "too_many_uploads"]}))
async def begin_upload(asset_id: str, body: UploadDeclare, domain: AssetsDep,
                       who: Editor) -> dict:
    return await domain.uploads.begin(who, asset_id, body)


@router.get("/uploads/{upload_id}", response_model=UploadStatus,
            response_model_exclude_unset=True,
            summary="State of an upload and the parts that arrived",
            responses=errors(codes=NOT_FOUND))
async def upload_status(upload_id: str, domain: AssetsDep, who: Editor) -> dict:
    return await domain.uploads.status(who, upload_id)


@router.get("/uploads/{upload_id}/parts", response_model=PartUrls,
            summary="More presigned part URLs",
            responses=errors(codes=NOT_FOUND | NOT_OPEN | {422: ["invalid_part_range"]}))
async def part_urls(upload_id: str, domain: AssetsDep, who: Editor,
                    from_: Annotated[int, Query(alias="from", ge=1, le=10000)] = 1,
                    to: Annotated[int | None, Query(ge=1, le=10000)] = None) -> dict:
    return await domain.uploads.part_urls(who, upload_id, from_, to)


@router.post("/uploads/{upload_id}/complete", status_code=201, response_model=VersionOut,
             summary="Verify the parts with storage and record the new version",
             responses=errors(codes=NOT_FOUND | {
                 409: ["upload_not_open", "upload_expired", "asset_frozen"],
                 415: ["file_type_not_allowed", "content_type_mismatch"],
                 422: ["parts_rejected", "size_mismatch", "sha256_mismatch", "empty_file"]}))
async def complete_upload(upload_id: str, domain: AssetsDep, who: Editor,
                          body: UploadComplete | None = None) -> dict:
    version = await domain.uploads.complete(who, upload_id, body.parts if body else None)
    return public_version(version)


@router.delete("/uploads/{upload_id}", status_code=204, response_class=Response,
               summary="Abort an upload",
               responses=errors(codes=NOT_FOUND | NOT_OPEN))
async def abort_upload(upload_id: str, domain: AssetsDep, who: Editor) -> None:
    await domain.uploads.abort(who, upload_id)
