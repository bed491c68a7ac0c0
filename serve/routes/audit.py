"""The studio's audit log, newest first."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query

from pipelines.identity.models import AuditEntryOut, Page, Principal
from pipelines.identity.permissions import Action
from serve.contract import errors
from serve.deps import IdentityDep, PageParams, require

AuditReader = Annotated[Principal, require(Action.AUDIT_READ)]

router = APIRouter(prefix="/audit", tags=["audit"])


@router.get("", response_model=Page[AuditEntryOut], summary="Audit entries, newest first",
            responses=errors(codes={422: ["invalid_cursor"]}))
async def list_audit(identity: IdentityDep, page: PageParams, principal: AuditReader,
                     action: Annotated[str | None, Query(max_length=64)] = None,
                     actor: Annotated[str | None, Query(
                         max_length=64, description="A user id or an API key id.")] = None,
                     target: Annotated[str | None, Query(
                         max_length=64, description="The id of the object acted on "
                         "(user, asset, job, node, ...).")] = None,
                     ) -> Page[AuditEntryOut]:
    return await identity.audit.list(principal.studio_id, limit=page.limit,
                                     cursor=page.cursor, action=action, actor=actor,
                                     target=target)
