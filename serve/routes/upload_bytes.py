"""The two routes that carry file bytes. Served by the Api and by the upload gateway.

Both stream: a proxied part goes to storage as it arrives, a simple upload's file is cut
into parts on the way. Behind the Ray Serve proxy the whole body is still buffered by the
proxy; the gateway (plain uvicorn) reads only as fast as storage takes the bytes, so
clients send bytes to the gateway (`proxy_part_url_template`, docs/assets.md). The Api's
OpenAPI document describes both: the gateway serves the same operations, documents none.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Path, Request

from pipelines.assets.models import public_version
from pipelines.assets.views import StoredPart, VersionOut
from pipelines.identity.models import Principal
from pipelines.identity.permissions import Action
from serve.contract import errors
from serve.deps import require
from serve.routes.assets import AssetsDep
from serve.streaming import MAX_FILENAME_CHARS, form_file, part_body

router = APIRouter()
Editor = Annotated[Principal, require(Action.ASSET_EDIT_OWN)]
PartNumber = Annotated[int, Path(ge=1, le=10000)]

# The bodies are read as streams, not parsed by FastAPI, so they are described here.
_PART_BODY = {"requestBody": {"required": True, "content": {"application/octet-stream": {
    "schema": {"type": "string", "format": "binary"}}},
    "description": "The part's bytes: exactly its size (`part_size`, less for the last)."}}
_FORM_BODY = {"requestBody": {"required": True, "content": {"multipart/form-data": {
    "schema": {"type": "object", "required": ["file"], "properties": {"file": {
        "type": "string", "format": "binary", "minLength": 1,
        "description": f"The file; its name at most {MAX_FILENAME_CHARS} characters."}}},
    "encoding": {"file": {"contentType": "application/octet-stream"}}}}}}
_BODY_ERRORS = {408: ["body_timeout"], 413: ["payload_too_large"]}


@router.put("/uploads/{upload_id}/parts/{number}", tags=["uploads"], response_model=StoredPart,
            summary="Send one part through the API or the upload gateway "
                    "(application/octet-stream)",
            openapi_extra=_PART_BODY,
            responses=errors(codes=_BODY_ERRORS | {
                404: ["upload_not_found"], 409: ["upload_not_open", "upload_expired"],
                413: ["payload_too_large", "part_size_mismatch"],
                415: ["unsupported_media_type"],
                422: ["invalid_part", "part_size_mismatch"]}))
async def put_part(upload_id: str, number: PartNumber, request: Request, domain: AssetsDep,
                   who: Editor) -> dict:
    expected = await domain.uploads.open_for_part(who, upload_id, number)
    body = part_body(request, expected, _idle_s(request))
    stored = await domain.uploads.put_part(who, upload_id, number, body)
    request.app.state.platform.metrics.upload_bytes.inc(expected)
    return stored


@router.post("/assets/{asset_id}/file", status_code=201, tags=["assets"],
             response_model=VersionOut,
             summary="Upload a small file in one multipart/form-data request (field `file`)",
             openapi_extra=_FORM_BODY,
             responses=errors(codes=_BODY_ERRORS | {
                 404: ["asset_not_found"], 409: ["asset_frozen", "upload_expired"],
                 415: ["unsupported_media_type", "file_type_not_allowed",
                       "content_type_mismatch"],
                 422: ["form_expected", "form_malformed", "file_missing", "file_name_too_long",
                       "empty_file"],
                 429: ["quota_exceeded", "too_many_uploads"]}))
async def upload_simple(asset_id: str, request: Request, domain: AssetsDep,
                        who: Editor) -> dict:
    await domain.assets.editable_doc(who, asset_id)  # refuse before reading any bytes
    incoming = await form_file(request, domain.uploads.limits.simple_limit, _idle_s(request))
    version = await domain.uploads.simple(who, asset_id, incoming)
    request.app.state.platform.metrics.upload_bytes.inc(version["size"])
    return public_version(version)


def _idle_s(request: Request) -> float:
    return request.app.state.platform.settings.upload_idle_timeout_s
