"""The two routes that carry file bytes. Served by the Api and by the upload gateway.

Both stream: a proxied part goes to storage as it arrives, a simple upload's file is cut
into parts on the way. Behind the Ray Serve proxy the whole body is still buffered by the
proxy; the gateway (plain uvicorn) reads only as fast as storage takes the bytes.
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Path, Request

from pipelines.assets.models import public_version
from pipelines.identity.models import Principal
from pipelines.identity.permissions import Action
from serve.deps import require
from serve.routes.assets import AssetsDep
from serve.streaming import form_file, part_body

router = APIRouter()
Editor = Annotated[Principal, require(Action.ASSET_EDIT_OWN)]
PartNumber = Annotated[int, Path(ge=1, le=10000)]


@router.put("/uploads/{upload_id}/parts/{number}", tags=["uploads"],
            summary="Send one part through the API (application/octet-stream)")
async def put_part(upload_id: str, number: PartNumber, request: Request, domain: AssetsDep,
                   who: Editor) -> dict[str, Any]:
    expected = await domain.uploads.open_for_part(who, upload_id, number)
    body = part_body(request, expected, _idle_s(request))
    return await domain.uploads.put_part(who, upload_id, number, body)


@router.post("/assets/{asset_id}/file", status_code=201, tags=["assets"],
             summary="Upload a small file in one multipart/form-data request (field `file`)")
async def upload_simple(asset_id: str, request: Request, domain: AssetsDep,
                        who: Editor) -> dict[str, Any]:
    await domain.assets.editable_doc(who, asset_id)  # refuse before reading any bytes
    incoming = await form_file(request, domain.uploads.limits.simple_limit, _idle_s(request))
    version = await domain.uploads.simple(who, asset_id, incoming)
    return public_version(version)


def _idle_s(request: Request) -> float:
    return request.app.state.platform.settings.upload_idle_timeout_s
