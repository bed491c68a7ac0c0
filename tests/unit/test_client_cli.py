"""The CLI's own logic: argument lists after `--`, and the live per-layer view a terminal
gets while a job runs (its HTTP side is tested against `farm up`: tests/system)."""

from __future__ import annotations

import argparse
import io

from studio_farm import cli
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
    job = await cli._follow(_Farm(), "0123456789", args, fail_if_not_completed=True)
    assert job.status == "completed"
    drawn = screen.getvalue().splitlines()
    assert drawn[0] == "job 01234567  job.progress"
    assert drawn[1].split()[:3] == ["render", "1/2", "done"]
    assert drawn[2].split()[:3] == ["comp", "0/1", "done"]
