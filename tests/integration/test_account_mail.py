"""Accounts by email, over HTTP, with the suite's real SMTP server (the embedded one, which
keeps each message as a file): confirm an email with its code, accept an invitation,
reset a forgotten password; a message that cannot be sent is shown to admins.

Verification runs on an Api of its own that asks for it (the session's does not: the suite
signs up studios by the thousand); invitations and resets run on the session's Api.
"""

from __future__ import annotations

import asyncio
import time
import uuid

import httpx
import pytest
from websockets.asyncio.client import connect
from websockets.exceptions import InvalidStatus

from pipelines.embedded import free_port
from pipelines.identity.verification import MAX_TRIES
from pipelines.mail.outbox import Outbox
from pipelines.mail.transport import SmtpConfig, SmtpTransport
from pipelines.mail.worker import MailWorker
from tests.support.identity import PASSWORD, bearer, register_body, register_studio
from tests.support.live import ws_url
from tests.support.mail import Mailbox, body, code_in, token_in, verify_email

NEW_PASSWORD = "a brand new passphrase"


@pytest.fixture(scope="session")
def mailbox(settings) -> Mailbox:
    return Mailbox(settings.mail_dir)


@pytest.fixture(scope="module")
def verifying_api(services, settings, api):
    """The Api once more, beside the session's, with email verification on."""
    from ray import serve

    from serve import deployments
    from tests.support.services import test_settings, wait_ready

    strict = test_settings(services, services.overrides, email_verification=True,
                           api_port=settings.api_port, api_replicas=1)
    serve.run(deployments.build_app(strict), name="verifying", route_prefix="/verifying")
    base = f"http://127.0.0.1:{settings.api_port}/verifying"
    wait_ready(base)
    try:
        yield base
    finally:
        serve.delete("verifying")


@pytest.fixture
async def strict(verifying_api):
    async with httpx.AsyncClient(base_url=verifying_api, timeout=30) as client:
        yield client


async def sign_up(http: httpx.AsyncClient) -> tuple[dict, dict[str, str]]:
    body_ = register_body()
    response = await http.post("/api/v1/auth/register", json=body_)
    assert response.status_code == 201, response.text
    return body_, bearer(response.json()["access_token"])


def error_code(response: httpx.Response) -> str:
    return response.json()["error"]["code"]


async def test_a_new_studio_confirms_its_email_before_it_works(strict, mailbox, verifying_api):
    signup, headers = await sign_up(strict)
    me = await strict.get("/api/v1/auth/me", headers=headers)
    assert me.status_code == 200 and me.json()["user"]["email_verified"] is False
    # Until confirmed: nothing but reading itself and confirming.
    for method, path in (("GET", "/api/v1/assets"), ("POST", "/api/v1/api-keys"),
                         ("GET", "/api/v1/users")):
        refused = await strict.request(method, path, headers=headers, json={"name": "k"})
        assert refused.status_code == 403 and error_code(refused) == "email_unverified"
    with pytest.raises(InvalidStatus) as socket:
        await connect(ws_url(verifying_api), subprotocols=["bearer", headers["Authorization"]
                                                           .split()[1]])
    assert socket.value.response.status_code == 403
    message = await mailbox.wait(signup["email"], "Confirm your email")
    code = code_in(message)
    assert code not in message["Subject"]  # subjects are listed for admins; codes are not
    wrong = f"{(int(code) + 1) % 10**6:06d}"
    answer = await strict.post("/api/v1/auth/verify", json={"code": wrong}, headers=headers)
    assert answer.status_code == 422 and error_code(answer) == "wrong_code"
    for bad in ("12345", "abcdef", "1234567"):
        answer = await strict.post("/api/v1/auth/verify", json={"code": bad}, headers=headers)
        assert answer.status_code == 422 and error_code(answer) == "validation_failed"
    await verify_email(strict, mailbox, signup["email"], headers)
    assert (await strict.get("/api/v1/assets", headers=headers)).status_code == 200
    again = await strict.post("/api/v1/auth/verify/resend", headers=headers)
    assert again.status_code == 422 and error_code(again) == "already_verified"


async def test_guessing_a_code_is_cut_off_and_new_codes_are_rationed(strict, mailbox):
    signup, headers = await sign_up(strict)
    code = code_in(await mailbox.wait(signup["email"], "Confirm your email"))
    wrong = f"{(int(code) + 1) % 10**6:06d}"
    for _ in range(MAX_TRIES):
        answer = await strict.post("/api/v1/auth/verify", json={"code": wrong}, headers=headers)
        assert error_code(answer) == "wrong_code"
    # The right code no longer helps: the tries are spent.
    cut = await strict.post("/api/v1/auth/verify", json={"code": code}, headers=headers)
    assert cut.status_code == 429 and error_code(cut) == "too_many_tries"
    soon = await strict.post("/api/v1/auth/verify/resend", headers=headers)
    assert soon.status_code == 429 and error_code(soon) == "code_sent_recently"
    assert 1 <= int(soon.headers["Retry-After"]) <= 60
    me = (await strict.get("/api/v1/auth/me", headers=headers)).json()
    assert me["user"]["email_verified"] is False


