"""Email flows of an account: confirm the email, accept an invitation, reset a forgotten
password (docs/accounts.md)."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Response

from pipelines.identity.mail_models import (
    Accepted,
    InvitationAccept,
    PasswordResetConfirm,
    PasswordResetRequest,
    VerifyEmail,
)
from pipelines.identity.models import AuthResult, Principal, UserOut
from pipelines.identity.permissions import Action
from serve.contract import errors
from serve.deps import ClientAddress, IdentityDep, require
from serve.routes.auth import NO_STORE

Verifier = Annotated[Principal, require(Action.SELF_VERIFY_EMAIL)]

router = APIRouter(prefix="/auth", tags=["auth"])

RESET_TAKEN = ("If that studio has an account with that email, a link to choose a new "
               "password is on its way. It works once, for an hour.")


@router.post("/verify", response_model=UserOut, summary="Confirm the caller's email with "
             "the 6-digit code sent to it",
             responses=errors(codes={422: ["wrong_code", "code_expired"],
                                     429: ["too_many_tries"]}))
async def verify_email(body: VerifyEmail, identity: IdentityDep,
                       principal: Verifier) -> UserOut:
    return await identity.verification.verify(principal, body.code)


@router.post("/verify/resend", status_code=202, response_model=Accepted,
             summary="Send a new code (once a minute)",
             responses=errors(codes={422: ["already_verified"], 429: ["code_sent_recently"]}))
async def resend_code(identity: IdentityDep, principal: Verifier) -> Accepted:
    await identity.verification.resend(principal)
    return Accepted(message="a new code is on its way; the previous one no longer works")


@router.post("/password/reset", status_code=202, response_model=Accepted,
             summary="Ask for a password reset link (the same answer for any email)")
async def request_reset(body: PasswordResetRequest, identity: IdentityDep,
                        client: ClientAddress) -> Accepted:
    await identity.resets.request(body, client)
    return Accepted(message=RESET_TAKEN)


@router.post("/password/reset/confirm", status_code=204, response_class=Response,
             summary="Choose a new password with the emailed link; every session ends",
             responses=errors(codes={422: ["link_invalid", "password_too_long"]}))
async def confirm_reset(body: PasswordResetConfirm, identity: IdentityDep,
                        client: ClientAddress) -> Response:
    await identity.resets.confirm(body, client)
    return Response(status_code=204)


@router.post("/invitations/accept", response_model=AuthResult,
             summary="Accept an invitation: choose a password, and be logged in",
             responses=errors(codes={422: ["link_invalid", "password_too_long"]}))
async def accept_invitation(body: InvitationAccept, identity: IdentityDep,
                            client: ClientAddress, response: Response) -> AuthResult:
    response.headers.update(NO_STORE)
    return await identity.invitations.accept(body, client)
