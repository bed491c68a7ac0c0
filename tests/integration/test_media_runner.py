"""run_tool with real processes: limits seen by the child, timeouts and cancellation that
leave no process behind, and every outcome mapped to its failure class."""

from __future__ import annotations

import asyncio
import contextlib
import json
import signal
import sys
import time
from pathlib import Path

import pytest

from pipelines.media import runner as media_runner
from pipelines.media.errors import BadMedia, MediaCrashed, MediaTimeout
from pipelines.media.previews import PreviewLimits, PreviewMaker
from pipelines.media.recipes import ProxyOptions
from pipelines.media.runner import run_tool
from tests.support.ffmpeg_media import make_clip

pytestmark = pytest.mark.timeout(120)
LIMITS = {"timeout_s": 20.0, "memory_bytes": 2 * 2**30, "cpu_seconds": 30.0}


def _python(code: str) -> list[str]:
    return [sys.executable, "-I", "-c", code]


def _live_members(pgid: int) -> list[int]:
    """Processes of the group that are still running (zombies wait for a reaper; they hold
    no resources, and PID 1 in a container may never reap them)."""
    members = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except (OSError, IndexError):
            continue
        if int(fields[2]) == pgid and fields[0] not in ("Z", "X"):
            members.append(int(stat.parent.name))
    return members


async def _gone(pgid: int) -> bool:
    for _ in range(40):  # SIGKILL is delivered at once; exiting takes a moment
        if not _live_members(pgid):
            return True
        await asyncio.sleep(0.05)
    return False


async def test_timeout_kills_the_whole_process_group():
    pids: list[int] = []
    started = time.monotonic()
    with pytest.raises(MediaTimeout) as caught:
        await run_tool(["sh", "-c", "sleep 60 & sleep 60 & wait"], timeout_s=0.5,
                       memory_bytes=None, cpu_seconds=None, on_start=pids.append)
    assert time.monotonic() - started < 5
    assert (caught.value.failure_class, caught.value.retryable) == ("timeout", True)
    assert caught.value.message == "sh ran past its time limit of 0.5 s"
    assert await _gone(pids[0])


async def test_cancelling_the_task_kills_the_group():
    pids: list[int] = []
    started = asyncio.Event()

    def on_start(pid: int) -> None:
        pids.append(pid)
        started.set()

    task = asyncio.create_task(run_tool(["sh", "-c", "sleep 60 & sleep 60 & wait"],
                                        on_start=on_start, **LIMITS))
    await asyncio.wait_for(started.wait(), 10)
    await asyncio.sleep(0.2)
    assert len(_live_members(pids[0])) >= 2
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert await _gone(pids[0])


async def test_long_encode_times_out_and_leaves_no_partial_proxy(tmp_path):
    source = make_clip(tmp_path / "long.mp4", size="640x360", seconds=10, rate=25)
    maker = PreviewMaker(PreviewLimits(timeout_s=2.0), ProxyOptions(preset="veryslow"))
    with pytest.raises(MediaTimeout, match="ran past its time limit of 2 s"):
        await maker.make(source, tmp_path / "out", "video")
    assert not list((tmp_path / "out").glob("proxy*"))


async def test_cpu_limit_stops_a_busy_loop():
    with pytest.raises(MediaTimeout, match="CPU limit of 1 s") as caught:
        await run_tool(_python("while True: pass"), timeout_s=30, memory_bytes=None,
                       cpu_seconds=1)
    assert caught.value.failure_class == "timeout"


async def test_tiny_address_space_is_a_crash_with_a_clear_message(tmp_path):
    source = make_clip(tmp_path / "a.mp4")
    maker = PreviewMaker(PreviewLimits(memory_bytes=64 * 2**20))
    started = time.monotonic()
    with pytest.raises(MediaCrashed) as caught:
        await maker.make(source, tmp_path / "out", "video")
    assert time.monotonic() - started < 10
    assert caught.value.failure_class == "crash" and caught.value.retryable
    assert caught.value.message.startswith("probe: ffprobe ran out of memory (limit 64 MiB)")


