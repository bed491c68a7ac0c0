"""Start a child process cheaply from any asyncio loop, uvloop included.

Ray runs actors on uvloop, whose subprocess support forks the whole worker (hundreds of
MiB of page tables, plus every fork handler) for each child: measured in a node agent,
7-11 ms of wall time per `/bin/true`. `subprocess.Popen` without a `preexec_fn` uses vfork
instead; the child's exit is then watched through a pidfd and its pipes are read with the
loop's readers, so nothing blocks and no thread waits per child.

The pipes are read with `add_reader` rather than `connect_read_pipe`: uvloop's pipe
transport closes the descriptor and then the file object closes the same number again,
which, in a process whose other threads open descriptors all the time (Ray's), can close
somebody else's. Here each descriptor is closed once, by us, after the loop forgets it.
"""

from __future__ import annotations

import asyncio
import os
import subprocess
from collections.abc import Callable, Mapping, Sequence


def _pidfd_works() -> bool:
    """pidfd_open needs Linux 5.3 and may be refused by a seccomp profile: try it once."""
    try:
        os.close(os.pidfd_open(os.getpid()))
    except (AttributeError, OSError):
        return False
    return True


CAN_WATCH = _pidfd_works()


class _Pipe:
    """The read end of a child's pipe, fed into a StreamReader by the loop; closed once."""

    def __init__(self, loop: asyncio.AbstractEventLoop, fd: int):
        self.loop, self.fd = loop, fd
        self.reader = asyncio.StreamReader(limit=2**16, loop=loop)
        os.set_blocking(fd, False)
        loop.add_reader(fd, self._readable)

    def _readable(self) -> None:
        try:
            data = os.read(self.fd, 64 * 1024)
        except BlockingIOError:
            return
        except OSError:
            data = b""
        if data:
            self.reader.feed_data(data)
        else:
            self.close()

    def close(self) -> None:
        if self.fd >= 0:
            self.loop.remove_reader(self.fd)
            os.close(self.fd)
            self.fd = -1
            self.reader.feed_eof()


class Child:
    """The parts of `asyncio.subprocess.Process` the runner uses: pid, returncode, the two
    output streams, `wait()`, and `close()`, which stops reading pipes that a stray
    grandchild still holds open."""

    def __init__(self, popen: subprocess.Popen, stdout: _Pipe, stderr: _Pipe,
                 exited: asyncio.Future):
        self._popen = popen
        self.pid = popen.pid
        self._pipes = (stdout, stderr)
        self.stdout, self.stderr = stdout.reader, stderr.reader
        self._exited = exited

    def close(self) -> None:
        for pipe in self._pipes:
            pipe.close()

    @property
    def returncode(self) -> int | None:
        return self._popen.returncode

    async def wait(self) -> int:
        await asyncio.shield(self._exited)
        return self._popen.wait()  # reaps at once: the pidfd said it has exited


async def spawn(argv: Sequence[str], *, cwd, env: Mapping[str, str],
                preexec_fn: Callable[[], None] | None = None) -> Child:
    """Like `asyncio.create_subprocess_exec` with stdin from /dev/null, stdout and stderr
    piped and a new session. Raises OSError when the program cannot be started."""
    loop = asyncio.get_running_loop()
    out_r, out_w = os.pipe()
    err_r, err_w = os.pipe()
    try:
        # vfork + exec: back in well under a millisecond, so blocking the loop is cheapest.
        popen = subprocess.Popen(  # noqa: ASYNC220
            list(argv), stdin=subprocess.DEVNULL, stdout=out_w, stderr=err_w, cwd=cwd,
            env=dict(env), start_new_session=True, close_fds=True, preexec_fn=preexec_fn)
    except BaseException:
        os.close(out_r)
        os.close(err_r)
        raise
    finally:
        os.close(out_w)
        os.close(err_w)
    try:
        pidfd = os.pidfd_open(popen.pid)
    except OSError:
        os.close(out_r)
        os.close(err_r)
        popen.kill()
        popen.wait()
        raise
    exited = loop.create_future()

    def on_exit() -> None:
        loop.remove_reader(pidfd)
        os.close(pidfd)
        if not exited.done():
            exited.set_result(None)

    loop.add_reader(pidfd, on_exit)
    return Child(popen, _Pipe(loop, out_r), _Pipe(loop, err_r), exited)
