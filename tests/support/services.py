"""Session-wide real services for the tests: embedded MongoDB-wire and S3 servers, Ray, Serve."""

from __future__ import annotations

import time

import httpx

from config.settings import Settings
from pipelines.embedded import EmbeddedServices, free_port


def test_settings(services: EmbeddedServices, overrides: dict, **extra: object) -> Settings:
    values: dict[str, object] = {
        "env": "test",
        "data_dir": services.data_dir,
        "api_port": free_port(),
        "upload_port": free_port(),
        "bcrypt_rounds": 4,
        "rate_limit_requests": 1_000_000,
        "cors_origins": ["http://studio.example"],
        "json_body_limit_bytes": 64 * 1024,
        "api_replicas": 2,
        "api_replica_cpus": 0.1,
        "upload_part_size_bytes": 5 * 1024 * 1024,
        "simple_upload_limit_bytes": 8 * 1024 * 1024,
        "max_upload_bytes": 4 * 1024**3,
        "studio_quota_bytes": 1024**3,
        "studio_max_open_uploads": 40,
        # The suite signs up studios by the thousand; confirming each email would only
        # slow it. The flow itself runs on an Api of its own that asks for it
        # (tests/integration/test_account_mail.py), and on every `farm up` (tests/system).
        "email_verification": False,
        "mail_retry_initial_s": 0.5,
        # A stalled upload body is refused after 3 s here (60 s by default).
        "upload_idle_timeout_s": 3.0,
        # Sockets re-check their credential every second (4401 tests), not every 30 s.
        "ws_auth_recheck_s": 1.0,
        # A fast farm: quick retries, short cooldowns, nodes given up on quickly.
        "retry_initial_s": 0.4,
        "circuit_threshold": 2,
        "circuit_cooldown_s": 4.0,
        "node_silence_s": 6.0,
        "task_lease_s": 10.0,
    }
    return Settings(**(values | overrides | extra))


def wait_ready(base_url: str, timeout_s: float = 60.0) -> httpx.Response:
    deadline = time.monotonic() + timeout_s
    last: httpx.Response | None = None
    while time.monotonic() < deadline:
        try:
            last = httpx.get(f"{base_url}/ready", timeout=5)
            if last.status_code == 200:
                return last
        except httpx.HTTPError:
            pass
        time.sleep(0.3)
    raise AssertionError(f"API at {base_url} not ready: {last.text if last else 'no answer'}")
