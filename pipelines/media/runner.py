"""The hardened way to run FFmpeg (or any tool) on a farm node.

An argument list, never a shell; stdin from /dev/null; a clean environment; its own process
group, killed as a whole on timeout or cancellation; resource limits set in the child before
exec. Outcomes become domain errors here, at the boundary: the caller sees `BadMedia`,
`MediaTimeout` or `MediaCrashed`, never an exit code.
"""

from __future__ import annotations

import asyncio
import contextlib
import math
import os
import re
import resource
import shutil
import signal
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from pipelines.media import reaper
from pipelines.media.errors import BadMedia, MediaCrashed, MediaTimeout
from pipelines.media.spawn import CAN_WATCH, Child, spawn

STDERR_TAIL_BYTES = 64 * 1024
MAX_STDOUT_BYTES = 16 * 1024 * 1024
DEFAULT_NOFILE = 256
_CHUNK = 64 * 1024
# glibc reserves 64 MiB of address space per malloc arena (one per thread, up to 8 per
# core): with many cores that alone can exceed RLIMIT_AS, so the child gets a few arenas.
_ENV_KEEP = ("PATH",)
_ENV_SET = {"LC_ALL": "C.UTF-8", "MALLOC_ARENA_MAX": "4"}
_OOM = re.compile(r"cannot allocate memory|out of memory|malloc of size \d+ failed|"
                  r"failed to map segment|bad_alloc|failed to allocate|MemoryError", re.IGNORECASE)
_GENERIC = re.compile(r"^(conversion failed!?|exiting normally.*|error opening output files?:.*|"
                      r"error opening input files?:.*)$", re.IGNORECASE)
_ERRNO_ONLY = re.compile(r": (invalid argument|invalid data found when processing input|"
                         r"operation not permitted|input/output error)$", re.IGNORECASE)
_LONG_QUOTE = re.compile(r"'([^']{60,})'")  # e.g. the whole demuxer whitelist
_ADDRESS = re.compile(r"\s@\s0x[0-9a-f]+\]")
_DIRS = re.compile(r"(?:\bfile:|(?<![\w:/.]))/(?:[^/\s'\"]+/)+")  # not inside URLs


@dataclass(frozen=True)
class ToolResult:
    returncode: int
    stdout: bytes
    stderr_tail: str
    wall_s: float
    peak_rss: int | None = None  # bytes, sampled from /proc (VmHWM); None when never seen
    peak_vm: int | None = None  # address space (VmPeak), what RLIMIT_AS counts; sampled


async def run_tool(
    argv: Sequence[str], *, timeout_s: float, memory_bytes: int | None,
    cpu_seconds: float | None, cwd: str | os.PathLike[str] | None = None,
    nofile: int = DEFAULT_NOFILE, max_stdout_bytes: int = MAX_STDOUT_BYTES,
    on_start: Callable[[int], None] | None = None, check: bool = True,
    on_stdout: Callable[[bytes], None] | None = None, env: Mapping[str, str] | None = None,
    on_stderr: Callable[[bytes], None] | None = None, keep_stdout: bool = True,
) -> ToolResult:
    """Run `argv[0]` with `argv[1:]` under limits; raise a MediaError unless it succeeds.

    Cancelling the awaiting task kills the tool's whole process group before the
    cancellation propagates. `check=False` returns non-zero exits instead of raising
    (timeouts, signals and spawn failures still raise). `on_stdout` sees each piece of
    stdout as it arrives (progress lines); `env` adds variables to the clean environment.
    `keep_stdout=False` with `on_stdout` (and `on_stderr`) streams the output instead of
    holding it: a farm task's log of any size, in bounded memory (`stdout` is then empty).
    """
    args = _checked(argv)
    started = time.monotonic()
    proc = await _spawn(args, cwd, _limits(memory_bytes, cpu_seconds, nofile), env)
    reaper.watch(proc.pid)  # its session leader's pid is the group's id
    if on_start is not None:
        on_start(proc.pid)
    watch = _RssWatch(proc.pid)
    try:
        async with asyncio.timeout(timeout_s):
            stdout, tail = await _collect(proc, watch, max_stdout_bytes if keep_stdout else 0,
                                          on_stdout, on_stderr)
    except TimeoutError:
        await _kill_group(proc)
        raise MediaTimeout(f"{_tool(args)} ran past its time limit of {timeout_s:g} s",
                           details=[{"tool": _tool(args), "limit_s": timeout_s}]) from None
    except BaseException:  # cancellation or a failed read: never leave the group behind
        await _kill_group(proc)
        raise
    await _kill_group(proc)  # strays the tool may have left in its group
    _refuse_failed_start(args, proc.returncode, tail)
    result = ToolResult(proc.returncode if proc.returncode is not None else -1, stdout, tail,
                        time.monotonic() - started, watch.peaks["VmHWM"], watch.peaks["VmPeak"])
    if check:
        raise_for_outcome(args, result, memory_bytes=memory_bytes, cpu_seconds=cpu_seconds)
    return result