async def test_encoder_out_of_memory_is_a_crash(tmp_path):
    source = make_clip(tmp_path / "hd.mp4", size="1920x1080", seconds=1, rate=10)
    maker = PreviewMaker(PreviewLimits(memory_bytes=500 * 2**20))
    with pytest.raises(MediaCrashed, match=r"ffmpeg ran out of memory \(limit 500 MiB\)"):
        await maker.make(source, tmp_path / "out", "video")


async def test_python_memory_error_counts_as_out_of_memory():
    with pytest.raises(MediaCrashed, match="out of memory"):
        await run_tool(_python("x = b'1' * (1024 * 2**20)"), timeout_s=20,
                       memory_bytes=256 * 2**20, cpu_seconds=None)


@pytest.mark.parametrize("prlimit, pidfd", [(True, True), (False, True), (True, False)],
                         ids=["prlimit-vfork", "preexec-fork", "asyncio-subprocess"])
async def test_child_sees_its_limits_stdin_group_and_a_clean_environment(monkeypatch, prlimit,
                                                                         pidfd):
    """The same guarantees whichever way the child is started (util-linux `prlimit` and
    pidfds are the fast path; the others are what a node without them gets)."""
    if not prlimit:
        monkeypatch.setattr(media_runner, "_PRLIMIT", None)
    if not pidfd:
        monkeypatch.setattr(media_runner, "CAN_WATCH", False)
    monkeypatch.setenv("FFREPORT", "file=/tmp/report.log")  # would make FFmpeg write a file
    code = ("import json, os, resource, sys; r = resource.getrlimit; print(json.dumps({"
            "'as': r(resource.RLIMIT_AS), 'cpu': r(resource.RLIMIT_CPU),"
            "'core': r(resource.RLIMIT_CORE), 'nofile': r(resource.RLIMIT_NOFILE),"
            "'stdin': sys.stdin.read(), 'leader': os.getpgid(0) == os.getpid(),"
            "'env': sorted(os.environ)}))")
    result = await run_tool(_python(code), timeout_s=20, memory_bytes=2**30, cpu_seconds=7.5)
    seen = json.loads(result.stdout)
    assert seen["as"] == [2**30, 2**30] and seen["cpu"] == [8, 10]
    assert seen["core"] == [0, 0] and seen["nofile"] == [256, 256]
    assert seen["stdin"] == "" and seen["leader"] is True
    assert "FFREPORT" not in seen["env"] and "MALLOC_ARENA_MAX" in seen["env"]
    assert result.returncode == 0 and result.wall_s > 0


async def test_signal_death_is_a_crash():
    with pytest.raises(MediaCrashed, match="python.* was killed by SIGSEGV") as caught:
        await run_tool(_python("import os, signal; os.kill(os.getpid(), signal.SIGSEGV)"),
                       **LIMITS)
    assert caught.value.details[0]["returncode"] == -signal.SIGSEGV


async def test_missing_executable_is_a_crash_of_this_node():
    with pytest.raises(MediaCrashed, match="cannot start no-such-ffmpeg on this node"):
        await run_tool(["/opt/nowhere/no-such-ffmpeg", "-version"], **LIMITS)


async def test_command_string_is_refused():
    with pytest.raises(TypeError, match="never a command string"):
        await run_tool("ffmpeg -i x.mp4", **LIMITS)  # type: ignore[arg-type]


async def test_unbounded_output_is_cut_off():
    with pytest.raises(BadMedia, match="output exceeded 1048576 bytes"):
        await run_tool(_python("import sys; sys.stdout.write('x' * 3 * 2**20)"),
                       max_stdout_bytes=2**20, **LIMITS)


async def test_peak_memory_is_reported():
    result = await run_tool(_python("import time; x = b'1' * (150 * 2**20); time.sleep(0.6)"),
                            **LIMITS)
    assert result.peak_rss is not None and result.peak_rss > 150 * 2**20


