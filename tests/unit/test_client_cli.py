"""The CLI's own logic: argument lists after `--`, the live per-layer view a terminal
gets while a job runs, what a person reads of an error or a job, the server's address as
typed, and an upload the server refuses (against an in-process stand-in for the API; the
whole of it is tested against `farm up`: tests/system)."""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import os
import sys

import httpx
import pytest
from studio_farm import _http, cli
from studio_farm.errors import InvalidInput
from studio_farm.models import Job, Task

TASK = {"job_id": "j", "frames": [], "depends_on": [], "waits_for_layers": [], "attempt": 1,
        "node_id": None, "lease_expires_at": None, "progress": 0.0, "kind": "command",
        "exit_code": None, "error_class": None, "error": None, "log_key": None, "outputs": [],
        "started_at": None, "finished_at": None, "retry_at": None, "metrics": {},
        "history": []}


def test_everything_after_a_double_dash_is_the_command():
    top, _ = cli.parser()
    args = cli.parse(top, ["submit", "command", "--frames", "1-3", "--wait", "--",
                           "render", "--frames", "{frame}"])
    assert (args.what, args.frames, args.wait) == ("command", "1-3", True)
    assert args.argv == ["render", "--frames", "{frame}"]


class _Tty(io.StringIO):
    def isatty(self) -> bool:
        return True


class _Farm:
    async def tasks(self, job_id):
        return [Task.model_validate(TASK | {"id": f"t{i}", "index": i, "layer": layer,
                                            "state": state})
                for i, (layer, state) in enumerate([("render", "succeeded"),
                                                    ("render", "running"),
                                                    ("comp", "waiting")])]

    async def follow(self, job_id, on_event):
        await on_event({"type": "job.progress", "data": {}})
        return Job.model_construct(id=job_id, status="completed", reason=None)


async def test_a_terminal_sees_each_layer_s_progress(monkeypatch):
    screen = _Tty()
    monkeypatch.setattr(cli.sys, "stderr", screen)
    args = argparse.Namespace(json=False)
    job = await cli._follow(_Farm(), "0123456789", args)
    assert job.status == "completed"
    drawn = screen.getvalue().splitlines()
    assert drawn[0] == "job 01234567  job.progress"
    assert drawn[1].split()[:3] == ["render", "1/2", "done"]
    assert drawn[2].split()[:3] == ["comp", "0/1", "done"]


@pytest.fixture(autouse=True)
def _own_config(tmp_path, monkeypatch):
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "config"))
    for name in ("FARM_URL", "FARM_API_KEY"):
        monkeypatch.delenv(name, raising=False)


def test_an_error_lists_each_of_its_details_on_a_line(capsys):
    refused = InvalidInput("the request is not valid", code="validation_failed",
                           request_id="r-1", details=[
                               {"loc": ["body", "chunk_size"], "type": "greater_than_equal",
                                "msg": "Input should be greater than or equal to 1"},
                               {"loc": ["body", "settings", "frames"], "msg": "not a range",
                                "type": "value_error"},
                               {"declared": "text/plain", "found": "video/mp4"}])
    cli._complain(refused, argparse.Namespace(json=False))
    assert capsys.readouterr().err.splitlines() == [
        "error: validation_failed: the request is not valid (request r-1)",
        "  chunk_size: Input should be greater than or equal to 1",
        "  settings.frames: not a range",
        "  declared: text/plain, found: video/mp4"]


def test_counts_read_as_words_not_as_a_python_dict():
    job = JOB | {"status": "running", "task_count": 4,
                 "counts": {"succeeded": 3, "running": 1}}
    assert cli._line(job) == "j1  n  command  running  4  succeeded 3, running 1"


@pytest.mark.parametrize("typed, stored", [
    ("http://127.0.0.1:8000/api/v1", "http://127.0.0.1:8000"),  # the banner's "API:"
    ("http://farm:8000/api/v1/", "http://farm:8000"),
    ("https://farm.example/", "https://farm.example"),
    ("127.0.0.1:8000", "http://127.0.0.1:8000"),
    ("localhost:8000/api/v1", "http://localhost:8000"),
    ("[::1]:8000", "http://[::1]:8000")])
