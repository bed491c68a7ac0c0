"""Invitations: an admin invites by email with a role; the invitee chooses their password
through the emailed link, which also confirms the address.

The only module that writes `invitations`. The invited user exists from the start (so
the email is taken in the studio and the user is listed, `invited: true`), with no
password: nobody can log in as them until they accept.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

from pymongo import IndexModel, ReturnDocument

from pipelines.db import db_errors, declare_indexes, new_id, purge_date
from pipelines.errors import Conflict, Forbidden, NotFound
from pipelines.identity import audit as events
from pipelines.identity.account_mail import AccountMail
from pipelines.identity.links import digest, link_invalid, new_token
from pipelines.identity.mail_models import InvitationAccept, InvitationCreate, InvitationOut
from pipelines.identity.models import AuthResult, Page, Principal, StudioOut, UserOut
from pipelines.identity.passwords import PasswordHasher
from pipelines.identity.permissions import may_grant
from pipelines.identity.sessions import Sessions
from pipelines.identity.users import Users
from pipelines.paging import fetch_page

INVITATIONS = "invitations"
INVITATION_TTL_S = 7 * 24 * 3600
KEPT_AFTER_S = 90 * 24 * 3600  # ended invitations stay listed this long

declare_indexes(INVITATIONS, [
    IndexModel("digest"),
    IndexModel([("studio_id", 1), ("created_at_s", 1)]),
    IndexModel("purge_at", expireAfterSeconds=0),
])


class Invitations:
    def __init__(self, invitations: Any, users: Users, sessions: Sessions,
                 hasher: PasswordHasher, mail: AccountMail,
                 clock: Callable[[], float] = time.time):
        self.invitations, self.users, self.sessions = invitations, users, sessions
        self.hasher, self.mail, self.clock = hasher, mail, clock

    @db_errors
    async def invite(self, principal: Principal, req: InvitationCreate) -> InvitationOut:
        if not may_grant(principal.role, req.role):
            raise Forbidden("you may not grant a role above your own", code="role_too_high")
        studio = await self.users.studio(principal.studio_id)
        inviter = await self.users.doc(principal.studio_id, principal.user_id)
        user = await self.users.invited(principal.studio_id, req.email, req.name, req.role)
        token, token_digest = new_token()
        now = self.clock()
        expires = now + INVITATION_TTL_S
        # Inviting someone already invited sends a fresh link; the old one stops working.
        doc = await self.invitations.find_one_and_update(
            {"studio_id": principal.studio_id, "user_id": user["_id"], "state": "pending"},
            {"$set": {"digest": token_digest, "expires_at_s": expires, "role": str(req.role),
                      "name": req.name, "invited_by": principal.user_id,
                      "purge_at": purge_date(expires + KEPT_AFTER_S)}},
            return_document=ReturnDocument.AFTER)
        if doc is None:
            doc = {"_id": new_id(), "studio_id": principal.studio_id, "user_id": user["_id"],
                   "email": req.email, "name": req.name, "role": str(req.role),
                   "digest": token_digest, "state": "pending", "invited_by": principal.user_id,
                   "created_at_s": now, "expires_at_s": expires, "ended_at_s": None,
                   "purge_at": purge_date(expires + KEPT_AFTER_S)}
            await self.invitations.insert_one(doc)
        await self.mail.invitation(user, studio, inviter["name"], token, expires)
        await self.users.audit.record(principal.studio_id, events.USER_INVITED,
                                      actor=principal.actor(),
                                      target={"type": "user", "id": user["_id"]},
                                      details={"role": str(req.role), "invitation": doc["_id"]})
        return InvitationOut.of(doc, now)

    @db_errors
    async def list(self, principal: Principal, *, limit: int, cursor: str | None,
                   pending_only: bool) -> Page[InvitationOut]:
        query: dict[str, Any] = {"studio_id": principal.studio_id}
        if pending_only:
            query |= {"state": "pending", "expires_at_s": {"$gt": self.clock()}}
        docs, next_cursor = await fetch_page(self.invitations, query, "created_at_s",
                                             limit=limit, cursor=cursor, descending=True)
        now = self.clock()
        return Page[InvitationOut](items=[InvitationOut.of(d, now) for d in docs],
                                   next_cursor=next_cursor)

    @db_errors
    async def revoke(self, principal: Principal, invitation_id: str) -> None:
        doc = await self.invitations.find_one_and_update(
            {"_id": invitation_id, "studio_id": principal.studio_id, "state": "pending"},
            {"$set": {"state": "revoked", "ended_at_s": self.clock()}})
        if doc is None:
            if await self.invitations.count_documents({"_id": invitation_id,
                                                       "studio_id": principal.studio_id}):
                raise Conflict("that invitation was accepted or revoked already",
                               code="invitation_ended")
            raise NotFound("no such invitation", code="invitation_not_found")
        await self.users.remove_invited(principal.studio_id, doc["user_id"])
        await self.users.audit.record(principal.studio_id, events.INVITATION_REVOKED,
                                      actor=principal.actor(),
                                      target={"type": "user", "id": doc["user_id"]},
                                      details={"invitation": invitation_id})

    @db_errors
    async def accept(self, req: InvitationAccept, client: str) -> AuthResult:
        # Hashed first, whatever the token: a refused link costs what an accepted one does.
        password_hash = await self.hasher.hash(req.password)
        now = self.clock()
        doc = await self.invitations.find_one_and_update(
            {"digest": digest(req.token), "state": "pending", "expires_at_s": {"$gt": now}},
            {"$set": {"state": "accepted", "ended_at_s": now}})
        if doc is None:
            raise link_invalid()
        user = await self.users.accepted(doc["studio_id"], doc["user_id"], password_hash,
                                         req.name)
        if user is None:
            raise link_invalid()
        await self.users.audit.record(doc["studio_id"], events.INVITATION_ACCEPTED,
                                      actor={"user_id": user["_id"], "kind": "invitation"},
                                      target={"type": "user", "id": user["_id"]}, client=client)
        studio = await self.users.studio(doc["studio_id"])
        pair = await self.sessions.start(user)
        return AuthResult(**pair.model_dump(), user=UserOut.of(user), studio=StudioOut.of(studio))