async def test_failure_names_the_file_but_not_the_node_path(tmp_path):
    missing = tmp_path / "deep" / "shot_010.mov"
    with pytest.raises(BadMedia) as caught:
        await run_tool(["ffprobe", "-v", "error", f"file:{missing}"], **LIMITS)
    assert caught.value.message == "shot_010.mov: No such file or directory"
    result = await run_tool(["ffprobe", "-v", "error", f"file:{missing}"], check=False, **LIMITS)
    assert result.returncode == 1 and str(missing) in result.stderr_tail  # logs keep it all


@pytest.mark.parametrize("loop_kind", ["asyncio", "uvloop"])
def test_many_children_at_once_each_get_their_own_output_and_leak_nothing(loop_kind):
    """Ray actors run on uvloop; spawning there must not share or leak descriptors."""
    import os

    import uvloop

    async def burst() -> list[bytes]:
        gate = asyncio.Semaphore(16)

        async def one(n: int) -> bytes:
            async with gate:
                result = await run_tool(["/bin/echo", f"child-{n}"], **LIMITS)
            return result.stdout

        return await asyncio.gather(*(one(n) for n in range(200)))

    def run(main):
        return uvloop.run(main()) if loop_kind == "uvloop" else asyncio.run(main())

    async def warm_up() -> None:  # the loop library's own descriptors, opened once
        await run_tool(["/bin/true"], **LIMITS)

    run(warm_up)
    before = len(os.listdir("/proc/self/fd"))
    outputs = run(burst)
    assert outputs == [f"child-{n}\n".encode() for n in range(200)]
    assert len(os.listdir("/proc/self/fd")) <= before


async def test_a_tool_named_relative_to_a_relative_directory_runs_there(tmp_path, monkeypatch):
    work = tmp_path / "work"
    work.mkdir()
    tool = work / "tool.sh"
    tool.write_text("#!/bin/sh\necho ran-$1\n")
    tool.chmod(0o755)
    monkeypatch.chdir(tmp_path)
    result = await run_tool(["./tool.sh", "x"], cwd="work", **LIMITS)
    assert result.stdout == b"ran-x\n"


@pytest.mark.parametrize("prlimit", [True, False], ids=["prlimit", "preexec"])
async def test_a_tool_that_cannot_be_executed_is_a_crash_of_this_node(tmp_path, monkeypatch,
                                                                      prlimit):
    if not prlimit:
        monkeypatch.setattr(media_runner, "_PRLIMIT", None)
    tool = tmp_path / "render-tool"
    tool.write_text("#!/opt/nowhere/interpreter\n")  # found and executable, but exec fails
    tool.chmod(0o755)
    with pytest.raises(MediaCrashed, match="cannot start render-tool on this node") as caught:
        await run_tool([str(tool)], **LIMITS)
    assert caught.value.failure_class == "crash"


async def test_a_stray_that_keeps_the_pipes_open_is_cut_loose(tmp_path):
    """A tool that leaves a process in a session of its own, holding stdout: the run ends
    at its timeout, and our ends of the pipes are closed at once rather than leaked."""
    import os

    pidfile = tmp_path / "stray.pid"
    script = f"setsid sh -c 'echo $$ > {pidfile}; exec sleep 30' & echo started"
    started = time.monotonic()
    try:
        with pytest.raises(MediaTimeout):
            await run_tool(["sh", "-c", script], timeout_s=1, memory_bytes=None,
                           cpu_seconds=None)
        assert time.monotonic() - started < 15  # not held until the stray ends (30 s)
        stray = int(pidfile.read_text())
        held = {os.readlink(f"/proc/{stray}/fd/{fd}") for fd in (1, 2)}
        ours = set()
        for fd in os.listdir("/proc/self/fd"):
            with contextlib.suppress(OSError):
                ours.add(os.readlink(f"/proc/self/fd/{fd}"))
        assert held and not held & ours  # our ends of its pipes are closed
    finally:
        if pidfile.exists():
            os.kill(int(pidfile.read_text()), signal.SIGKILL)
