"""Embedded MongoDB-wire, S3 and SMTP servers for `farm up` and the tests.

Each child runs on a loopback port chosen once per supervisor, keeps its files under
the data dir (so data survives a restart) and is restarted with backoff if it dies.
Children get SIGKILL from the kernel if this process dies (PR_SET_PDEATHSIG), so even
a crashed supervisor leaves no orphans.
"""

from __future__ import annotations

import contextlib
import ctypes
import json
import logging
import os
import random
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

log = logging.getLogger("farm.embedded")

_PR_SET_PDEATHSIG = 1


# Ports handed out, for a child to bind later: below the kernel's ephemeral range, which
# Ray's daemons draw from as they start (a port picked there and released can be taken by
# one of them before our child binds it), and above Ray's worker ports (10002-19999).
_PICK_FROM = 20000
_handed_out: set[int] = set()


def free_port(host: str = "127.0.0.1") -> int:
    """A port nothing listens on now, not handed out before by this process."""
    try:
        low = int(Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split()[0])
    except (OSError, ValueError, IndexError):
        low = 32768
    for _ in range(100):
        port = random.randrange(_PICK_FROM, low) if low > _PICK_FROM + 100 else 0
        with socket.socket() as sock:
            try:
                sock.bind((host, port))
            except OSError:
                continue
            port = sock.getsockname()[1]
        if port not in _handed_out:
            _handed_out.add(port)
            return port
    raise OSError(f"no free port on {host}")


def find_executable(name: str) -> str:
    """The tool from this interpreter's environment first, then PATH."""
    beside = Path(sys.executable).parent / name
    if beside.exists():
        return str(beside)
    found = shutil.which(name)
    if not found:
        raise FileNotFoundError(f"{name} not found next to {sys.executable} or on PATH")
    return found


def child_setup(death_signal: int = signal.SIGKILL) -> None:
    # Own session: a terminal's Ctrl-C reaches `farm up`, which stops the API before the
    # database and storage it depends on. PDEATHSIG: die with us even if we are SIGKILLed.
    os.setsid()
    with contextlib.suppress(OSError, AttributeError):
        libc = ctypes.CDLL("libc.so.6", use_errno=True)
        libc.prctl(_PR_SET_PDEATHSIG, death_signal)


def wait_for_port(host: str, port: int, timeout_s: float) -> bool:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        with contextlib.suppress(OSError), socket.create_connection((host, port), timeout=0.5):
            return True
        time.sleep(0.05)
    return False