def test_the_server_s_address_is_read_as_people_type_it(typed, stored):
    assert _http.base_url(typed) == stored


def test_a_remote_host_without_a_scheme_is_not_guessed():
    with pytest.raises(ValueError, match="http://farm:8000 or https://farm:8000"):
        _http.base_url("farm:8000")  # plain HTTP would carry the password in the clear


class Api:
    """The API in-process: what it was asked, and its answers (an asset, an upload in one
    part, and then the file judged)."""

    def __init__(self, complete: httpx.Response | None = None,
                 begin: httpx.Response | None = None) -> None:
        self.calls: list[str] = []
        self.complete, self.begin = complete, begin

    def __call__(self, request: httpx.Request) -> httpx.Response:
        call = f"{request.method} {request.url.host}:{request.url.port}{request.url.path}"
        self.calls.append(call)
        path = request.url.path
        if path == "/api/v1/auth/login":
            return httpx.Response(200, json={"access_token": "a", "refresh_token": "r"})
        if path == "/api/v1/auth/me":
            return httpx.Response(200, json={"user": {}, "studio": {}, "credential": {}})
        if path == "/api/v1/assets" and request.method == "POST":
            return httpx.Response(201, json=ASSET)
        if path == "/api/v1/assets/a1/uploads":
            return self.begin or httpx.Response(201, json={
                "id": "u1", "part_count": 1, "part_size": 1 << 20})
        if path == "/api/v1/uploads/u1/parts":
            return httpx.Response(200, json={"part_urls": [{"part": 1, "url": "http://s3/p1"}]})
        if path == "/p1":
            return httpx.Response(200)
        if path == "/api/v1/uploads/u1/complete":
            return self.complete or httpx.Response(201, json={})
        if path == "/api/v1/assets/a1" and request.method == "DELETE":
            return httpx.Response(204)
        if path == "/api/v1/assets/a1/versions":
            return httpx.Response(200, json={"items": []})
        return httpx.Response(404, json={"error": {"code": "not_found",
                                                   "message": "no such route"}})


@pytest.fixture
def api(monkeypatch):
    """Every AsyncFarm the CLI makes talks to `api` (and its storage too)."""
    server = Api()

    class InProcess(cli.AsyncFarm):
        def __init__(self, url, **options):
            super().__init__(url, transport=httpx.MockTransport(server),
                             **options)
            self.transfers.storage = httpx.AsyncClient(
                transport=httpx.MockTransport(server))

    monkeypatch.setattr(cli, "AsyncFarm", InProcess)
    return server


@pytest.mark.parametrize("typed", ["http://127.0.0.1:8000/api/v1", "127.0.0.1:8000"])
def test_login_takes_the_api_s_address_or_no_scheme_and_keeps_the_server_s(
        typed, api, monkeypatch, tmp_path):
    monkeypatch.setattr(sys, "stdin", io.StringIO("secret\n"))
    assert cli.main(["login", typed, "--studio", "s", "--email", "e",
                     "--password-stdin"]) == 0
    assert api.calls[0] == "POST 127.0.0.1:8000/api/v1/auth/login"
    kept = json.loads((tmp_path / "config" / "studio-farm" / "credentials.json").read_text())
    assert kept["url"] == "http://127.0.0.1:8000"


UPLOAD = ["upload", "notes.txt", "--new-asset", "notes", "--kind", "plate",
          "--url", "http://farm:8000", "--api-key", "sfk_x"]


def test_a_refused_file_leaves_no_empty_asset_behind(api, capsys, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "notes.txt").write_text("not a plate")
    api.complete = httpx.Response(415, json={"error": {
        "code": "file_type_not_allowed", "request_id": "r-2",
        "message": "the file's content is not an allowed studio media type"}})
    assert cli.main(UPLOAD) == cli.API_ERROR
    assert "file_type_not_allowed" in capsys.readouterr().err
    assert api.calls[-1] == "DELETE farm:8000/api/v1/assets/a1"
    assert os.listdir(tmp_path) == ["notes.txt"]  # no upload state left to resume either


