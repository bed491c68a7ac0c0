"""Identity services against the real database, with a clock the test moves.

Time-bound rules (idle and absolute refresh lifetimes, key expiry, throttle windows) are
checked here without sleeping; the HTTP tests cover the same services through Serve.
"""

from __future__ import annotations

import asyncio
import statistics
import time
import uuid

import pytest

from pipelines.errors import InvalidInput, RateLimited, Unauthenticated
from pipelines.identity.mail_models import (
    InvitationAccept,
    InvitationCreate,
    PasswordResetConfirm,
    PasswordResetRequest,
)
from pipelines.identity.models import ApiKeyCreate, LoginRequest, Principal, RegisterRequest
from pipelines.identity.permissions import Role
from pipelines.identity.service import Identity
from pipelines.identity.throttle import Limit, ThrottlePolicy
from tests.support.identity import PASSWORD
from tests.support.mail import Mailbox, token_in


class Clock:
    def __init__(self) -> None:
        # Real time, so TTL dates written at insert stay in the future.
        self.now = time.time()

    def __call__(self) -> float:
        return self.now


@pytest.fixture(scope="session")
async def database(db):
    await db.ensure_indexes()  # the identity modules declared theirs on import
    return db


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def identity(database, settings, clock) -> Identity:
    return Identity(database, settings, clock=clock)


async def register(identity: Identity, password: str = PASSWORD):
    slug = f"svc-{uuid.uuid4().hex[:12]}"
    body = RegisterRequest(studio_name=slug, studio_slug=slug, email=f"a@{slug}.example",
                           name="Admin", password=password)
    return body, await identity.users.register(body, "127.0.0.1")


async def refused(awaitable, code: str) -> Unauthenticated:
    with pytest.raises(Unauthenticated) as caught:
        await awaitable
    assert caught.value.code == code
    return caught.value


async def test_access_tokens_expire_after_fifteen_minutes(identity, clock):
    _, result = await register(identity)
    assert (await identity.authenticator.authenticate(result.access_token)).role == "admin"
    clock.now += 15 * 60
    await refused(identity.authenticator.authenticate(result.access_token), "token_expired")


async def test_an_idle_refresh_token_expires(identity, clock, settings):
    _, result = await register(identity)
    clock.now += settings.refresh_token_idle_s - 1
    pair = await identity.sessions.rotate(result.refresh_token)
    clock.now += settings.refresh_token_idle_s
    await refused(identity.sessions.rotate(pair.refresh_token), "refresh_token_expired")


async def test_a_family_ends_after_its_absolute_lifetime_however_active(identity, clock,
                                                                         settings):
    _, result = await register(identity)
    token, started = result.refresh_token, clock.now
    step = settings.refresh_token_idle_s - 60
    while clock.now + step < started + settings.refresh_token_ttl_s:
        clock.now += step
        token = (await identity.sessions.rotate(token)).refresh_token
    clock.now = started + settings.refresh_token_ttl_s
    await refused(identity.sessions.rotate(token), "refresh_token_expired")


async def test_concurrent_rotations_one_wins_then_the_family_is_revoked(identity):
    _, result = await register(identity)
    outcomes = await asyncio.gather(
        *(identity.sessions.rotate(result.refresh_token) for _ in range(2)),
        return_exceptions=True,
    )
    winners = [o for o in outcomes if not isinstance(o, BaseException)]
    losers = [o for o in outcomes if isinstance(o, Unauthenticated)]
    assert len(winners) == 1 and len(losers) == 1, outcomes
    assert losers[0].code == "refresh_token_reused"
    await refused(identity.sessions.rotate(winners[0].refresh_token), "refresh_token_revoked")
    await refused(identity.authenticator.authenticate(winners[0].access_token), "token_revoked")


