"""The upload gateway: one uvicorn server in a detached actor, serving the byte routes.

Ray Serve's proxy reads a request body into an unbounded queue, so a large upload sits in
its memory (and in the replica's). uvicorn stops reading a connection while the app has
not taken the 64 KiB it holds, so TCP flow control slows the client to the pace at which
storage takes the bytes. The ASGI app comes in as a factory (built in `serve.gateway`),
which keeps this shell free of the HTTP layer.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
from collections.abc import Callable
from typing import Any

import ray
import uvicorn
from ray._common.constants import HEAD_NODE_RESOURCE_NAME
from ray.exceptions import RayError

NAME = "farm-upload-gateway"
NAMESPACE = "studio-farm"


class UploadGateway:
    """Binds in `__init__` (a taken port fails the actor's creation, with its reason) and
    serves on the actor's own event loop, so a restarted actor serves again by itself."""

    def __init__(self, host: str, port: int, app_factory: Callable[[], Any]):
        family = socket.AF_INET6 if ":" in host else socket.AF_INET
        sock = socket.socket(family, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((host, port))
        self.address = f"{host}:{port}"
        config = uvicorn.Config(app_factory, factory=True, host=host, port=port,
                                lifespan="on", access_log=False, log_config=None,
                                server_header=False, timeout_keep_alive=30)
        self.server = uvicorn.Server(config)
        # An async actor's __init__ runs on the actor's event loop (checked on Ray 2.60;
        # Serve's proxy starts its uvicorn the same way).
        self._serving = asyncio.get_running_loop().create_task(self.server.serve([sock]))

    async def ready(self) -> str:
        """Wait until the server accepts connections; raise what stopped it otherwise."""
        while not self.server.started:
            if self._serving.done():
                self._serving.result()
                raise RuntimeError("the upload gateway stopped while starting (see its log)")
            await asyncio.sleep(0.05)
        return self.address

    async def stop(self) -> None:
        self.server.should_exit = True
        await asyncio.wait([self._serving], timeout=10)


def upload_gateway(host: str, port: int, cpus: float, app_factory: Callable[[], Any]):
    """The cluster's gateway, created on the head node on first use."""
    return ray.remote(UploadGateway).options(
        name=NAME, namespace=NAMESPACE, lifetime="detached", get_if_exists=True,
        num_cpus=cpus, max_restarts=-1, resources={HEAD_NODE_RESOURCE_NAME: 0.001},
    ).remote(host, port, app_factory)


def stop_upload_gateway() -> None:
    try:
        gateway = ray.get_actor(NAME, namespace=NAMESPACE)
    except ValueError:
        return
    with contextlib.suppress(RayError):  # gone or stuck: the kill below ends it either way
        ray.get(gateway.stop.remote(), timeout=15)
    ray.kill(gateway, no_restart=True)
