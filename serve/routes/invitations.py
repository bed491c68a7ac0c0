"""Invitations of the caller's studio: invite by email with a role, list, revoke."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query, Response

from pipelines.identity.mail_models import InvitationCreate, InvitationOut
from pipelines.identity.models import Page, Principal
from pipelines.identity.permissions import Action
from serve.contract import errors
from serve.deps import IdentityDep, PageParams, require

Inviter = Annotated[Principal, require(Action.USER_INVITE)]

router = APIRouter(prefix="/invitations", tags=["users"])


@router.post("", status_code=201, response_model=InvitationOut,
             summary="Invite someone by email; inviting them again sends a fresh link",
             responses=errors(codes={403: ["role_too_high"], 409: ["email_taken"]}))
async def invite(body: InvitationCreate, identity: IdentityDep,
                 principal: Inviter) -> InvitationOut:
    return await identity.invitations.invite(principal, body)


@router.get("", response_model=Page[InvitationOut], summary="The studio's invitations, "
            "newest first", responses=errors(codes={422: ["invalid_cursor"]}))
async def list_invitations(identity: IdentityDep, page: PageParams, principal: Inviter,
                           pending: Annotated[bool, Query(
                               description="Only those still waiting to be accepted.")] = False,
                           ) -> Page[InvitationOut]:
    return await identity.invitations.list(principal, limit=page.limit, cursor=page.cursor,
                                           pending_only=pending)


@router.delete("/{invitation_id}", status_code=204, response_class=Response,
               summary="Revoke a pending invitation (its link stops working)",
               responses=errors(codes={404: ["invitation_not_found"],
                                       409: ["invitation_ended"]}))
async def revoke_invitation(invitation_id: str, identity: IdentityDep,
                            principal: Inviter) -> Response:
    await identity.invitations.revoke(principal, invitation_id)
    return Response(status_code=204)
