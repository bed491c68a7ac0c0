"""Studios and their users: registration, administration, password changes.

Emails are unique per studio, not globally: a freelancer may belong to two studios, and
no answer (a 409 at registration or at user creation) can tell one studio that an email
exists in another. Login therefore names the studio (its slug).
"""

from __future__ import annotations

import logging
from typing import Any

from pymongo import IndexModel, ReturnDocument
from pymongo.errors import DuplicateKeyError

from pipelines.db import db_errors, declare_indexes, new_id
from pipelines.errors import Conflict, FarmError, Forbidden, InvalidInput, NotFound
from pipelines.identity import audit as events
from pipelines.identity.accounts import AccountService
from pipelines.identity.models import (
    AuthResult,
    ChangePasswordRequest,
    Credential,
    MeOut,
    Page,
    Principal,
    RegisterRequest,
    StudioOut,
    UserCreate,
    UserOut,
    UserPatch,
)
from pipelines.identity.permissions import Action, Role, can, may_grant
from pipelines.identity.records import STUDIOS, USERS
from pipelines.identity.tokens import ms_floor
from pipelines.paging import fetch_page

log = logging.getLogger("farm.identity")

declare_indexes(STUDIOS, [IndexModel("slug", unique=True)])
declare_indexes(USERS, [
    IndexModel([("studio_id", 1), ("email", 1)], unique=True),
    IndexModel([("studio_id", 1), ("created_at_s", 1)]),
])


def _user_not_found() -> NotFound:
    # The same answer for a missing user and another studio's user.
    return NotFound("no such user", code="user_not_found")


