"""`farm`: the farm from the shell, on the client library (docs/td-guide.md).

Exit codes: 0 done; 1 the API refused (its code, message, request id and details on
stderr); 2 bad usage; 3 a job waited for or watched failed or was cancelled; 130 interrupted.
Every command takes `--json` for scripts (one JSON document on stdout).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import getpass
import json
import os
import sys
import time
from collections import Counter
from pathlib import Path
from typing import Any

from pydantic import BaseModel

from studio_farm._http import Tokens, base_url
from studio_farm.cli_parser import parser
from studio_farm.client import AsyncFarm
from studio_farm.config import config_path, load_config, save_config
from studio_farm.errors import FarmError, InvalidInput, JobFailed, NotFound
from studio_farm.frames import FrameRangeError, parse_frames
from studio_farm.jobs import Event
from studio_farm.models import Job, Task

OK, API_ERROR, USAGE, JOB_FAILED, INTERRUPTED = 0, 1, 2, 3, 130


class UsageError(Exception):
    pass


def parse(top: argparse.ArgumentParser, argv: list[str] | None) -> argparse.Namespace:
    """Everything after `--` is a command's argument list, whatever options come before."""
    argv = list(sys.argv[1:] if argv is None else argv)
    head, tail = (argv[:argv.index("--")], argv[argv.index("--") + 1:]) if "--" in argv \
        else (argv, [])
    args = top.parse_args(head)
    args.argv = tail
    return args


def main(argv: list[str] | None = None) -> int:
    top, _ = parser()
    return run(top, parse(top, argv))


def run(top: argparse.ArgumentParser, args: argparse.Namespace) -> int:
    try:
        return asyncio.run(_run(args))
    except UsageError as exc:
        top.error(str(exc))  # exits 2
        return USAGE
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return INTERRUPTED
    except JobFailed as exc:
        _complain(exc, args)
        return JOB_FAILED
    except FarmError as exc:
        _complain(exc, args)
        return API_ERROR


def _complain(exc: FarmError, args: argparse.Namespace) -> None:
    if getattr(args, "json", False):
        print(json.dumps({"error": {"code": exc.code, "message": exc.message,
                                    "request_id": exc.request_id, "details": exc.details}}))
    print("\n".join([f"error: {exc}", *(f"  {_detail(d)}" for d in exc.details)]),
          file=sys.stderr)


# Where a field was sent is not what a reader fixes: `chunk_size`, not `body.chunk_size`.
_PLACES = frozenset({"body", "query", "path", "header", "cookie"})


def _detail(detail: Any) -> str:
    """One item of an error's `details`: `field: why` for a field's (the server's
    `{"loc", "msg", "type"}`), `key: value, ...` for others."""
    if not isinstance(detail, dict):
        return str(detail)
    if "loc" in detail and "msg" in detail:
        loc = [str(part) for part in detail["loc"] or []]
        if len(loc) > 1 and loc[0] in _PLACES:
            loc = loc[1:]
        return f"{'.'.join(loc) or 'request'}: {detail['msg']}"
    return ", ".join(f"{key}: {value}" for key, value in detail.items())


def _base_url(url: str) -> str:
    try:
        return base_url(url)
    except ValueError as exc:
        raise UsageError(str(exc)) from None


def _client(args: argparse.Namespace, config: dict[str, Any]) -> AsyncFarm:
    url = args.url or os.environ.get("FARM_URL") or config.get("url")
    if not url:
        raise UsageError("no API: pass --url, set FARM_URL, or run `farm login URL` first")
    url = _base_url(url)
    key = args.api_key or os.environ.get("FARM_API_KEY")
    tokens = None if key or not config.get("access") else Tokens(config["access"],
                                                                config["refresh"])

    def keep(new: Tokens) -> None:  # refreshed tokens replace the old ones on disk
        save_config(config | {"access": new.access, "refresh": new.refresh})

    if not key and tokens is None:
        raise UsageError("not logged in: run `farm login URL --studio S --email E` or pass "
                         "--api-key")
    return AsyncFarm(url, api_key=key, tokens=tokens, on_tokens=keep)


