"""Upload sessions: declare, get part URLs, complete, abort (part bytes: upload_bytes.py)."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Query

from pipelines.assets.models import UploadComplete, UploadDeclare, public_version
from pipelines.identity.models import Principal
from pipelines.identity.permissions import Action
from serve.deps import require
from serve.routes.assets import AssetsDep

router = APIRouter(tags=["uploads"])
Editor = Annotated[Principal, require(Action.ASSET_EDIT_OWN)]


@router.post("/assets/{asset_id}/uploads", status_code=201,
             summary="Declare an upload; returns its id, part size and presigned part URLs")
async def begin_upload(asset_id: str, body: UploadDeclare, domain: AssetsDep,
                       who: Editor) -> dict[str, Any]:
    return await domain.uploads.begin(who, asset_id, body)


@router.get("/uploads/{upload_id}", summary="State of an upload and the parts that arrived")
async def upload_status(upload_id: str, domain: AssetsDep, who: Editor) -> dict[str, Any]:
    return await domain.uploads.status(who, upload_id)


@router.get("/uploads/{upload_id}/parts", summary="More presigned part URLs")
async def part_urls(upload_id: str, domain: AssetsDep, who: Editor,
                    from_: Annotated[int, Query(alias="from", ge=1)] = 1,
                    to: Annotated[int | None, Query(ge=1)] = None) -> dict[str, Any]:
    return await domain.uploads.part_urls(who, upload_id, from_, to)


@router.post("/uploads/{upload_id}/complete", status_code=201,
             summary="Verify the parts with storage and record the new version")
async def complete_upload(upload_id: str, domain: AssetsDep, who: Editor,
                          body: UploadComplete | None = None) -> dict[str, Any]:
    version = await domain.uploads.complete(who, upload_id, body.parts if body else None)
    return public_version(version)


@router.delete("/uploads/{upload_id}", status_code=204, summary="Abort an upload")
async def abort_upload(upload_id: str, domain: AssetsDep, who: Editor) -> None:
    await domain.uploads.abort(who, upload_id)
