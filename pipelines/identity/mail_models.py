"""Request and response shapes of the email flows: verification, invitations, password
reset, and the studio's outgoing mail (shared with the SDK)."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal

from pydantic import BaseModel, Field

from pipelines.identity.models import Email, Name, NewPassword, Strict
from pipelines.identity.permissions import Role
from pipelines.identity.records import as_datetime, maybe_datetime

LinkToken = Annotated[str, Field(min_length=1, max_length=200,
                                 description="The `token` of the emailed link, unchanged.")]


class VerifyEmail(Strict):
    code: Annotated[str, Field(pattern=r"^[0-9]{6}$", description="The 6 digits emailed.")]


class PasswordResetRequest(Strict):
    studio: Annotated[str, Field(min_length=1, max_length=40)] = Field(
        description="The studio's slug, as at login.")
    email: Annotated[str, Field(min_length=1, max_length=320)]


class PasswordResetConfirm(Strict):
    token: LinkToken
    new_password: NewPassword


class Accepted(BaseModel):
    """Taken; what follows happens by email."""

    status: Literal["accepted"] = "accepted"
    message: str


class InvitationCreate(Strict):
    email: Email
    name: Name
    role: Role = Role.ARTIST


class InvitationAccept(Strict):
    token: LinkToken
    password: NewPassword
    name: Name | None = Field(None, description="The invitee's own spelling of their name.")


class InvitationOut(BaseModel):
    id: str
    user_id: str
    email: str
    name: str
    role: Role
    state: Literal["pending", "expired", "accepted", "revoked"]
    invited_by: str
    created_at: datetime
    expires_at: datetime
    ended_at: datetime | None

    @classmethod
    def of(cls, doc: dict[str, Any], now: float) -> InvitationOut:
        state = doc["state"]
        if state == "pending" and doc["expires_at_s"] <= now:
            state = "expired"
        return cls(id=doc["_id"], user_id=doc["user_id"], email=doc["email"], name=doc["name"],
                   role=doc["role"], state=state, invited_by=doc["invited_by"],
                   created_at=as_datetime(doc["created_at_s"]),
                   expires_at=as_datetime(doc["expires_at_s"]),
                   ended_at=maybe_datetime(doc.get("ended_at_s")))


class MailOut(BaseModel):
    """One outgoing message, without its body (codes and links are the recipient's)."""

    id: str
    kind: str
    to: str
    subject: str
    state: Literal["queued", "sending", "sent", "failed"]
    attempts: int
    last_error: str | None
    created_at: datetime
    sent_at: datetime | None
    request_id: str | None

    @classmethod
    def of(cls, doc: dict[str, Any]) -> MailOut:
        return cls(id=doc["_id"], kind=doc["kind"], to=doc["to"], subject=doc["subject"],
                   state=doc["state"], attempts=doc["attempts"], last_error=doc.get("last_error"),
                   created_at=as_datetime(doc["created_at_s"]),
                   sent_at=maybe_datetime(doc.get("sent_at_s")),
                   request_id=doc.get("request_id"))
