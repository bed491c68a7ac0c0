"""The client's HTTP session through its transport (httpx's, here in-process): one token
refresh for many requests that found the token expired, retries only where harmless, and
the error contract as exceptions carrying the request id."""

from __future__ import annotations

import asyncio
import json

import httpx
import pytest
from studio_farm._http import Session, Tokens
from studio_farm.errors import InvalidInput, NotFound, RateLimited, Unavailable


class Server:
    """Answers like the API: an expired access token is a 401 until refreshed."""

    def __init__(self) -> None:
        self.refreshes = 0
        self.valid = "new-access"
        self.calls: list[str] = []
        self.plan: list[httpx.Response | Exception] = []

    async def __call__(self, request: httpx.Request) -> httpx.Response:
        self.calls.append(f"{request.method} {request.url.path}")
        if request.url.path == "/api/v1/auth/refresh":
            self.refreshes += 1
            await asyncio.sleep(0.05)  # long enough for the other requests to pile up
            assert json.loads(request.content) == {"refresh_token": "old-refresh"}
            return httpx.Response(200, json={"access_token": self.valid,
                                             "refresh_token": "new-refresh"})
        if self.plan:
            answer = self.plan.pop(0)
            if isinstance(answer, Exception):
                raise answer
            return answer
        if request.headers.get("authorization") != f"Bearer {self.valid}":
            return httpx.Response(401, json={"error": {
                "code": "token_expired", "message": "expired", "details": [],
                "request_id": "r-1"}})
        return httpx.Response(200, json={"ok": True})


def session(server: Server, **options) -> Session:
    return Session("http://farm", tokens=Tokens("old-access", "old-refresh"),
                   transport=httpx.MockTransport(server), attempts=3, **options)


async def test_many_requests_with_an_expired_token_make_one_refresh():
    server, kept = Server(), []
    farm = session(server, on_tokens=kept.append)
    answers = await asyncio.gather(*(farm.call("GET", "/jobs") for _ in range(8)))
    assert answers == [{"ok": True}] * 8
    assert server.refreshes == 1 and kept == [Tokens("new-access", "new-refresh")]


async def test_transient_answers_are_retried_and_a_lost_post_is_not():
    server = Server()
    server.valid = "old-access"
    server.plan = [httpx.Response(503, json={}), httpx.Response(429, headers={
        "Retry-After": "0"}, json={}), httpx.Response(200, json={"ok": 1})]
    farm = session(server)
    assert await farm.call("GET", "/jobs") == {"ok": 1}
    server.plan = [httpx.ReadError("connection reset")]
    with pytest.raises(Unavailable):
        await farm.call("POST", "/jobs", json={})  # it may have been received: not re-sent
    assert server.calls.count("POST /api/v1/jobs") == 1


async def test_errors_carry_the_code_the_fields_and_the_request_id():
    server = Server()
    server.valid = "old-access"
    server.plan = [httpx.Response(422, json={"error": {
        "code": "invalid_layers", "message": "layer 'comp': ...", "request_id": "r-9",
        "details": [{"loc": ["body", "layers", "comp"], "msg": "cycle"}]}}),
        httpx.Response(404, json={"error": {"code": "job_not_found", "message": "no such job",
                                            "details": [], "request_id": "r-10"}})]
    farm = session(server)
    with pytest.raises(InvalidInput) as bad:
        await farm.call("POST", "/jobs", json={})
    assert bad.value.field_errors == {"body.layers.comp": "cycle"}
    assert "r-9" in str(bad.value)
    with pytest.raises(NotFound) as missing:
        await farm.call("GET", "/jobs/x")
    assert (missing.value.code, missing.value.request_id) == ("job_not_found", "r-10")
    server.plan = [httpx.Response(429, headers={"Retry-After": "0"}, json={})] * 3
    with pytest.raises(RateLimited) as limited:
        await farm.call("GET", "/jobs")
    assert limited.value.retry_after_s == 0


async def test_a_job_is_polled_when_no_socket_can_be_had():
    from studio_farm.jobs import Follower

    answers = iter(["running", "running", "running", "completed"])

    async def api(request: httpx.Request) -> httpx.Response:
        return httpx.Response(200, json=JOB | {"status": next(answers)})

    farm = Session("http://127.0.0.1:9", api_key="sfk_x", transport=httpx.MockTransport(api))
    follower = Follower(farm, "j", poll_s=0.01)  # port 9: nothing listens, no socket
    done = await follower.run(timeout_s=30)
    assert done.status == "completed" and follower.reconnects >= 3


async def test_a_download_continues_where_it_stopped(tmp_path):
    import hashlib

    from studio_farm.transfer import Transfers

    data = bytes(range(256)) * 1000
    partial = tmp_path / "movie.mp4.part"
    partial.write_bytes(data[:1000])
    asked = []

    async def storage(request: httpx.Request) -> httpx.Response:
        asked.append(request.headers.get("range"))
        return httpx.Response(206, content=data[1000:])

    transfers = Transfers(Session("http://farm", api_key="sfk_x"))
    transfers.storage = httpx.AsyncClient(transport=httpx.MockTransport(storage))
    report = await transfers.download("http://storage/x", tmp_path / "movie.mp4",
                                      size=len(data), sha256=hashlib.sha256(data).hexdigest(),
                                      progress=False)
    assert asked == ["bytes=1000-"] and report.resumed and report.bytes_sent == len(data) - 1000
    assert (tmp_path / "movie.mp4").read_bytes() == data and not partial.exists()


JOB = {"id": "j", "kind": "command", "name": "n", "priority": 1, "submitted_by": "u",
       "requirements": {}, "max_attempts": 1, "task_timeout_s": 1.0, "task_count": 1,
       "counts": {}, "reason": None, "bad_nodes": [], "target": None, "render": None,
       "layers": [], "after": [], "waiting_on": [], "created_at": "t", "updated_at": None,
       "finished_at": None}