def _checked(argv: Sequence[str]) -> list[str]:
    if isinstance(argv, str | bytes):
        raise TypeError("argv must be a list of arguments, never a command string")
    args = [os.fspath(arg) for arg in argv]
    if not args or not args[0]:
        raise ValueError("argv needs an executable")
    return args


def _limits(memory_bytes: int | None, cpu_seconds: float | None,
            nofile: int) -> list[tuple[int, tuple[int, int]]]:
    """The limits for the child, clamped to this process's hard limits (never raised)."""
    wanted = [(resource.RLIMIT_CORE, 0), (resource.RLIMIT_NOFILE, nofile)]
    if memory_bytes is not None:
        wanted.append((resource.RLIMIT_AS, int(memory_bytes)))
    limits = []
    for res, value in wanted:
        hard = resource.getrlimit(res)[1]
        value = value if hard == resource.RLIM_INFINITY else min(value, hard)
        limits.append((res, (value, value)))
    if cpu_seconds is not None:
        soft = max(1, math.ceil(cpu_seconds))
        hard = resource.getrlimit(resource.RLIMIT_CPU)[1]
        # SIGXCPU at the soft limit; SIGKILL two seconds later should the tool ignore it.
        top = soft + 2 if hard == resource.RLIM_INFINITY else min(soft + 2, hard)
        limits.append((resource.RLIMIT_CPU, (min(soft, top), top)))
    return limits


# util-linux `prlimit` sets the limits and execs the tool, so the child needs no
# `preexec_fn` and can be started with vfork (see pipelines/media/spawn.py): measured in a
# process the size of a node agent (Ray imported, 200 MiB touched), a `preexec_fn` fork
# cost 15.7 ms of CPU per spawn between parent and child, vfork through prlimit 1.9 ms.
_PRLIMIT = shutil.which("prlimit")
_RLIMIT_NAMES = {resource.RLIMIT_CORE: "core", resource.RLIMIT_NOFILE: "nofile",
                 resource.RLIMIT_AS: "as", resource.RLIMIT_CPU: "cpu"}


async def _spawn(args: list[str], cwd, limits,
                 extra_env: Mapping[str, str] | None = None) -> Child:
    env = {key: os.environ[key] for key in _ENV_KEEP if key in os.environ} | _ENV_SET | dict(
        extra_env or {})
    relative = cwd is not None and "/" in args[0]  # "./tool" means the child's directory
    named = os.path.abspath(os.path.join(cwd, args[0])) if relative else args[0]  # noqa: ASYNC240
    executable = shutil.which(named, path=env.get("PATH", os.defpath))
    if executable is None:
        raise MediaCrashed(f"cannot start {_tool(args)} on this node: not found or not "
                           "executable", details=[{"tool": _tool(args)}])
    if _PRLIMIT:
        argv, preexec = [_PRLIMIT, *_prlimit_options(limits), "--", executable, *args[1:]], None
    else:
        def preexec() -> None:
            # Runs in the forked child before exec, where only async-signal-safe work is
            # sound (other threads' locks are frozen): no imports, no logging.
            for res, pair in limits:
                resource.setrlimit(res, pair)

        argv = [executable, *args[1:]]
    try:
        if CAN_WATCH:
            return await spawn(argv, cwd=cwd, env=env, preexec_fn=preexec)
        return await asyncio.create_subprocess_exec(  # type: ignore[return-value]
            *argv, stdin=asyncio.subprocess.DEVNULL, stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE, cwd=cwd, env=env, start_new_session=True,
            preexec_fn=preexec)
    except OSError as exc:  # e.g. removed since it was found
        raise MediaCrashed(f"cannot start {_tool(args)} on this node: {exc.strerror}",
                           details=[{"tool": _tool(args)}]) from None


