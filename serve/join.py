"""`farm join HEAD`: this machine becomes a render node of a running farm, and leaves cleanly.

It runs `ray start --block` with the farm resource, tags as labels and the cluster's auth
token, and stays in the foreground. On Ctrl-C or SIGTERM it first tells the dispatcher the
node is leaving (its tasks go back to the queue at once, without costing an attempt, and
their process groups are stopped), then stops the node. Ray is imported only after the
token variables are set (it reads them at import).
"""

from __future__ import annotations

import contextlib
import functools
import json
import logging
import os
import re
import signal
import socket
import subprocess
import tempfile
import threading
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pipelines.embedded import child_setup, find_executable
from pipelines.farm.control.ports import FARM_RESOURCE, TAG_LABEL_PREFIX
from pipelines.farm.models import TAG_PATTERN
from serve.cluster_auth import TokenMissing, use_join_token
from serve.launcher import on_stop_signals

DEFAULT_PORT = 6379
JOIN_LABEL = "farm-join"  # a unique value per `farm join`, to find our node among others
_TAG = re.compile(TAG_PATTERN)
STARTED_MARK = "Ray runtime started"


class JoinFailed(Exception):
    """Said in one line, and `farm join` exits non-zero."""


@dataclass
class JoinRequest:
    head: str
    slots: float
    gpus: int | None = None
    cpus: int | None = None
    tags: list[str] = field(default_factory=list)
    name: str = field(default_factory=socket.gethostname)
    token_file: str | None = None
    start_timeout_s: float = 120.0


def join(request: JoinRequest) -> int:
    try:
        return _join(request)
    except JoinFailed as exc:
        print(f"farm join: {exc}", flush=True)
        return 1


def _join(request: JoinRequest) -> int:
    address = head_address(request.head)
    if request.slots <= 0:
        raise JoinFailed("--slots must be more than 0")
    bad = [t for t in request.tags if not _TAG.match(t)]
    if bad:
        raise JoinFailed(f"invalid tag(s) {', '.join(bad)}: lowercase letters, digits, "
                         "'.', '_' or '-', starting and ending with a letter or digit")
    try:
        token = use_join_token(request.token_file)
    except TokenMissing as exc:
        raise JoinFailed(str(exc)) from None
    reachable(address)
    stop = threading.Event()
    on_stop_signals(stop)
    join_id = uuid.uuid4().hex[:12]
    log_path = Path(tempfile.gettempdir()) / f"farm-join-{join_id}.log"
    node = _start_node(request, address, join_id, log_path, stop)
    try:
        node_id = _node_id(address, join_id, stop)
        gpus = request.gpus if request.gpus is not None else "detected"
        print(f"Joined the farm at {address} as {request.name} (node {node_id}): "
              f"{request.slots:g} slot(s), GPUs: {gpus}, "
              f"tags: {', '.join(request.tags) or 'none'}; token: {token}.\n"
              f"Ray's log: {log_path}. Ctrl-C leaves the farm cleanly.", flush=True)
        while not stop.wait(1.0):
            if node.poll() is not None:
                raise JoinFailed(f"the node stopped (exit {node.returncode}): the head may be "
                                 f"gone; see {log_path}")
        print("leaving the farm: requeueing this node's tasks…", flush=True)
        _leave(address, node_id, stop)
        print("left the farm; stopping the node", flush=True)
        return 0
    finally:
        _stop_node(node)


def head_address(head: str) -> str:
    host, _, port = head.strip().rpartition(":") if ":" in head else (head.strip(), "", "")
    host = host or head.strip()
    if not host:
        raise JoinFailed("give the head's address, e.g. farm join 10.0.0.5:6379")
    if port and not port.isdigit():
        raise JoinFailed(f"invalid port in {head!r}")
    return f"{host}:{port or DEFAULT_PORT}"


def reachable(address: str, timeout_s: float = 5.0) -> None:
    host, port = address.rsplit(":", 1)
    try:
        with socket.create_connection((host, int(port)), timeout=timeout_s):
            return
    except OSError as exc:
        raise JoinFailed(f"cannot reach the head at {address}: "
                         f"{exc.strerror or type(exc).__name__}") from None