def test_an_upload_cut_short_keeps_its_asset_and_says_how_to_go_on(api, capsys, tmp_path,
                                                                   monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "notes.txt").write_text("x")
    api.begin = httpx.Response(429, headers={"Retry-After": "0"}, json={"error": {
        "code": "too_many_uploads", "message": "20 uploads are open"}})
    assert cli.main(UPLOAD) == cli.API_ERROR
    assert not any(call.startswith("DELETE") for call in api.calls)
    assert "farm upload notes.txt --asset a1" in capsys.readouterr().err


def test_a_version_the_asset_lacks_is_a_farm_answer_not_a_usage_error(api, capsys):
    code = cli.main(["download", "a1", "7", "--url", "http://farm:8000", "--api-key", "sfk_x"])
    assert code == cli.API_ERROR
    assert "asset a1 has no version 7 (it has none)" in capsys.readouterr().err


class _Ending:
    """A job followed to its end: while it runs, a layer of four tasks; once it ended, its
    tasks as they ended and the job as the API reads it then, counts a round behind."""

    def __init__(self, status: str, pipe: int | None = None) -> None:
        self.status, self.pipe, self.ended = status, pipe, False
        self.seen_while_running = b""

    async def __aenter__(self):
        return self

    async def __aexit__(self, *exc):
        return None

    async def tasks(self, job_id):
        states = (["succeeded"] * 4 if self.status == "completed" else
                  ["succeeded", "cancelled", "cancelled", "cancelled"]) if self.ended else \
            ["succeeded", "running", "leased", "ready"]
        return [Task.model_validate(TASK | {"id": f"t{i}", "index": i, "layer": "render",
                                            "state": state})
                for i, state in enumerate(states)]

    async def follow(self, job_id, on_event):
        await on_event({"type": "job.progress", "data": {}})
        if self.pipe is not None:
            with contextlib.suppress(BlockingIOError):  # when nothing came through yet
                self.seen_while_running = os.read(self.pipe, 4096)
        self.ended = True
        return Job.model_validate(JOB | {"status": self.status, "task_count": 4,
                                         "reason": "cancelled by ada", "counts": {
                                             "leased": 1, "ready": 1, "running": 1,
                                             "succeeded": 1}})


def test_watching_into_a_pipe_prints_progress_as_it_comes(monkeypatch):
    read, write = os.pipe()
    os.set_blocking(read, False)
    farm = _Ending("completed", pipe=read)
    monkeypatch.setattr(cli, "_client", lambda args, config: farm)
    with os.fdopen(write, "w") as piped:  # block-buffered, as stdout into a pipe is
        monkeypatch.setattr(sys, "stdout", piped)
        assert cli.main(["jobs", "watch", "j1"]) == cli.OK
    rest = os.read(read, 4096)
    os.close(read)
    assert farm.seen_while_running == b"job j1  render 1/4 done, 2 running, 0 failed\n"
    assert rest == b"j1  n  command  completed  4  succeeded 4\n"


@pytest.mark.parametrize("action", ["watch", "wait"])
def test_watch_and_wait_end_alike_with_the_job_s_final_counts(action, monkeypatch, capsys):
    monkeypatch.setattr(cli, "_client", lambda args, config: _Ending("cancelled"))
    assert cli.main(["jobs", action, "j1"]) == cli.JOB_FAILED
    assert capsys.readouterr().err == "error: job_cancelled: job j1 cancelled: cancelled " \
        "by ada (cancelled 3, succeeded 1)\n"


ASSET = {"id": "a1", "name": "notes", "kind": "plate", "description": "", "tags": [],
         "status": "draft", "owner_id": "u", "current_version": None, "version_count": 0,
         "created_at": "t", "updated_at": "t"}
JOB = {"id": "j1", "kind": "command", "name": "n", "status": "queued", "priority": 1,
       "submitted_by": "u", "requirements": {}, "max_attempts": 1, "task_timeout_s": 1.0,
       "task_count": 1, "counts": {}, "reason": None, "bad_nodes": [], "target": None,
       "render": None, "layers": [], "after": [], "waiting_on": [], "created_at": "t",
       "updated_at": None, "finished_at": None}