@dataclass
class Child:
    """One supervised server process."""

    name: str
    argv: list[str]
    port: int
    log_path: Path
    host: str = "127.0.0.1"
    process: subprocess.Popen | None = None
    wanted: bool = False
    failures: int = 0
    next_start_at: float = 0.0
    started_at: float = 0.0
    restarts: int = 0
    env: dict[str, str] | None = None  # added to ours: for secrets, unlike argv not public

    def spawn(self) -> None:
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        with open(self.log_path, "ab") as out:
            self.process = subprocess.Popen(
                self.argv,
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=subprocess.STDOUT,
                env=os.environ | self.env if self.env else None,
                preexec_fn=child_setup if sys.platform == "linux" else None,
            )
        self.started_at = time.monotonic()

    def alive(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def terminate(self, grace_s: float = 5.0) -> None:
        if not self.alive():
            return
        assert self.process is not None
        self.process.terminate()
        try:
            self.process.wait(grace_s)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait(grace_s)


@dataclass
class S3Credentials:
    access_key: str
    secret_key: str

    @classmethod
    def load_or_create(cls, path: Path) -> S3Credentials:
        """Generated once and kept in the data dir, readable by the owner only."""
        if path.exists():
            data = json.loads(path.read_text())
            return cls(data["access_key"], data["secret_key"])
        path.parent.mkdir(parents=True, exist_ok=True)
        creds = cls("farm" + secrets.token_hex(8), secrets.token_urlsafe(30))
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as out:
            json.dump({"access_key": creds.access_key, "secret_key": creds.secret_key}, out)
        return creds


def mongo_child(data_dir: Path, port: int | None = None) -> Child:
    port = port or free_port()
    db_dir = data_dir / "mongo"
    db_dir.mkdir(parents=True, exist_ok=True)
    argv = [
        find_executable("nx-27017"), "--data-dir", str(db_dir), "--host", "127.0.0.1",
        "-p", str(port), "--log-file", str(data_dir / "logs" / "mongo.log"),
        "--pid-file", str(data_dir / "mongo.pid"),
    ]
    return Child("mongo", argv, port, data_dir / "logs" / "mongo.out")


def s3_child(data_dir: Path, creds: S3Credentials, port: int | None = None) -> Child:
    port = port or free_port()
    objects = data_dir / "objects"
    objects.mkdir(parents=True, exist_ok=True)
    argv = [
        find_executable("rclone"), "serve", "s3", "--addr", f"127.0.0.1:{port}",
        "--config", "/dev/null", "--log-file", str(data_dir / "logs" / "s3.log"), str(objects),
    ]
    # `--auth-key` by environment: any local user can read a command line (`ps`), only the
    # owner its environment. rclone reads a list flag's variable as CSV, hence the quotes.
    auth = {"RCLONE_AUTH_KEY": f'"{creds.access_key},{creds.secret_key}"'}
    return Child("s3", argv, port, data_dir / "logs" / "s3.out", env=auth)


def smtp_child(data_dir: Path, port: int | None = None) -> Child:
    port = port or free_port()
    argv = [sys.executable, "-m", "pipelines.mail.devserver", "--port", str(port),
            "--dir", str(data_dir / "mail")]
    return Child("smtp", argv, port, data_dir / "logs" / "smtp.out")


@dataclass
class Supervisor:
    """Starts children, restarts them with exponential backoff, stops them all."""

    children: dict[str, Child] = field(default_factory=dict)
    poll_s: float = 0.25
    backoff_max_s: float = 30.0
    start_timeout_s: float = 30.0
    _stop: threading.Event = field(default_factory=threading.Event)
    _lock: threading.RLock = field(default_factory=threading.RLock)
    _thread: threading.Thread | None = None

    def add(self, child: Child) -> Child:
        self.children[child.name] = child
        return child

    def start(self, name: str, wait: bool = True) -> None:
        with self._lock:
            child = self.children[name]
            child.wanted = True
            if not child.alive():
                child.spawn()
        if wait and not wait_for_port(child.host, child.port, self.start_timeout_s):
            raise RuntimeError(f"{name} did not open port {child.port}; see {child.log_path}")

    def stop(self, name: str) -> None:
        """Stop a child and keep it stopped (until `start`)."""
        with self._lock:
            child = self.children[name]
            child.wanted = False
            child.terminate()

    def start_all(self) -> None:
        for name in self.children:
            self.start(name)
        if self._thread is None:
            self._thread = threading.Thread(target=self._watch, name="supervisor", daemon=True)
            self._thread.start()

    def stop_all(self) -> None:
        self._stop.set()
        for name in list(self.children):
            self.stop(name)

    def _watch(self) -> None:
        while not self._stop.wait(self.poll_s):
            with self._lock:
                for child in self.children.values():
                    self._tend(child)

    def _tend(self, child: Child) -> None:
        now = time.monotonic()
        if not child.wanted or child.alive():
            if child.alive() and now - child.started_at > 60:
                child.failures = 0  # a minute of health forgives past crashes
            return
        if child.next_start_at == 0.0:
            child.failures += 1
            delay = min(self.backoff_max_s, 0.5 * 2 ** (child.failures - 1))
            child.next_start_at = now + delay
            log.warning("%s exited (code %s); restarting in %.1fs",
                        child.name, child.process.returncode if child.process else None, delay)
        elif now >= child.next_start_at:
            child.next_start_at = 0.0
            child.restarts += 1
            child.spawn()


@dataclass
class EmbeddedServices:
    """The embedded database, object store and mail server, and the settings that reach
    them."""

    data_dir: Path
    supervisor: Supervisor = field(default_factory=Supervisor)
    s3_credentials: S3Credentials | None = None

    def start(self, mongo: bool = True, s3: bool = True,
              smtp: bool = True) -> dict[str, object]:
        """Start what is asked for; return the `Settings` overrides that point at it."""
        self.data_dir.mkdir(parents=True, exist_ok=True)
        overrides: dict[str, object] = {}
        if mongo:
            child = self.supervisor.add(mongo_child(self.data_dir))
            overrides["mongo_url"] = f"mongodb://127.0.0.1:{child.port}/?directConnection=true"
        if s3:
            self.s3_credentials = S3Credentials.load_or_create(
                self.data_dir / "s3-credentials.json"
            )
            child = self.supervisor.add(s3_child(self.data_dir, self.s3_credentials))
            overrides["s3_endpoint"] = f"127.0.0.1:{child.port}"
            overrides["s3_access_key"] = self.s3_credentials.access_key
            overrides["s3_secret_key"] = self.s3_credentials.secret_key
        if smtp:
            child = self.supervisor.add(smtp_child(self.data_dir))
            overrides |= {"smtp_host": "127.0.0.1", "smtp_port": child.port,
                          "smtp_security": "none"}
        self.supervisor.start_all()
        return overrides

    def stop(self) -> None:
        self.supervisor.stop_all()