def _start_node(request: JoinRequest, address: str, join_id: str, log_path: Path,
                stop: threading.Event) -> subprocess.Popen:
    labels = {JOIN_LABEL: join_id} | {f"{TAG_LABEL_PREFIX}{t}": "yes" for t in request.tags}
    argv = [find_executable("ray"), "start", f"--address={address}", "--block",
            "--disable-usage-stats", f"--node-name={request.name}",
            f"--resources={json.dumps({FARM_RESOURCE: request.slots})}",
            f"--labels={','.join(f'{k}={v}' for k, v in labels.items())}",
            *([f"--num-gpus={request.gpus}"] if request.gpus is not None else []),
            *([f"--num-cpus={request.cpus}"] if request.cpus is not None else [])]
    # Ray's own drain on SIGTERM waits for worker leases, and a node agent holds one for
    # good: it would only add 30 s. `_leave` drained the node already.
    env = os.environ | {"RAY_GRACEFUL_SHUTDOWN_DRAIN_TIMEOUT_S": "0"}
    with open(log_path, "wb") as log:
        # Own session (Ctrl-C reaches us first, and we leave before the node stops); told
        # to stop (SIGTERM) should we die without stopping it.
        node = subprocess.Popen(argv, stdout=log, stderr=subprocess.STDOUT, env=env,
                                preexec_fn=functools.partial(child_setup, signal.SIGTERM))
    deadline = time.monotonic() + request.start_timeout_s
    while time.monotonic() < deadline:
        text = log_path.read_text(errors="replace")
        if STARTED_MARK in text:
            return node
        if node.poll() is not None:
            raise JoinFailed(_start_error(text, log_path))
        if stop.wait(0.2):
            _stop_node(node)
            raise JoinFailed("stopped before the node had joined")
    _stop_node(node)
    raise JoinFailed(f"the node did not start within {request.start_timeout_s:g} s; "
                     f"see {log_path}")


def _start_error(text: str, log_path: Path) -> str:
    if "InvalidAuthToken" in text or "AuthenticationError" in text:
        return "the head refused this node's auth token (check --token-file or RAY_AUTH_TOKEN)"
    lines = [line for line in text.splitlines() if line.strip()]
    return f"ray start failed: {lines[-1][:300] if lines else 'no output'} (log: {log_path})"


@contextlib.contextmanager
def _connected(address: str, stop: threading.Event) -> Iterator[Any]:
    """A short driver connection; our Ctrl-C/SIGTERM handlers hold throughout and after
    (ray.init and ray.shutdown each install their own)."""
    import ray  # after the token variables are set

    ray.init(address=address, namespace="studio-farm", logging_level=logging.WARNING,
             log_to_driver=False, configure_logging=False)
    on_stop_signals(stop)
    try:
        yield ray
    finally:
        ray.shutdown()
        on_stop_signals(stop)


def _node_id(address: str, join_id: str, stop: threading.Event) -> str:
    with _connected(address, stop) as ray:
        for node in ray.nodes():
            if node.get("Alive") and (node.get("Labels") or {}).get(JOIN_LABEL) == join_id:
                return node["NodeID"]
    raise JoinFailed("the node started but the cluster does not list it")


def _leave(address: str, node_id: str, stop: threading.Event,
           timeout_s: float = 30.0) -> None:
    """Tell the dispatcher (it requeues and stops this node's tasks), wait until the agent
    runs nothing, then stop whatever is left there and the agent itself."""
    from actors.dispatcher import NAME, NAMESPACE
    from actors.node_agent import agent_name

    with _connected(address, stop) as ray:
        try:
            ray.get(ray.get_actor(NAME, NAMESPACE).leave.remote(node_id), timeout=10)
        except Exception as exc:  # noqa: BLE001 - its tasks requeue once the node is gone
            print(f"the dispatcher did not answer ({type(exc).__name__}); this node's tasks "
                  "are requeued when the cluster notices it is gone", flush=True)
            timeout_s = 0.0
        try:
            agent = ray.get_actor(agent_name(node_id), NAMESPACE)
        except ValueError:
            return  # no agent: this node never ran anything
        try:
            deadline = time.monotonic() + timeout_s
            while time.monotonic() < deadline and ray.get(agent.running.remote(), timeout=10):
                time.sleep(0.3)
            # What is still there (no dispatcher to stop it, or a lease that crossed our
            # leave) is stopped with its process group: it would outlive the node.
            ray.get(agent.stop_all.remote(), timeout=30)
            ray.kill(agent, no_restart=True)  # at once: Ray's drain must not wait on it
        except Exception as exc:  # noqa: BLE001 - the node is stopped next whatever happened
            print(f"leaving: {type(exc).__name__}: {exc}", flush=True)


def _stop_node(node: subprocess.Popen) -> None:
    if node.poll() is None:
        node.send_signal(signal.SIGTERM)  # `ray start --block` stops its processes
        try:
            node.wait(timeout=60)
        except subprocess.TimeoutExpired:
            node.kill()
            node.wait()