async def test_an_invited_user_sets_a_password_through_the_link(http, mailbox):
    studio = await register_studio(http, roles=())
    email = f"invitee-{uuid.uuid4().hex[:8]}@example.com"
    invited = await http.post("/api/v1/invitations", headers=studio.admin.headers,
                              json={"email": email, "name": "Ines", "role": "td"})
    assert invited.status_code == 201, invited.text
    invitation = invited.json()
    assert invitation["state"] == "pending" and invitation["role"] == "td"
    pending = await http.get("/api/v1/invitations", params={"pending": "true"},
                             headers=studio.admin.headers)
    assert [i["email"] for i in pending.json()["items"]] == [email]
    users = (await http.get("/api/v1/users", headers=studio.admin.headers)).json()["items"]
    assert [u["invited"] for u in users if u["email"] == email] == [True]
    # Nobody logs in as an invitee before they chose a password.
    login = {"studio": studio.slug, "email": email, "password": PASSWORD}
    assert (await http.post("/api/v1/auth/login", json=login)).status_code == 401
    message = await mailbox.wait(email, "invited you")
    assert "as td" in body(message)
    token = token_in(message)
    accepted = await http.post("/api/v1/auth/invitations/accept", json={
        "token": token, "password": NEW_PASSWORD, "name": "Inès"})
    assert accepted.status_code == 200, accepted.text
    user = accepted.json()["user"]
    assert (user["role"], user["name"], user["email_verified"], user["invited"]) == (
        "td", "Inès", True, False)
    login["password"] = NEW_PASSWORD
    assert (await http.post("/api/v1/auth/login", json=login)).status_code == 200
    reused = await http.post("/api/v1/auth/invitations/accept", json={
        "token": token, "password": "someone else's pass"})
    assert reused.status_code == 422 and error_code(reused) == "link_invalid"
    audit = (await http.get("/api/v1/audit", headers=studio.admin.headers)).json()["items"]
    assert {"user.invited", "user.invitation_accepted"} <= {e["action"] for e in audit}


async def test_a_revoked_invitation_link_stops_working(http, mailbox):
    studio = await register_studio(http, roles=())
    email = f"revoked-{uuid.uuid4().hex[:8]}@example.com"
    invitation = (await http.post("/api/v1/invitations", headers=studio.admin.headers,
                                  json={"email": email, "name": "Rae"})).json()
    token = token_in(await mailbox.wait(email, "invited you"))
    revoked = await http.delete(f"/api/v1/invitations/{invitation['id']}",
                                headers=studio.admin.headers)
    assert revoked.status_code == 204
    refused = await http.post("/api/v1/auth/invitations/accept",
                              json={"token": token, "password": NEW_PASSWORD})
    assert refused.status_code == 422 and error_code(refused) == "link_invalid"
    twice = await http.delete(f"/api/v1/invitations/{invitation['id']}",
                              headers=studio.admin.headers)
    assert twice.status_code == 409 and error_code(twice) == "invitation_ended"
    users = (await http.get("/api/v1/users", headers=studio.admin.headers)).json()["items"]
    assert email not in [u["email"] for u in users]
    # Invited again: a fresh link that works.
    again = await http.post("/api/v1/invitations", headers=studio.admin.headers,
                            json={"email": email, "name": "Rae"})
    assert again.status_code == 201
    fresh = token_in(await mailbox.wait(email, "invited you", count=2))
    assert (await http.post("/api/v1/auth/invitations/accept", json={
        "token": fresh, "password": NEW_PASSWORD})).status_code == 200


async def test_inviting_an_existing_member_or_a_bad_email_is_refused(http):
    studio = await register_studio(http, roles=())
    taken = await http.post("/api/v1/invitations", headers=studio.admin.headers, json={
        "email": studio.admin.email, "name": "Me"})
    assert taken.status_code == 409 and error_code(taken) == "email_taken"
    for bad in ({"email": "not-an-email", "name": "X"}, {"email": "a@b.co"},
                {"email": "a@b.co", "name": "X", "role": "owner"},
                {"email": "a@b.co", "name": "X", "studio_id": studio.studio_id}):
        answer = await http.post("/api/v1/invitations", headers=studio.admin.headers, json=bad)
        assert answer.status_code == 422, (bad, answer.text)


