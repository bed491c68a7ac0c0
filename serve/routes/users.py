"""Users of the caller's studio: create, list, read, change role or name, deactivate."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter

from pipelines.identity.models import Page, Principal, UserCreate, UserOut, UserPatch
from pipelines.identity.permissions import Action
from serve.contract import errors
from serve.deps import IdentityDep, PageParams, require

UserCreator = Annotated[Principal, require(Action.USER_CREATE)]
UserReader = Annotated[Principal, require(Action.USER_READ)]
UserEditor = Annotated[Principal, require(Action.USER_UPDATE)]

router = APIRouter(prefix="/users", tags=["users"])


@router.post("", status_code=201, response_model=UserOut, summary="Create a user",
             responses=errors(codes={403: ["role_not_allowed", "role_too_high"],
                                     409: ["email_taken"], 422: ["password_too_long"]}))
async def create_user(body: UserCreate, identity: IdentityDep,
                      principal: UserCreator) -> UserOut:
    return await identity.users.create(principal, body)


@router.get("", response_model=Page[UserOut], summary="List the studio's users",
            responses=errors(codes={422: ["invalid_cursor"]}))
async def list_users(identity: IdentityDep, page: PageParams,
                     principal: UserReader) -> Page[UserOut]:
    return await identity.users.list(principal, limit=page.limit, cursor=page.cursor)


@router.get("/{user_id}", response_model=UserOut, summary="One user",
            responses=errors(codes={404: ["user_not_found"]}))
async def get_user(user_id: str, identity: IdentityDep,
                   principal: UserReader) -> UserOut:
    return await identity.users.get(principal, user_id)


@router.patch("/{user_id}", response_model=UserOut,
              summary="Rename, change role, deactivate or reactivate a user",
              responses=errors(codes={403: ["role_not_allowed", "role_too_high",
                                            "not_on_yourself"],
                                      404: ["user_not_found"], 409: ["last_admin"]}))
async def update_user(user_id: str, body: UserPatch, identity: IdentityDep,
                      principal: UserEditor) -> UserOut:
    return await identity.users.update(principal, user_id, body)