def _refuse_failed_start(args: list[str], returncode: int | None, stderr_tail: str) -> None:
    """`prlimit` could not exec the tool (126: not executable, 127: gone): like an OSError
    from a direct spawn, that is this node's failure, not the input's."""
    if _PRLIMIT and returncode in (126, 127) and stderr_tail.startswith("prlimit: "):
        reason = stderr_tail.strip().splitlines()[-1].rsplit(": ", 1)[-1]
        raise MediaCrashed(f"cannot start {_tool(args)} on this node: {reason}",
                           details=[{"tool": _tool(args)}])


def _prlimit_options(limits: list[tuple[int, tuple[int, int]]]) -> list[str]:
    def value(number: int) -> str:
        return "unlimited" if number == resource.RLIM_INFINITY else str(number)

    return [f"--{_RLIMIT_NAMES[res]}={value(soft)}:{value(hard)}" for res, (soft, hard) in limits]


async def _collect(proc: Child, watch: _RssWatch, max_stdout_bytes: int,
                   on_stdout: Callable[[bytes], None] | None = None,
                   on_stderr: Callable[[bytes], None] | None = None) -> tuple[bytes, str]:
    """`max_stdout_bytes` 0: stdout goes to `on_stdout` only, unbounded."""
    assert proc.stdout is not None and proc.stderr is not None
    # Also sampled as the tool writes to stderr: a tool that fails an allocation says so
    # and exits at once, often between two samples of the loop.
    readers = (asyncio.ensure_future(_read_bounded(proc.stdout, max_stdout_bytes, on_stdout)),
               asyncio.ensure_future(_read_tail(proc.stderr, watch.sample, on_stderr)))
    sampler = asyncio.ensure_future(watch.run())
    try:
        stdout, stderr = await asyncio.gather(*readers)
        watch.sample()
        await proc.wait()
    finally:  # on any failure no reader may outlive this call: the pipes get drained later
        for task in (*readers, sampler):
            task.cancel()
        await asyncio.wait((*readers, sampler))
    return stdout, stderr.decode("utf-8", "replace")


async def _read_bounded(stream: asyncio.StreamReader, limit: int,
                        on_chunk: Callable[[bytes], None] | None = None) -> bytes:
    data = bytearray()
    while chunk := await stream.read(_CHUNK):
        if on_chunk is not None:
            on_chunk(chunk)
        if not limit:
            continue
        data += chunk
        if len(data) > limit:
            raise BadMedia(f"tool output exceeded {limit} bytes")
    return bytes(data)


async def _read_tail(stream: asyncio.StreamReader,
                     on_chunk: Callable[[], None] | None = None,
                     on_data: Callable[[bytes], None] | None = None) -> bytes:
    tail = bytearray()
    while chunk := await stream.read(_CHUNK):
        if on_chunk is not None:
            on_chunk()
        if on_data is not None:
            on_data(chunk)
        tail += chunk
        del tail[:-STDERR_TAIL_BYTES]
    return bytes(tail)


async def _kill_group(proc: Child) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(proc.pid, signal.SIGKILL)
    reaper.forget(proc.pid)
    if proc.returncode is None:
        with contextlib.suppress(TimeoutError, ProcessLookupError):
            await asyncio.wait_for(asyncio.shield(proc.wait()), 5)
    # Read to EOF so the pipes close now; a stray that left the group (setsid) may still
    # hold them: after 2 s they are closed on our side whatever it does.
    open_streams = [s for s in (proc.stdout, proc.stderr) if s is not None and not s.at_eof()]
    if open_streams:
        with contextlib.suppress(TimeoutError, OSError, ValueError, RuntimeError):
            await asyncio.wait_for(asyncio.gather(*(s.read() for s in open_streams)), 2)
    if isinstance(proc, Child):
        proc.close()