async def _run(args: argparse.Namespace) -> int:
    config = load_config()
    if args.command == "login":
        return await _login(args)
    async with _client(args, config) as farm:
        handler = HANDLERS[args.command]
        result = await handler(farm, args)
    if isinstance(result, int):
        return result
    _show(result, args)
    return OK


async def _login(args: argparse.Namespace) -> int:
    url = _base_url(args.url_arg)  # refused before a password is asked for
    password = sys.stdin.readline().rstrip("\n") if args.password_stdin else getpass.getpass()
    farm = await AsyncFarm.login(url, args.studio, args.email, password)
    async with farm:
        me = await farm.me()
        tokens = farm.session.tokens
        assert tokens is not None
        save_config({"url": url, "studio": args.studio, "email": args.email,
                      "access": tokens.access, "refresh": tokens.refresh})
    _show({"logged_in": True, "user": me.user, "studio": me.studio,
           "credentials": str(config_path())}, args)
    return OK


def _plain(value: Any) -> Any:
    if isinstance(value, BaseModel):
        return value.model_dump(mode="json")
    if isinstance(value, list):
        return [_plain(v) for v in value]
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    return value


def _show(result: Any, args: argparse.Namespace) -> None:
    data = _plain(result)
    if args.json:
        print(json.dumps(data, indent=1, default=str))
    elif isinstance(data, list):
        for row in data:
            print(_line(row))
    else:
        print(_line(data) if isinstance(data, dict) and "id" in data else
              json.dumps(data, indent=1, default=str))


def _line(row: Any) -> str:
    if not isinstance(row, dict):
        return str(row)
    keys = [k for k in ("id", "node_id", "name", "kind", "status", "state", "slots",
                        "circuit", "title", "task_count", "counts") if k in row]
    cells = [_counts(row[k]) if isinstance(row[k], dict) else str(row[k]) for k in keys]
    return "  ".join(cell for cell in cells if cell)


def _counts(counts: dict[str, Any]) -> str:
    """`succeeded 3, running 1`: a job's tasks by state, as a person reads them."""
    return ", ".join(f"{state} {n}" for state, n in counts.items())


async def _whoami(farm: AsyncFarm, args: argparse.Namespace) -> Any:
    return await farm.me()


async def _assets(farm: AsyncFarm, args: argparse.Namespace) -> Any:
    if args.action == "ls":
        filters = {k: v for k, v in (("kind", args.kind), ("status", args.status)) if v}
        return [a async for a in farm.assets(**filters)]
    if args.action == "create":
        return await farm.create_asset(args.name, args.kind)
    return {"asset": await farm.asset(args.asset_id),
            "versions": await farm.versions(args.asset_id)}


async def _upload(farm: AsyncFarm, args: argparse.Namespace) -> Any:
    path = Path(args.path)
    if not await asyncio.to_thread(path.is_file):
        raise UsageError(f"{path}: no such file")
    farm.transfers.parallel = max(1, args.parallel)
    if args.asset:
        return await _send(farm, path, args.asset, args)
    asset = await farm.create_asset(args.new_asset, args.kind)
    try:
        return await _send(farm, path, asset.id, args)
    except InvalidInput:
        # The server judges a file by its content once all of it is stored (docs/assets.md,
        # "Content checks"); no route judges a file before an asset exists to hold it. A
        # refused file leaves no version, so the asset made for it goes with it.
        with contextlib.suppress(FarmError):
            await farm.delete_asset(asset.id)
        raise
    except BaseException:  # cut short, or refused for now (a quota): worth another try
        print(f"asset {asset.id} was created for it; to try again into it: "
              f"farm upload {path} --asset {asset.id}", file=sys.stderr)
        raise