async def test_a_password_reset_ends_every_session(http, mailbox):
    studio = await register_studio(http, roles=())
    admin = studio.admin
    asked = await http.post("/api/v1/auth/password/reset",
                            json={"studio": studio.slug, "email": admin.email})
    assert asked.status_code == 202
    token = token_in(await mailbox.wait(admin.email, "Reset your"))
    short = await http.post("/api/v1/auth/password/reset/confirm",
                            json={"token": token, "new_password": "short"})
    assert short.status_code == 422 and error_code(short) == "validation_failed"
    done = await http.post("/api/v1/auth/password/reset/confirm",
                           json={"token": token, "new_password": NEW_PASSWORD})
    assert done.status_code == 204, done.text
    old_access = await http.get("/api/v1/auth/me", headers=admin.headers)
    assert old_access.status_code == 401
    old_refresh = await http.post("/api/v1/auth/refresh",
                                  json={"refresh_token": admin.refresh_token})
    assert old_refresh.status_code == 401
    login = {"studio": studio.slug, "email": admin.email, "password": PASSWORD}
    assert (await http.post("/api/v1/auth/login", json=login)).status_code == 401
    login["password"] = NEW_PASSWORD
    assert (await http.post("/api/v1/auth/login", json=login)).status_code == 200
    told = await mailbox.wait(admin.email, "password changed")
    assert "every session" in body(told)
    reused = await http.post("/api/v1/auth/password/reset/confirm",
                             json={"token": token, "new_password": "yet another passphrase"})
    assert reused.status_code == 422 and error_code(reused) == "link_invalid"


async def test_a_reset_request_says_nothing_about_the_account(http, db, mailbox):
    studio = await register_studio(http, roles=())
    stranger = f"nobody-{uuid.uuid4().hex[:8]}@example.com"
    answers = [await http.post("/api/v1/auth/password/reset", json=asked) for asked in (
        {"studio": studio.slug, "email": studio.admin.email},
        {"studio": studio.slug, "email": stranger},
        {"studio": f"no-{uuid.uuid4().hex[:8]}", "email": studio.admin.email})]
    assert {a.status_code for a in answers} == {202}
    assert len({a.text for a in answers}) == 1
    await mailbox.wait(studio.admin.email, "Reset your")  # the known one's link came
    for _ in range(100):  # and the stranger's request was looked at, and sent nothing
        asked = await db["password_resets"].find_one({"email": stranger})
        if asked["state"] == "void":
            break
        await asyncio.sleep(0.2)
    assert asked["state"] == "void" and "digest" not in asked
    assert mailbox.messages(stranger) == []
    # A link for an account never sent one, and a made-up one, get the same answer.
    for token in ("x" * 43, "nope"):
        answer = await http.post("/api/v1/auth/password/reset/confirm",
                                 json={"token": token, "new_password": NEW_PASSWORD})
        assert answer.status_code == 422 and error_code(answer) == "link_invalid"


async def test_a_message_that_cannot_be_sent_is_shown_to_admins(http, db, settings, mailbox):
    studio = await register_studio(http, roles=("artist",))
    to = f"unlucky-{uuid.uuid4().hex[:8]}@example.com"
    # An hour ahead: the session's own senders leave it alone until it is sent again.
    outbox = Outbox(db["mail_outbox"], max_attempts=2, retry_initial_s=0.01,
                    clock=lambda: time.time() + 3600)
    await outbox.queue(studio.studio_id, "invitation", to, "Unlucky", "a body with a link")
    nowhere = SmtpConfig.of(settings.model_copy(update={"smtp_port": free_port()}))
    worker = MailWorker(outbox, SmtpTransport(nowhere))  # a port nothing listens on
    assert await worker.run_once() == 0
    listed = await http.get("/api/v1/mail", params={"state": "queued"},
                            headers=studio.admin.headers)
    [waiting] = [m for m in listed.json()["items"] if m["to"] == to]
    assert waiting["attempts"] == 1 and "Connection" in waiting["last_error"]
    await asyncio.sleep(0.05)
    assert await worker.run_once() == 0
    listed = await http.get("/api/v1/mail", params={"state": "failed"},
                            headers=studio.admin.headers)
    [message] = [m for m in listed.json()["items"] if m["to"] == to]
    assert message["attempts"] == 2 and "body" not in message
    refused = await http.get("/api/v1/mail", headers=studio.artist.headers)
    assert refused.status_code == 403
    again = await http.post(f"/api/v1/mail/{message['id']}/retry",
                            headers=studio.admin.headers)
    assert again.status_code == 200 and again.json()["state"] == "queued"
    sent = await mailbox.wait(to, "Unlucky")  # the session's sender delivers it this time
    assert body(sent).strip() == "a body with a link"
    twice = await http.post(f"/api/v1/mail/{message['id']}/retry",
                            headers=studio.admin.headers)
    assert twice.status_code == 409 and error_code(twice) == "mail_not_failed"
    for _ in range(50):  # the sender notes it sent once the server took it
        stored = await db["mail_outbox"].find_one({"_id": message["id"]})
        if stored["state"] == "sent":
            break
        await asyncio.sleep(0.2)
    assert stored["state"] == "sent" and "body" not in stored  # links do not linger


async def test_changing_a_password_tells_the_owner_by_email(http, mailbox):
    studio = await register_studio(http, roles=())
    changed = await http.post("/api/v1/auth/password", headers=studio.admin.headers, json={
        "current_password": PASSWORD, "new_password": NEW_PASSWORD})
    assert changed.status_code == 200, changed.text
    told = await mailbox.wait(studio.admin.email, "password changed")
    assert "reset your password now" in body(told)