class _RssWatch:
    """Peak memory of the tool, read from /proc while it runs (Linux only)."""

    def __init__(self, pid: int):
        self.path = Path(f"/proc/{pid}/status")
        self.peaks: dict[str, int | None] = {"VmHWM": None, "VmPeak": None}

    async def run(self) -> None:
        delay = 0.01
        while True:
            self.sample()
            await asyncio.sleep(delay)
            delay = min(0.25, delay * 2)

    def sample(self) -> None:
        try:
            text = self.path.read_text()
        except OSError:
            return
        for line in text.splitlines():
            key = line.split(":", 1)[0]
            if key in self.peaks:
                value = int(line.split()[1]) * 1024
                self.peaks[key] = max(self.peaks[key] or 0, value)


def raise_for_outcome(argv: Sequence[str], result: ToolResult, *, memory_bytes: int | None,
                      cpu_seconds: float | None) -> None:
    """Map an exit to a domain error: signal -> crash (CPU limit -> timeout), memory ->
    crash, any other failure -> bad input with the tool's last meaningful line."""
    code, tool = result.returncode, _tool(argv)
    details = [{"tool": tool, "returncode": code}]
    if code == 0:
        return
    if code < 0:
        if -code == signal.SIGXCPU:
            raise MediaTimeout(f"{tool} ran past its CPU limit of {cpu_seconds:g} s",
                               details=details)
        name = _signal_name(-code)
        hint = " (out of memory, or killed from outside)" if -code == signal.SIGKILL else ""
        raise MediaCrashed(f"{tool} was killed by {name}{hint}", details=details)
    line = last_meaningful_line(result.stderr_tail, argv)
    if _OOM.search(result.stderr_tail) or _near_limit(result.peak_vm, memory_bytes):
        limit = f" (limit {memory_bytes // 2**20} MiB)" if memory_bytes else ""
        raise MediaCrashed(f"{tool} ran out of memory{limit}: {line}", details=details)
    raise BadMedia(line or f"{tool} exited with status {code}", details=details)


def _near_limit(peak_vm: int | None, memory_bytes: int | None) -> bool:
    """FFmpeg often reports a failed allocation only as "Error while opening encoder":
    an address space seen within 10% of RLIMIT_AS says what it was."""
    return bool(peak_vm and memory_bytes and peak_vm >= 0.9 * memory_bytes)


def last_meaningful_line(stderr: str, argv: Sequence[str] = ()) -> str:
    """The line that says what went wrong, with the node's directories removed.

    FFmpeg often ends with "<input>: Invalid argument" right after the line that explains
    it ("[hls] Format not on whitelist ..."): then both are given, the reason first.
    """
    lines = [scrub_paths(_ADDRESS.sub("]", line.strip()), argv)
             for line in re.split(r"[\r\n]+", stderr)
             if line.strip() and not _GENERIC.match(line.strip())]
    if not lines:
        return ""
    line = lines[-1]
    if len(lines) > 1 and _ERRNO_ONLY.search(line) and lines[-2].startswith("["):
        line = f"{lines[-2]} ({line})"
    return _LONG_QUOTE.sub(lambda m: f"'{m[1][:40]}...'", line)[:500]


def scrub_paths(text: str, argv: Sequence[str] = ()) -> str:
    """Replace every path of the node with its file name ("file:/srv/x/a.mp4" -> "a.mp4")."""
    known = {arg for arg in map(str, argv) if arg.startswith(("file:", "/"))}
    known |= {arg.removeprefix("file:") for arg in known}
    for path in sorted(known, key=len, reverse=True):
        name = path.removeprefix("file:").rstrip("/").rsplit("/", 1)[-1]
        if name and name != path:
            text = text.replace(path, name)
    return _DIRS.sub("", text)


def _signal_name(number: int) -> str:
    try:
        return signal.Signals(number).name
    except ValueError:
        return f"signal {number}"


def _tool(argv: Sequence[str]) -> str:
    return os.path.basename(str(argv[0])) or str(argv[0])
