"""The upload gateway beside the Serve application: its app, and starting and stopping it.

One gateway per cluster, on the head node (`actors/upload_gateway.py`). See
docs/assets.md, "Where bytes go".
"""

from __future__ import annotations

import functools

import ray
from fastapi import FastAPI

from actors.upload_gateway import stop_upload_gateway, upload_gateway
from config.settings import Settings
from serve.app import create_upload_app


def gateway_app(settings: Settings) -> FastAPI:
    """Built inside the gateway actor (uvicorn calls it), like the Api on its replicas."""
    from serve.ray_link import RayLink

    return create_upload_app(settings, RayLink())


def launch_gateway(settings: Settings):
    """Create the gateway if the cluster has none; returns its handle without waiting."""
    return upload_gateway(settings.upload_bind_host, settings.upload_port,
                          settings.upload_gateway_cpus, functools.partial(gateway_app, settings))


def wait_gateway(gateway, timeout_s: float = 120.0) -> str:
    """Block until the gateway serves; returns the address it listens on."""
    return ray.get(gateway.ready.remote(), timeout=timeout_s)


def stop_gateway() -> None:
    stop_upload_gateway()