class Users(AccountService):

    def _new_user(self, studio_id: str, email: str, name: str, role: Role,
                  password_hash: str | None) -> dict[str, Any]:
        now = self.clock()
        return {"_id": new_id(), "studio_id": studio_id, "email": email, "name": name,
                "role": str(role), "active": True, "password_hash": password_hash,
                "email_verified": not self.verification.required, "invited": False,
                "created_at_s": now, "updated_at_s": now, "tokens_valid_after_s": 0.0}

    @db_errors
    async def register(self, req: RegisterRequest, client: str | None) -> AuthResult:
        password_hash = await self.hasher.hash(req.password)
        studio: dict[str, Any] = {"_id": new_id(), "slug": req.studio_slug, "name": req.studio_name,
                  "created_at_s": self.clock()}
        try:
            await self.studios.insert_one(studio)
        except DuplicateKeyError as exc:
            raise Conflict("that studio handle is taken", code="studio_taken") from exc
        user = self._new_user(studio["_id"], req.email, req.name, Role.ADMIN, password_hash)
        try:
            await self.users.insert_one(user)
        except BaseException:
            await self.studios.delete_one({"_id": studio["_id"]})  # no studio without admin
            raise
        actor = {"user_id": user["_id"], "kind": "session"}
        await self.audit.record(studio["_id"], events.STUDIO_REGISTERED, actor=actor,
                                target={"type": "studio", "id": studio["_id"]}, client=client)
        await self.verification.start(user, studio)
        pair = await self.sessions.start(user)
        return AuthResult(**pair.model_dump(), user=UserOut.of(user), studio=StudioOut.of(studio))

    @db_errors
    async def create(self, principal: Principal, req: UserCreate) -> UserOut:
        if "role" in req.model_fields_set:
            self._check_grant(principal, req.role)
        password_hash = await self.hasher.hash(req.password)
        user = self._new_user(principal.studio_id, req.email, req.name, req.role, password_hash)
        try:
            await self.users.insert_one(user)
        except DuplicateKeyError as exc:
            raise Conflict("a user with that email exists in this studio",
                           code="email_taken") from exc
        await self.audit.record(principal.studio_id, events.USER_CREATED,
                                actor=principal.actor(),
                                target={"type": "user", "id": user["_id"]},
                                details={"role": user["role"]})
        await self.verification.start(user, await self._studio(principal.studio_id))
        return UserOut.of(user)

    # For invitations (pipelines/identity/invitations.py).
    async def invited(self, studio_id: str, email: str, name: str,
                      role: Role) -> dict[str, Any]:
        """The invited user: made now, or the one an earlier invitation made."""
        user = self._new_user(studio_id, email, name, role, None)
        user |= {"invited": True, "email_verified": False}
        try:
            await self.users.insert_one(user)
            return user
        except DuplicateKeyError:
            existing = await self.users.find_one({"studio_id": studio_id, "email": email})
        if existing is None or not existing.get("invited"):
            raise Conflict("a user with that email exists in this studio", code="email_taken")
        await self.users.update_one({"_id": existing["_id"]}, {"$set": {
            "name": name, "role": str(role), "updated_at_s": self.clock()}})
        return existing | {"name": name, "role": str(role)}

    async def remove_invited(self, studio_id: str, user_id: str) -> None:
        await self.users.delete_one({"_id": user_id, "studio_id": studio_id, "invited": True})

    async def accepted(self, studio_id: str, user_id: str, password_hash: str,
                       name: str | None) -> dict[str, Any] | None:
        changes: dict[str, Any] = {"password_hash": password_hash, "invited": False,
                                   "email_verified": True, "updated_at_s": self.clock()}
        if name:
            changes["name"] = name
        return await self.users.find_one_and_update(
            {"_id": user_id, "studio_id": studio_id, "invited": True, "active": True},
            {"$set": changes}, return_document=ReturnDocument.AFTER)

    # For password resets (pipelines/identity/resets.py).
    async def reset_password(self, user: dict[str, Any], password_hash: str) -> None:
        now = self.clock()
        await self.users.update_one({"_id": user["_id"]}, {"$set": {
            "password_hash": password_hash, "tokens_valid_after_s": ms_floor(now),
            "updated_at_s": now, "email_verified": True}})
        await self.verification.forget(user["_id"])

    def _check_grant(self, principal: Principal, role: Role) -> None:
        if not can(principal.role, Action.USER_ASSIGN_ROLE, via_api_key=principal.via_api_key):
            raise Forbidden("you may not set roles", code="role_not_allowed")
        if not may_grant(principal.role, role):
            raise Forbidden("you may not grant a role above your own", code="role_too_high")

    async def doc(self, studio_id: str, user_id: str) -> dict[str, Any]:
        return await self._load(studio_id, user_id)

    async def studio(self, studio_id: str) -> dict[str, Any]:
        return await self._studio(studio_id)

    async def _load(self, studio_id: str, user_id: str) -> dict[str, Any]:
        user = await self.users.find_one({"_id": user_id, "studio_id": studio_id})
        if user is None:
            raise _user_not_found()
        return user

    async def _studio(self, studio_id: str) -> dict[str, Any]:
        studio = await self.studios.find_one({"_id": studio_id})
        if studio is None:
            raise NotFound("no such studio", code="studio_not_found")
        return studio

    @db_errors
    async def get(self, principal: Principal, user_id: str) -> UserOut:
        return UserOut.of(await self._load(principal.studio_id, user_id))

    @db_errors
    async def list(self, principal: Principal, *, limit: int,
                   cursor: str | None) -> Page[UserOut]:
        docs, next_cursor = await fetch_page(self.users, {"studio_id": principal.studio_id},
                                             "created_at_s", limit=limit, cursor=cursor)
        return Page[UserOut](items=[UserOut.of(d) for d in docs], next_cursor=next_cursor)

    @db_errors
    async def update(self, principal: Principal, user_id: str, patch: UserPatch) -> UserOut:
        target = await self._load(principal.studio_id, user_id)
        changes = self._changes(principal, target, patch)
        if not changes:
            return UserOut.of(target)
        await self._keep_an_admin(target, changes)
        now = self.clock()
        if "role" in changes or "active" in changes:
            # Cuts every access token issued before now, on every replica, at once.
            changes["tokens_valid_after_s"] = ms_floor(now)
        await self.users.update_one({"_id": target["_id"], "studio_id": principal.studio_id},
                                    {"$set": changes | {"updated_at_s": now}})
        await self._undo_if_no_admin_left(target, changes)
        if changes.get("active") is False:
            await self.sessions.revoke_all_for_user(target, "user_deactivated",
                                                    actor=principal.actor())
        await self.audit.record(principal.studio_id, events.USER_UPDATED,
                                actor=principal.actor(), target={"type": "user", "id": user_id},
                                details=_describe(target, changes))
        return UserOut.of(target | changes)

    def _changes(self, principal: Principal, target: dict[str, Any],
                 patch: UserPatch) -> dict[str, Any]:
        changes: dict[str, Any] = {}
        if target["_id"] == principal.user_id and (patch.role is not None or
                                                    patch.active is False):
            # Nobody locks themselves out by a slip (and every session of theirs with them):
            # another admin changes an admin's role or deactivates them.
            raise Forbidden("you may not change your own role or deactivate yourself; ask "
                            "another admin", code="not_on_yourself")
        if patch.name is not None and patch.name != target["name"]:
            changes["name"] = patch.name
        if patch.active is not None and patch.active != target["active"]:
            changes["active"] = patch.active
        if patch.role is not None and patch.role != target["role"]:
            self._check_grant(principal, patch.role)
            if not may_grant(principal.role, target["role"]):
                raise Forbidden("you may not change a role above your own", code="role_too_high")
            changes["role"] = str(patch.role)
        return changes

    async def _keep_an_admin(self, target: dict[str, Any], changes: dict[str, Any]) -> None:
        demoted = changes.get("role", Role.ADMIN) != Role.ADMIN
        deactivated = changes.get("active") is False
        if target["role"] != Role.ADMIN or not target["active"] or not (demoted or deactivated):
            return
        others = await self.users.count_documents({
            "studio_id": target["studio_id"], "role": str(Role.ADMIN), "active": True,
            "_id": {"$nin": [target["_id"]]},
        })
        if others == 0:
            raise Conflict("a studio keeps at least one active admin", code="last_admin")

    async def _undo_if_no_admin_left(self, target: dict[str, Any],
                                     changes: dict[str, Any]) -> None:
        """The check before the write cannot see a concurrent demotion of the other admin;
        counting again after the write can: whoever finds no admin left puts theirs back.
        Two admins demoting each other at once both get 409, and both stay admins."""
        if target["role"] != Role.ADMIN or not ({"role", "active"} & set(changes)):
            return
        admins = await self.users.count_documents(
            {"studio_id": target["studio_id"], "role": str(Role.ADMIN), "active": True})
        if admins == 0:
            await self.users.update_one(
                {"_id": target["_id"]},
                {"$set": {"role": target["role"], "active": target["active"]}})
            raise Conflict("a studio keeps at least one active admin", code="last_admin")

    @db_errors
    async def change_password(self, principal: Principal, req: ChangePasswordRequest,
                              client: str) -> AuthResult:
        user = await self._load(principal.studio_id, principal.user_id)
        studio = await self._studio(principal.studio_id)
        reservation = await self.throttle.reserve(studio["slug"], user["email"], client)
        if not await self.hasher.verify(req.current_password, user["password_hash"]):
            # Not a 401: the session is fine, and clients treat 401 as "log in again".
            raise InvalidInput("the current password is wrong", code="wrong_current_password",
                               details=[{"loc": ["body", "current_password"],
                                         "msg": "does not match", "type": "wrong_password"}])
        await self.throttle.release(reservation)
        now = self.clock()
        new_hash = await self.hasher.hash(req.new_password)
        await self.users.update_one({"_id": user["_id"]}, {"$set": {
            "password_hash": new_hash, "tokens_valid_after_s": ms_floor(now), "updated_at_s": now,
        }})
        await self.sessions.revoke_all_for_user(user, "password_changed", actor=principal.actor())
        await self.audit.record(principal.studio_id, events.PASSWORD_CHANGED,
                                actor=principal.actor(), target={"type": "user", "id": user["_id"]},
                                client=client)
        try:  # the change is made: a note that could not be queued does not undo it
            await self.mail.password_changed(user, studio)
        except FarmError as exc:
            log.warning("password change note not queued: %s", exc.message)
        pair = await self.sessions.start(user)
        return AuthResult(**pair.model_dump(), user=UserOut.of(user), studio=StudioOut.of(studio))

    @db_errors
    async def me(self, principal: Principal) -> MeOut:
        user = await self._load(principal.studio_id, principal.user_id)
        studio = await self._studio(principal.studio_id)
        credential = Credential(kind=principal.kind, role=principal.role, key_id=principal.key_id)
        return MeOut(user=UserOut.of(user), studio=StudioOut.of(studio), credential=credential)


def _describe(target: dict[str, Any], changes: dict[str, Any]) -> dict[str, Any]:
    return {field: {"from": target.get(field), "to": value}
            for field, value in changes.items() if field in ("name", "role", "active")}
