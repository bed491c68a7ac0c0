"""Small factories for identity tests: a studio with an admin and members, all logged in.

The session database is shared by every test, so each factory call uses fresh slugs and
emails.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field

import httpx

PASSWORD = "correct horse battery"


def unique(prefix: str = "s") -> str:
    return f"{prefix}-{uuid.uuid4().hex[:12]}"


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


@dataclass
class Member:
    user_id: str
    email: str
    role: str
    password: str
    access_token: str
    refresh_token: str

    @property
    def headers(self) -> dict[str, str]:
        return bearer(self.access_token)


@dataclass
class StudioCtx:
    studio_id: str
    slug: str
    admin: Member
    members: dict[str, Member] = field(default_factory=dict)

    def __getattr__(self, role: str) -> Member:  # ctx.artist, ctx.director
        try:
            return self.__dict__["members"][role]
        except KeyError:
            raise AttributeError(role) from None


def register_body(slug: str | None = None, email: str | None = None,
                  password: str = PASSWORD) -> dict[str, str]:
    slug = slug or unique("studio")
    return {"studio_name": f"Studio {slug}", "studio_slug": slug,
            "email": email or f"admin@{slug}.example", "name": "Ada Admin",
            "password": password}


def _member(body: dict, role: str, password: str) -> Member:
    return Member(body["user"]["id"], body["user"]["email"], role, password,
                  body["access_token"], body["refresh_token"])


async def login(http: httpx.AsyncClient, slug: str, email: str,
                password: str = PASSWORD) -> httpx.Response:
    return await http.post("/api/v1/auth/login",
                           json={"studio": slug, "email": email, "password": password})


async def add_member(http: httpx.AsyncClient, ctx: StudioCtx, role: str,
                     password: str = PASSWORD) -> Member:
    email = f"{role}-{uuid.uuid4().hex[:8]}@{ctx.slug}.example"
    created = await http.post("/api/v1/users", headers=ctx.admin.headers,
                              json={"email": email, "name": role.title(), "password": password,
                                    "role": role})
    assert created.status_code == 201, created.text
    logged_in = await login(http, ctx.slug, email, password)
    assert logged_in.status_code == 200, logged_in.text
    return _member(logged_in.json(), role, password)


async def register_studio(http: httpx.AsyncClient,
                          roles: tuple[str, ...] = ("artist", "director")) -> StudioCtx:
    body = register_body()
    response = await http.post("/api/v1/auth/register", json=body)
    assert response.status_code == 201, response.text
    data = response.json()
    ctx = StudioCtx(data["studio"]["id"], body["studio_slug"],
                    _member(data, "admin", body["password"]))
    for role in roles:
        ctx.members[role] = await add_member(http, ctx, role)
    return ctx


async def create_key(http: httpx.AsyncClient, member: Member, **body: object) -> dict:
    response = await http.post("/api/v1/api-keys", headers=member.headers,
                               json={"name": unique("key"), **body})
    assert response.status_code == 201, response.text
    return response.json()
