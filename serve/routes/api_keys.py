"""API keys for pipeline scripts: create (shown once), list, revoke."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Response

from pipelines.identity.models import ApiKeyCreate, ApiKeyCreated, ApiKeyOut, Page, Principal
from pipelines.identity.permissions import Action
from serve.contract import errors
from serve.deps import IdentityDep, PageParams, require

KeyCreator = Annotated[Principal, require(Action.API_KEY_CREATE)]
KeyHolder = Annotated[Principal, require(Action.API_KEY_OWN)]

router = APIRouter(prefix="/api-keys", tags=["api keys"])


@router.post("", status_code=201, response_model=ApiKeyCreated,
             summary="Create a key; the response is the only time the key is shown",
             responses=errors(codes={403: ["role_too_high"]}))
async def create_key(body: ApiKeyCreate, identity: IdentityDep, response: Response,
                     principal: KeyCreator) -> ApiKeyCreated:
    response.headers["Cache-Control"] = "no-store"
    return await identity.api_keys.create(principal, body)


@router.get("", response_model=Page[ApiKeyOut],
            summary="The caller's keys (an admin sees the whole studio's)",
            responses=errors(codes={422: ["invalid_cursor"]}))
async def list_keys(identity: IdentityDep, page: PageParams,
                    principal: KeyHolder) -> Page[ApiKeyOut]:
    return await identity.api_keys.list(principal, limit=page.limit, cursor=page.cursor)


@router.delete("/{key_id}", status_code=204, response_class=Response, summary="Revoke a key",
               responses=errors(codes={404: ["api_key_not_found"]}))
async def revoke_key(key_id: str, identity: IdentityDep,
                     principal: KeyHolder) -> Response:
    await identity.api_keys.revoke(principal, key_id)
    return Response(status_code=204)