async def _send(farm: AsyncFarm, path: Path, asset_id: str, args: argparse.Namespace) -> Any:
    version, report = await farm.upload(path, asset_id,
                                        progress=None if not args.json else False)
    return {"version": version, "parts_total": report.parts_total,
            "parts_sent": report.parts_sent, "bytes_sent": report.bytes_sent,
            "resumed": report.resumed, "seconds": round(report.seconds, 3)}


async def _download(farm: AsyncFarm, args: argparse.Namespace) -> Any:
    versions = {v.number: v for v in await farm.versions(args.asset_id)}
    if args.version not in versions:
        # What the farm holds, not how the command was typed: exit 1, as the API's 404s.
        raise NotFound(f"asset {args.asset_id} has no version {args.version} (it has "
                       f"{', '.join(map(str, sorted(versions))) or 'none'})",
                       code="version_not_found")
    version = versions[args.version]
    path = Path(args.path or version.filename)
    report = await farm.download(version, path, progress=None if not args.json else False)
    size = (await asyncio.to_thread(path.stat)).st_size
    return {"path": str(path), "bytes": size, "resumed": report.resumed}


def _job_body(args: argparse.Namespace) -> dict[str, Any]:
    if args.frames:
        try:
            parse_frames(args.frames)
        except FrameRangeError as exc:
            raise UsageError(f"--frames: {exc}") from None
    common: dict[str, Any] = {"name": args.name}
    if args.priority is not None:
        common["priority"] = args.priority
    if args.what == "command":
        if not args.argv:
            raise UsageError("submit command: give the argument list after --")
        return {"kind": "command", **common, "command": args.argv,
                "frames": args.frames or "1", "chunk_size": args.chunk_size}
    if args.what == "render":
        if not (args.scene and args.target and args.frames):
            raise UsageError("submit render needs --scene ASSET:VERSION, --target ASSET and "
                             "--frames")
        asset, _, number = args.scene.partition(":")
        if not number.isdigit():
            raise UsageError("--scene is ASSET:VERSION, e.g. 5f0c2d9a:3")
        render: dict[str, Any] = {"scene": {"asset_id": asset, "version": int(number)},
                                  "target_asset_id": args.target}
        if args.samples is not None:
            render["samples"] = args.samples
        return {"kind": "render", **common, "frames": args.frames,
                "chunk_size": args.chunk_size, "render": render}
    try:
        body = json.loads(Path(args.what).read_text())
    except OSError as exc:
        raise UsageError(f"{args.what}: not render, command or a readable JSON file "
                         f"({exc.strerror})") from None
    except ValueError as exc:
        raise UsageError(f"{args.what}: not JSON: {exc}") from None
    if not isinstance(body, dict):
        raise UsageError(f"{args.what}: a JSON object, as POST /api/v1/jobs takes")
    return body


async def _submit(farm: AsyncFarm, args: argparse.Namespace) -> Any:
    job = await farm.submit(_job_body(args), after=args.after or None)
    if not args.wait:
        return job
    return await _follow(farm, job.id, args)


