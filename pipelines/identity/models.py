"""Request and response shapes of the identity API (shared with the SDK).

Request models forbid unknown fields: a body that tries to set `studio_id`, an owner or
any other field the caller does not control is refused with 422, never ignored.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime
from typing import Annotated, Any, Generic, Literal, TypeVar

import idna
from pydantic import AfterValidator, BaseModel, ConfigDict, Field, model_validator

from pipelines.identity.passwords import (
    MAX_LOGIN_PASSWORD_CHARS,
    MAX_PASSWORD_BYTES,
    MIN_PASSWORD_BYTES,
    check_password_rules,
)
from pipelines.identity.permissions import Role
from pipelines.identity.records import as_datetime, maybe_datetime
from pipelines.numbers import Bool, Int
from pipelines.schema import at_least_one
from pipelines.text import PersonName

# No whitespace or control characters (C0, DEL, C1) anywhere: they hide in lists and logs.
_ADDRESS_CHAR = r"[^@\s\x00-\x1f\x7f-\x9f]"
EMAIL_PATTERN = rf"^{_ADDRESS_CHAR}{{1,64}}@{_ADDRESS_CHAR}+\.{_ADDRESS_CHAR}+$"
_EMAIL = re.compile(EMAIL_PATTERN)
SLUG_PATTERN = r"^[a-z0-9](?:[a-z0-9-]{0,38}[a-z0-9])?$"


def normalise_email(value: str) -> str:
    value = value.strip().lower()
    if len(value) > 254 or not _EMAIL.match(value):
        raise ValueError("not an email address")
    try:  # the domain must be a host name in any script (IDNA 2008), as idn-email says
        idna.encode(value.rsplit("@", 1)[1], uts46=False)
    except idna.IDNAError:
        raise ValueError("not an email address: its domain is not a host name") from None
    return value


Email = Annotated[str, Field(max_length=320, json_schema_extra={
    # idn-email: addresses in any script are taken (JSON Schema's `email` is ASCII only).
    "format": "idn-email", "pattern": EMAIL_PATTERN, "maxLength": 254}),
    AfterValidator(normalise_email)]
# The rule is in UTF-8 bytes (bcrypt reads 72); the schema states it in characters, which
# every ASCII password meets exactly. Longer input is still read, to be refused clearly.
NewPassword = Annotated[str, Field(
    max_length=MAX_LOGIN_PASSWORD_CHARS,
    description=f"{MIN_PASSWORD_BYTES} to {MAX_PASSWORD_BYTES} bytes of UTF-8 (after NFKC).",
    json_schema_extra={"minLength": MIN_PASSWORD_BYTES, "maxLength": MAX_PASSWORD_BYTES}),
    AfterValidator(check_password_rules)]
Name = PersonName
Slug = Annotated[str, Field(pattern=SLUG_PATTERN)]
Secret = Annotated[str, Field(min_length=1, max_length=512)]


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class RegisterRequest(Strict):
    model_config = ConfigDict(extra="forbid", json_schema_extra={"examples": [{
        "studio_name": "Northern Lights Animation", "studio_slug": "northern-lights",
        "email": "ada@northern-lights.example", "name": "Ada Park",
        "password": "correct horse battery"}]})
    studio_name: Name
    studio_slug: Slug = Field(description="Unique studio handle, used at login.")
    email: Email
    name: Name
    password: NewPassword


class LoginRequest(Strict):
    model_config = ConfigDict(extra="forbid", json_schema_extra={"examples": [{
        "studio": "northern-lights", "email": "ada@northern-lights.example",
        "password": "correct horse battery"}]})
    studio: Annotated[str, Field(min_length=1, max_length=40)] = Field(
        description="The studio's slug: emails are unique per studio, not globally."
    )
    email: Annotated[str, Field(min_length=1, max_length=320)]
    password: Annotated[str, Field(min_length=1, max_length=MAX_LOGIN_PASSWORD_CHARS)]


class RefreshRequest(Strict):
    refresh_token: Secret


class ChangePasswordRequest(Strict):
    current_password: Annotated[str, Field(min_length=1, max_length=MAX_LOGIN_PASSWORD_CHARS)]
    new_password: NewPassword


class UserCreate(Strict):
    model_config = ConfigDict(extra="forbid", json_schema_extra={"examples": [{
        "email": "li@northern-lights.example", "name": "Li Wei",
        "password": "a long passphrase", "role": "artist"}]})
    email: Email
    name: Name
    password: NewPassword
    role: Role = Role.ARTIST


class UserPatch(Strict):
    model_config = ConfigDict(extra="forbid", json_schema_extra=at_least_one(
        "name", "role", "active") | {"examples": [{"role": "supervisor"}]})
    name: Name | None = None
    role: Role | None = None
    active: Bool | None = None

    @model_validator(mode="after")
    def _not_empty(self) -> UserPatch:
        if self.name is None and self.role is None and self.active is None:
            raise ValueError("nothing to change: give name, role or active")
        return self


class ApiKeyCreate(Strict):
    model_config = ConfigDict(extra="forbid", json_schema_extra={"examples": [{
        "name": "nuke publish script", "expires_in_days": 90}]})
    name: Name
    role: Role | None = Field(None, description="Defaults to the creator's role; never higher.")
    expires_in_days: Int | None = Field(None, ge=1, le=3650)


class StudioOut(BaseModel):
    id: str
    slug: str
    name: str

    @classmethod
    def of(cls, doc: dict[str, Any]) -> StudioOut:
        return cls(id=doc["_id"], slug=doc["slug"], name=doc["name"])


class UserOut(BaseModel):
    id: str
    email: str
    name: str
    role: Role
    active: bool
    created_at: datetime
    last_login_at: datetime | None = None
    email_verified: bool = Field(True, description="False until the user confirmed their "
                                 "email; until then they may only read themselves and verify.")
    invited: bool = Field(False, description="Invited and not yet accepted: no password yet.")

    @classmethod
    def of(cls, doc: dict[str, Any]) -> UserOut:
        return cls(id=doc["_id"], email=doc["email"], name=doc["name"], role=doc["role"],
                   active=doc["active"], created_at=as_datetime(doc["created_at_s"]),
                   last_login_at=maybe_datetime(doc.get("last_login_at_s")),
                   # Accounts made before verification existed count as verified.
                   email_verified=doc.get("email_verified", True),
                   invited=doc.get("invited", False))


class TokenPair(BaseModel):
    access_token: str
    refresh_token: str
    token_type: Literal["bearer"] = "bearer"
    expires_in: int = Field(description="Seconds the access token lives.")
    refresh_expires_in: int = Field(description="Seconds before the refresh token idles out.")


class AuthResult(TokenPair):
    user: UserOut
    studio: StudioOut


class Credential(BaseModel):
    kind: Literal["session", "api_key"]
    role: Role
    key_id: str | None = None


class MeOut(BaseModel):
    user: UserOut
    studio: StudioOut
    credential: Credential


class ApiKeyOut(BaseModel):
    id: str
    name: str
    role: Role
    owner_id: str
    prefix: str = Field(description="First characters of the key, to recognise it.")
    created_at: datetime
    expires_at: datetime | None
    last_used_at: datetime | None

    @classmethod
    def of(cls, doc: dict[str, Any]) -> ApiKeyOut:
        return cls(id=doc["_id"], name=doc["name"], role=doc["role"], owner_id=doc["user_id"],
                   prefix=doc["prefix"], created_at=as_datetime(doc["created_at_s"]),
                   expires_at=maybe_datetime(doc.get("expires_at_s")),
                   last_used_at=maybe_datetime(doc.get("last_used_at_s")))


class ApiKeyCreated(ApiKeyOut):
    key: str = Field(description="The key itself. Shown once: only its hash is stored.")


class AuditEntryOut(BaseModel):
    id: str
    at: datetime
    action: str
    actor: dict[str, Any]
    target: dict[str, Any]
    request_id: str | None
    client: str | None
    details: dict[str, Any]

    @classmethod
    def of(cls, doc: dict[str, Any]) -> AuditEntryOut:
        return cls(id=doc["_id"], at=as_datetime(doc["at_s"]), action=doc["action"],
                   actor=doc["actor"], target=doc["target"], request_id=doc.get("request_id"),
                   client=doc.get("client"), details=doc.get("details") or {})


T = TypeVar("T")


class Page(BaseModel, Generic[T]):
    items: list[T]
    next_cursor: str | None


@dataclass(frozen=True)
class Principal:
    """Who is calling, from a verified credential: the only source of the studio id."""

    user_id: str
    studio_id: str
    role: Role
    kind: Literal["session", "api_key"]
    session_id: str | None = None
    key_id: str | None = None
    email_verified: bool = True

    @property
    def via_api_key(self) -> bool:
        return self.kind == "api_key"

    def actor(self) -> dict[str, Any]:
        actor: dict[str, Any] = {"user_id": self.user_id, "kind": self.kind}
        if self.key_id:
            actor["key_id"] = self.key_id
        return actor
