"""Registration, login, token refresh and logout, the caller's own account."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Response

from pipelines.identity.models import (
    AuthResult,
    ChangePasswordRequest,
    LoginRequest,
    MeOut,
    Principal,
    RefreshRequest,
    RegisterRequest,
    TokenPair,
)
from pipelines.identity.permissions import Action
from serve.contract import errors
from serve.deps import ClientAddress, IdentityDep, require

Caller = Annotated[Principal, require(Action.SELF_READ)]
PasswordChanger = Annotated[Principal, require(Action.SELF_CHANGE_PASSWORD)]

router = APIRouter(prefix="/auth", tags=["auth"])

NO_STORE = {"Cache-Control": "no-store", "Pragma": "no-cache"}  # RFC 6749 5.1: tokens
REFRESH_REFUSED = {401: ["invalid_token", "token_expired", "token_revoked"]}


@router.post("/register", status_code=201, response_model=AuthResult,
             summary="Create a studio and its first user (an admin)",
             responses=errors(codes={409: ["studio_taken"], 422: ["password_too_long"]}))
async def register(body: RegisterRequest, identity: IdentityDep, client: ClientAddress,
                   response: Response) -> AuthResult:
    response.headers.update(NO_STORE)
    return await identity.users.register(body, client)


@router.post("/login", response_model=AuthResult, summary="Log in with studio, email, password",
             responses=errors(codes={401: ["invalid_credentials"], 429: ["login_throttled"]}))
async def login(body: LoginRequest, identity: IdentityDep, client: ClientAddress,
                response: Response) -> AuthResult:
    response.headers.update(NO_STORE)
    return await identity.login.login(body, client)


@router.post("/refresh", response_model=TokenPair,
             summary="Rotate a refresh token: a new pair; the old token is spent",
             responses=errors(codes=REFRESH_REFUSED))
async def refresh(body: RefreshRequest, identity: IdentityDep, client: ClientAddress,
                  response: Response) -> TokenPair:
    response.headers.update(NO_STORE)
    return await identity.sessions.rotate(body.refresh_token, client)


@router.post("/logout", status_code=204, response_class=Response,
             summary="End the session (token family) of a refresh token",
             responses=errors(codes=REFRESH_REFUSED))
async def logout(body: RefreshRequest, identity: IdentityDep, client: ClientAddress) -> Response:
    await identity.sessions.logout(body.refresh_token, client)
    return Response(status_code=204)


@router.get("/me", response_model=MeOut, summary="The caller: user, studio and credential")
async def me(identity: IdentityDep, principal: Caller) -> MeOut:
    return await identity.users.me(principal)


@router.post("/password", response_model=AuthResult,
             summary="Change the caller's password; every other session ends",
             responses=errors(codes={422: ["wrong_current_password", "password_too_long"]}))
async def change_password(body: ChangePasswordRequest, identity: IdentityDep,
                          client: ClientAddress, response: Response,
                          principal: PasswordChanger) -> AuthResult:
    response.headers.update(NO_STORE)
    return await identity.users.change_password(principal, body, client)