async def _follow(farm: AsyncFarm, job_id: str, args: argparse.Namespace) -> Job:
    """The job once it ended (JobFailed unless it completed: `watch`, `wait` and `submit
    --wait` exit alike); meanwhile its layers' progress, at most once a second, from the
    job's events: redrawn in place on a terminal's stderr, or, for `jobs watch` into a pipe
    or a file, a line on stdout each time it changed, as it comes."""
    lines = not args.json and getattr(args, "action", None) == "watch" \
        and not sys.stdout.isatty()
    live = not args.json and not lines and sys.stderr.isatty()
    drawn, last, said = 0, 0.0, ""

    async def show(event: Event) -> None:
        nonlocal drawn, last, said
        if not (live or lines) or time.monotonic() - last < 1.0:
            return
        last = time.monotonic()
        layers = _layers(await farm.tasks(job_id))
        if lines:
            text = f"job {job_id[:8]}  " + "; ".join(
                f"{name} {done}/{total} done, {running} running, {failed} failed"
                for name, (done, total, running, failed) in layers.items())
            if text != said:
                print(text, flush=True)
                said = text
            return
        rows = [f"job {job_id[:8]}  {event['type']}"] + [
            f"  {name:<16} {done:>5}/{total:<5} done {running:>4} running {failed:>4} failed"
            for name, (done, total, running, failed) in layers.items()]
        sys.stderr.write("\x1b[F\x1b[K" * drawn + "\n".join(rows) + "\n")
        sys.stderr.flush()
        drawn = len(rows)

    job = await farm.follow(job_id, show)
    # The job's stored counts are the dispatcher's, written a round after the job ended (a
    # cancelled job still reads `running` for a moment): its tasks say how it ended.
    counts = Counter(task.state for task in await farm.tasks(job_id))
    job = job.model_copy(update={"counts": dict(sorted(counts.items()))})
    if job.status != "completed":
        tally = f" ({_counts(job.counts)})" if job.counts else ""
        raise JobFailed(f"job {job.id} {job.status}: {job.reason or 'no reason given'}{tally}",
                        code=f"job_{job.status}")
    return job


def _layers(tasks: list[Task]) -> dict[str, tuple[int, int, int, int]]:
    """Each layer's tasks: done, in all, running, failed."""
    layers: dict[str, Counter] = {}
    for task in tasks:
        layers.setdefault(task.layer or "tasks", Counter())[task.state] += 1
    return {name: (c["succeeded"], sum(c.values()), c["running"] + c["leased"],
                   c["failed"] + c["dead"]) for name, c in layers.items()}


async def _jobs(farm: AsyncFarm, args: argparse.Namespace) -> Any:
    if args.action == "ls":
        found = []
        async for job in farm.jobs(**({"status": args.status} if args.status else {})):
            found.append(job)
            if len(found) >= args.limit:
                break
        return found
    if args.action == "show":
        return {"job": await farm.job(args.job_id), "tasks": await farm.tasks(args.job_id)}
    if args.action in ("watch", "wait"):
        return await _follow(farm, args.job_id, args)
    if args.action == "retry-frames":
        return await farm.retry_frames(args.job_id, args.frames)
    return await farm.steer(args.job_id, args.action)


async def _tasks(farm: AsyncFarm, args: argparse.Namespace) -> Any:
    if args.action == "kill":
        return await farm.kill(args.task_id)
    if args.action in ("retry", "skip"):
        return await getattr(farm, f"{args.action}_task")(args.task_id)
    if args.follow and not args.json:
        async for text in farm.follow_log(args.task_id, args.attempt):
            sys.stdout.write(text)
            sys.stdout.flush()
        return OK
    text = "".join([t async for t in farm.follow_log(args.task_id, args.attempt)]) \
        if args.follow else await farm.task_log(args.task_id, args.attempt)
    if args.json:
        return {"task_id": args.task_id, "log": text}
    sys.stdout.write(text)
    return OK


async def _nodes(farm: AsyncFarm, args: argparse.Namespace) -> Any:
    action = args.action or "ls"
    if action == "ls":
        return await farm.nodes()
    if action == "show":
        return await farm.node(args.node_id)
    if action == "label":
        return await farm.label_node(args.node_id, args.labels)
    return await farm.set_node(args.node_id, action, reason=getattr(args, "reason", None))


async def _job_types(farm: AsyncFarm, args: argparse.Namespace) -> Any:
    return await farm.job_types()


HANDLERS = {"whoami": _whoami, "assets": _assets, "upload": _upload, "download": _download,
            "submit": _submit, "jobs": _jobs, "tasks": _tasks, "nodes": _nodes,
            "job-types": _job_types}


if __name__ == "__main__":
    raise SystemExit(main())