async def test_api_key_expiry_and_last_used(identity, clock):
    _, result = await register(identity)
    admin = await identity.authenticator.authenticate(result.access_token)
    created = await identity.api_keys.create(admin, ApiKeyCreate(name="ci", expires_in_days=1))
    used = await identity.authenticator.authenticate(created.key)
    assert used.kind == "api_key" and used.key_id == created.id

    async def last_used() -> float | None:
        page = await identity.api_keys.list(admin, limit=10, cursor=None)
        item = next(k for k in page.items if k.id == created.id)
        return item.last_used_at.timestamp() if item.last_used_at else None

    first = await last_used()
    assert first == pytest.approx(clock.now, abs=0.01)
    clock.now += 30  # within the recording resolution: not written again
    await identity.authenticator.authenticate(created.key)
    assert await last_used() == first
    clock.now += 60
    await identity.authenticator.authenticate(created.key)
    assert await last_used() == pytest.approx(clock.now, abs=0.01)
    clock.now += 86400
    await refused(identity.authenticator.authenticate(created.key), "invalid_api_key")


def login_body(body: RegisterRequest, password: str) -> LoginRequest:
    return LoginRequest(studio=body.studio_slug, email=body.email, password=password)


async def test_the_account_never_gets_more_than_100_failures_an_hour(identity, clock):
    body, _ = await register(identity)
    clock.now = (clock.now // 3600 + 1) * 3600  # the start of an hour window
    failures = 0
    for minute in range(0, 120, 5):  # two hours, ten guesses every five minutes
        for _ in range(10):
            try:
                await identity.login.login(login_body(body, "wrong password"), f"10.1.{minute}.1")
            except RateLimited as throttled:
                assert throttled.retry_after_s >= 1
            except Unauthenticated:
                failures += 1
        clock.now += 300
    # 50 per clock hour: any rolling hour spans two windows, so at most 100.
    assert failures == 100


async def test_the_per_address_limit_counts_failures_over_all_accounts(database, settings,
                                                                        clock):
    policy = ThrottlePolicy(per_account=(Limit(1000, 300),), per_address=(Limit(5, 300),))
    identity = Identity(database, settings, clock=clock, throttle=policy)
    body, _ = await register(identity)
    address = f"10.2.{uuid.uuid4().int % 250}.{uuid.uuid4().int % 250}"
    for attempt in range(5):
        wrong = login_body(body, "wrong").model_copy(update={"email": f"n{attempt}@x.example"})
        await refused(identity.login.login(wrong, address), "invalid_credentials")
    with pytest.raises(RateLimited) as caught:  # the right password, but from that address
        await identity.login.login(login_body(body, PASSWORD), address)
    assert 1 <= caught.value.retry_after_s <= 300
    assert (await identity.login.login(login_body(body, PASSWORD), "10.3.0.1")).user
    clock.now += 300
    assert (await identity.login.login(login_body(body, PASSWORD), address)).user


async def test_a_burst_of_concurrent_guesses_cannot_pass_the_limit(identity):
    body, _ = await register(identity)
    outcomes = await asyncio.gather(
        *(identity.login.login(login_body(body, f"guess {i:04d}"), "10.4.0.1") for i in range(25)),
        return_exceptions=True,
    )
    wrong = [o for o in outcomes if isinstance(o, Unauthenticated)]
    throttled = [o for o in outcomes if isinstance(o, RateLimited)]
    assert len(wrong) + len(throttled) == 25
    assert len(wrong) <= 10, "at most 10 failures per 5 minutes per account"
    assert len(throttled) >= 15


async def test_success_does_not_count_as_a_failure(identity):
    body, _ = await register(identity)
    for _ in range(15):
        assert (await identity.login.login(login_body(body, PASSWORD), "10.5.0.1")).user


async def test_unknown_email_and_wrong_password_take_similar_time(database, settings, clock):
    slow = settings.model_copy(update={"bcrypt_rounds": 10})  # bcrypt dominates the noise
    identity = Identity(database, slow, clock=clock,
                        throttle=ThrottlePolicy((Limit(1000, 60),), (Limit(1000, 60),)))
    body, _ = await register(identity)
    unknown = login_body(body, "wrong password").model_copy(update={"email": "nobody@x.example"})
    wrong = login_body(body, "wrong password")

    async def timed(request: LoginRequest) -> float:
        started = time.perf_counter()
        await refused(identity.login.login(request, "10.6.0.1"), "invalid_credentials")
        return time.perf_counter() - started

    samples: dict[str, list[float]] = {"unknown": [], "wrong": []}
    for _ in range(5):
        samples["unknown"].append(await timed(unknown))
        samples["wrong"].append(await timed(wrong))
    ratio = statistics.median(samples["unknown"]) / statistics.median(samples["wrong"])
    assert 0.6 < ratio < 1.6, samples


async def test_reset_requests_and_refused_links_take_the_same_time_for_anyone(
        database, settings, clock):
    """As login: what an attacker can time says nothing about which accounts exist."""
    slow = settings.model_copy(update={"bcrypt_rounds": 10})  # bcrypt dominates the noise
    identity = Identity(database, slow, clock=clock)
    body, _ = await register(identity)
    known = PasswordResetRequest(studio=body.studio_slug, email=body.email)
    unknown = PasswordResetRequest(studio=body.studio_slug, email="nobody@x.example")

    async def timed(call) -> float:
        started = time.perf_counter()
        try:
            await call
        except InvalidInput as exc:
            assert exc.code == "link_invalid"
        return time.perf_counter() - started

    requests: dict[str, list[float]] = {"known": [], "unknown": []}
    for _ in range(15):
        requests["known"].append(await timed(identity.resets.request(known, "10.7.0.1")))
        requests["unknown"].append(await timed(identity.resets.request(unknown, "10.7.0.1")))
    ratio = statistics.median(requests["unknown"]) / statistics.median(requests["known"])
    assert 0.5 < ratio < 2.0, requests
    # Links that were real (used once, then refused) and links never made: refused alike,
    # as slowly (the new password is hashed first, whatever the link).
    admin = await identity.users.users.find_one({"email": body.email})
    principal = Principal(user_id=admin["_id"], studio_id=admin["studio_id"], role=Role.ADMIN,
                          kind="session")
    invitee = f"i-{uuid.uuid4().hex[:8]}@x.example"
    await identity.invitations.invite(principal, InvitationCreate(email=invitee, name="I"))
    await identity.resets.process()
    mailbox = Mailbox(settings.mail_dir)  # the session's senders deliver them
    invite = token_in(await mailbox.wait(invitee, "invited you"))
    reset = token_in(await mailbox.wait(body.email, "Reset your"))
    await identity.invitations.accept(InvitationAccept(token=invite, password=PASSWORD), "x")
    await identity.resets.confirm(PasswordResetConfirm(token=reset, new_password=PASSWORD), "x")
    calls = {
        "invitation used": lambda: identity.invitations.accept(
            InvitationAccept(token=invite, password=PASSWORD), "10.7.0.2"),
        "invitation unknown": lambda: identity.invitations.accept(
            InvitationAccept(token="made-up", password=PASSWORD), "10.7.0.2"),
        "reset used": lambda: identity.resets.confirm(
            PasswordResetConfirm(token=reset, new_password=PASSWORD), "10.7.0.2"),
        "reset unknown": lambda: identity.resets.confirm(
            PasswordResetConfirm(token="made-up", new_password=PASSWORD), "10.7.0.2"),
    }
    links: dict[str, list[float]] = {name: [] for name in calls}
    for _ in range(5):
        for name, call in calls.items():
            links[name].append(await timed(call()))
    for flow in ("invitation", "reset"):
        ratio = (statistics.median(links[f"{flow} unknown"])
                 / statistics.median(links[f"{flow} used"]))
        assert 0.6 < ratio < 1.6, links
