"""The product started the way its users start it: `farm up` and `farm join` as processes.

Only the environment a user has: no FARM_* or RAY_* variables but free ports and a fresh
data dir, the console scripts of the project's virtualenv, output read like a person reads
it (the banner), and the HTTP API and socket from outside.
"""

from __future__ import annotations

import asyncio
import os
import re
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from pipelines.embedded import free_port

BIN = Path(sys.executable).parent


async def gone(fragment: str, timeout_s: float) -> bool:
    """Wait until no process's command line holds `fragment`; False if one still does."""
    return await _until(fragment, False, timeout_s)


async def appears(fragment: str, timeout_s: float) -> bool:
    """Wait until some process's command line holds `fragment`."""
    return await _until(fragment, True, timeout_s)


async def _until(fragment: str, present: bool, timeout_s: float) -> bool:
    deadline = time.monotonic() + timeout_s
    while bool(processes_with(fragment)) != present:
        if time.monotonic() > deadline:
            return False
        await asyncio.sleep(0.05)
    return True


def user_env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("FARM_", "RAY_"))}
    return env | extra


def processes_with(fragment: str) -> list[int]:
    """Live processes whose command line holds `fragment` (zombies excluded)."""
    found = []
    for entry in Path("/proc").glob("[0-9]*"):
        try:
            cmdline = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
            state = (entry / "stat").read_text().rsplit(")", 1)[1].split()[0]
        except OSError:
            continue
        if fragment in cmdline and state != "Z" and int(entry.name) != os.getpid():
            found.append(int(entry.name))
    return found


@dataclass
class Launched:
    process: subprocess.Popen
    log_path: Path

    def output(self) -> str:
        return self.log_path.read_text(errors="replace")

    def wait_for(self, pattern: str, timeout_s: float) -> re.Match:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            found = re.search(pattern, self.output())
            if found:
                return found
            if self.process.poll() is not None:
                break
            time.sleep(0.2)
        raise AssertionError(f"{pattern!r} not printed (exit {self.process.poll()}):\n"
                             f"{self.output()[-4000:]}")

    def stop(self, sig: int = signal.SIGINT, timeout_s: float = 90.0) -> int:
        if self.process.poll() is None:
            self.process.send_signal(sig)
        try:
            return self.process.wait(timeout=timeout_s)
        except subprocess.TimeoutExpired:
            os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait()
            raise AssertionError(f"did not stop within {timeout_s} s:\n"
                                 f"{self.output()[-3000:]}") from None


def launch(argv: list[str], log_path: Path, env: dict[str, str], cwd: Path | None = None,
           ) -> Launched:
    log = open(log_path, "wb")  # noqa: SIM115 - the child writes to it
    try:
        process = subprocess.Popen(argv, env=env, cwd=cwd, stdout=log,
                                   stderr=subprocess.STDOUT, start_new_session=True)
    finally:
        log.close()
    return Launched(process, log_path)


@dataclass
class FarmUp:
    launched: Launched
    api: str
    uploads: str
    cluster: str
    token_file: str
    data_dir: Path
    env: dict[str, str]
    mail_dir: Path  # as the banner's "Mail:" line names it

    def stop(self) -> None:
        """Ctrl-C, as a user stops it: exit 0 and no embedded service left running."""
        code = self.launched.stop()
        assert code == 0, self.launched.output()[-3000:]
        assert processes_with(str(self.data_dir)) == [], "embedded services left running"

    def start_again(self, log_path: Path) -> Launched:
        """`farm up` once more with the same data dir and ports (a restart)."""
        return launch([str(BIN / "farm"), "up"], log_path, self.env,
                      cwd=self.data_dir.parent)


TURNTABLE = Path(__file__).resolve().parents[1] / "fixtures" / "turntable"
UV = Path(__file__).resolve().parents[2] / ".tools" / "bin" / "uv"


def install_plugin(source: Path, target: Path) -> Path:
    """`pip install` a job type package into `target` (from a copy: building writes into
    the source tree), without touching the project's virtualenv, by the project's own uv
    (`make setup` installs it; it fetches the package's build backend from PyPI)."""
    build = target.parent / f"{source.name}-src"
    shutil.copytree(source, build)
    installed = subprocess.run([str(UV), "pip", "install", "--quiet", "--no-deps",
                                "--target", str(target), str(build)], capture_output=True)
    assert installed.returncode == 0, installed.stderr.decode(errors="replace")
    return target


def farm_up(tmp: Path, **settings: str) -> FarmUp:
    """`make run`'s last step (`farm up`) on embedded defaults; only the ports are free ones
    so that it can run beside anything else on the machine. `settings` are further FARM_*
    variables, for a test that needs one changed (it says why)."""
    api_port, upload_port = free_port(), free_port()
    env = user_env(FARM_DATA_DIR=str(tmp / "data"), FARM_API_PORT=str(api_port),
                   FARM_UPLOAD_PORT=str(upload_port),
                   FARM_RAY_DASHBOARD_PORT=str(free_port()), **settings)
    launched = launch([str(BIN / "farm"), "up"], tmp / "farm-up.log", env, cwd=tmp)
    banner = launched.wait_for(r"Cluster:\s+(\S+)\n\s+Token file:\s+(\S+)", timeout_s=240)
    mail = re.search(r"Mail:\s+(\S+)", launched.output())  # where its messages are kept
    assert mail, launched.output()[-3000:]
    return FarmUp(launched, f"http://127.0.0.1:{api_port}", f"http://127.0.0.1:{upload_port}",
                  banner.group(1), banner.group(2), tmp / "data", env, Path(mail.group(1)))


@contextmanager
def farm_running(tmp: Path, **settings: str) -> Iterator[FarmUp]:
    """`farm up` for the length of a block, stopped (and checked to stop cleanly) after it."""
    up = farm_up(tmp, **settings)
    try:
        yield up
    finally:
        up.stop()


def farm_join(tmp: Path, cluster: str, *args: str, name: str = "render-node-1",
              env: dict[str, str] | None = None) -> Launched:
    return launch([str(BIN / "farm"), "join", cluster, "--name", name, *args],
                  tmp / f"farm-join-{name}.log", env or user_env())
