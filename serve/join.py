"""`farm join HEAD`: this machine becomes a render node of a running farm, and leaves cleanly.

It runs `ray start --block` with the farm resource, tags as labels and the cluster's auth
token, and stays in the foreground. On Ctrl-C or SIGTERM it first tells the dispatcher the
node is leaving (its tasks go back to the queue at once, without costing an attempt, and
their process groups are stopped), then stops the node. Ray is imported only after the
token variables are set (it reads them at import).
"""

from __future__ import annotations

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
from dataclasses import dataclass, field
from pathlib import Path

from pipelines.embedded import child_setup, find_executable
from pipelines.farm.ports import FARM_RESOURCE, TAG_LABEL_PREFIX
from serve.cluster_auth import TokenMissing, use_join_token

DEFAULT_PORT = 6379
JOIN_LABEL = "farm-join"  # a unique value per `farm join`, to find our node among others
_TAG = re.compile(r"^[a-z0-9]([a-z0-9_.-]{0,38}[a-z0-9])?$")  # a farm tag that is a label too
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
    _on_stop_signals(stop)
    join_id = uuid.uuid4().hex[:12]
    log_path = Path(tempfile.gettempdir()) / f"farm-join-{join_id}.log"
    node = _start_node(request, address, join_id, log_path)
    try:
        node_id = _node_id(address, join_id)
        _on_stop_signals(stop)  # ray.init installs its own SIGTERM handler; ours wins
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
        _leave(address, node_id)
        _on_stop_signals(stop)
        print("left the farm; stopping the node", flush=True)
        return 0
    finally:
        _stop_node(node)


def _on_stop_signals(stop: threading.Event) -> None:
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: stop.set())


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


def _start_node(request: JoinRequest, address: str, join_id: str,
                log_path: Path) -> subprocess.Popen:
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
        time.sleep(0.2)
    _stop_node(node)
    raise JoinFailed(f"the node did not start within {request.start_timeout_s:g} s; "
                     f"see {log_path}")


def _start_error(text: str, log_path: Path) -> str:
    if "InvalidAuthToken" in text or "AuthenticationError" in text:
        return "the head refused this node's auth token (check --token-file or RAY_AUTH_TOKEN)"
    lines = [line for line in text.splitlines() if line.strip()]
    return f"ray start failed: {lines[-1][:300] if lines else 'no output'} (log: {log_path})"


def _connect(address: str):
    import ray  # after the token variables are set

    ray.init(address=address, namespace="studio-farm", logging_level=logging.WARNING,
             log_to_driver=False, configure_logging=False)
    return ray


def _node_id(address: str, join_id: str) -> str:
    ray = _connect(address)
    try:
        for node in ray.nodes():
            if node.get("Alive") and (node.get("Labels") or {}).get(JOIN_LABEL) == join_id:
                return node["NodeID"]
        raise JoinFailed("the node started but the cluster does not list it")
    finally:
        ray.shutdown()


def _leave(address: str, node_id: str, timeout_s: float = 30.0) -> None:
    """Tell the dispatcher, then wait until this node's agent runs nothing."""
    from actors.dispatcher import NAME, NAMESPACE
    from actors.node_agent import agent_name

    ray = _connect(address)
    try:
        try:
            ray.get(ray.get_actor(NAME, NAMESPACE).leave.remote(node_id), timeout=10)
        except Exception as exc:  # noqa: BLE001 - the node stops anyway; its tasks requeue
            print(f"the dispatcher did not answer ({type(exc).__name__}); its tasks are "
                  "requeued when the cluster notices the node is gone", flush=True)
            return
        try:
            agent = ray.get_actor(agent_name(node_id), NAMESPACE)
        except ValueError:
            return  # no agent: this node never ran anything
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline and ray.get(agent.running.remote(), timeout=10):
            time.sleep(0.3)
        # Idle now; gone at once, so Ray's own drain of the node does not wait on it.
        ray.kill(agent, no_restart=True)
    finally:
        ray.shutdown()


def _stop_node(node: subprocess.Popen) -> None:
    if node.poll() is None:
        node.send_signal(signal.SIGTERM)  # `ray start --block` stops its processes
        try:
            node.wait(timeout=60)
        except subprocess.TimeoutExpired:
            node.kill()
            node.wait()
