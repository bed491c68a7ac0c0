"""Shared set-up for benchmarks: embedded services, a local Ray, the Serve app, a studio."""

from __future__ import annotations

import logging
import tempfile
import uuid
from dataclasses import dataclass
from pathlib import Path

import httpx
import ray

from config.settings import Settings
from pipelines.embedded import EmbeddedServices, free_port
from tests.support.services import wait_ready


@dataclass
class Stack:
    settings: Settings
    services: EmbeddedServices
    base_url: str

    def stop(self) -> None:
        ray.shutdown()
        self.services.stop()


def start_stack(**overrides: object) -> Stack:
    data_dir = Path(tempfile.mkdtemp(prefix="farm-bench-"))
    services = EmbeddedServices(data_dir)
    found = services.start()
    values = {"env": "test", "data_dir": data_dir, "api_port": free_port(),
              "upload_port": free_port(),
              "bcrypt_rounds": 4, "rate_limit_requests": 10**9, **found, **overrides}
    settings = Settings(**values)
    ray.init(address="local", namespace="studio-farm", include_dashboard=False,
             logging_level=logging.WARNING)
    from serve import deployments

    deployments.start(settings)
    base_url = f"http://127.0.0.1:{settings.api_port}"
    wait_ready(base_url)
    return Stack(settings, services, base_url)


def register(base_url: str) -> dict[str, str]:
    slug = f"bench-{uuid.uuid4().hex[:8]}"
    body = {"studio_name": slug, "studio_slug": slug, "email": f"a@{slug}.example",
            "name": "Bench", "password": "benchmark password"}
    response = httpx.post(f"{base_url}/api/v1/auth/register", json=body, timeout=30)
    response.raise_for_status()
    return {"Authorization": f"Bearer {response.json()['access_token']}"}
