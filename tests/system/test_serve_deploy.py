"""The cluster path (`ray-cluster.yaml`'s head): `ray start --head`, then `serve deploy` of
config/serve.yaml. It must run the farm as `farm up` does: the same builder starts the
dispatcher beside the Api, so a job submitted over HTTP completes."""

from __future__ import annotations

import asyncio
import signal
import subprocess
import uuid
from pathlib import Path

import yaml

from pipelines.embedded import EmbeddedServices, free_port
from tests.support import contract
from tests.support.farm import submit, wait_job
from tests.support.services import wait_ready
from tests.support.system import BIN, launch, processes_with, user_env
from tests.system.test_first_run import register

SERVE_CONFIG = Path(__file__).resolve().parents[2] / "config" / "serve.yaml"


def _deploy_config(path: Path, api_port: int, env: dict[str, str]) -> Path:
    """config/serve.yaml as shipped, with this test's ports and stores in its runtime_env."""
    config = yaml.safe_load(SERVE_CONFIG.read_text())
    config["http_options"] = {"host": "127.0.0.1", "port": api_port}
    config["applications"][0]["runtime_env"]["env_vars"] = env
    path.write_text(yaml.safe_dump(config))
    return path


async def test_serve_deploy_runs_the_farm(tmp_path):
    services = EmbeddedServices(tmp_path / "data")
    stores = services.start()
    token = tmp_path / "ray-token"
    token.write_text(uuid.uuid4().hex * 2)
    ray_env = user_env(RAY_AUTH_MODE="token", RAY_AUTH_TOKEN_PATH=str(token),
                       RAY_GRACEFUL_SHUTDOWN_DRAIN_TIMEOUT_S="0")
    temp_dir = f"/tmp/rt-{uuid.uuid4().hex[:8]}"  # short: Ray's socket paths live under it
    dashboard, api_port = free_port(), free_port()
    head = launch([str(BIN / "ray"), "start", "--head", "--block", f"--port={free_port()}",
                   "--dashboard-host=127.0.0.1", f"--dashboard-port={dashboard}",
                   "--num-cpus=2", '--resources={"farm": 1}', f"--temp-dir={temp_dir}",
                   "--disable-usage-stats"], tmp_path / "head.log", ray_env)
    try:
        head.wait_for("Ray runtime started", timeout_s=120)
        config = _deploy_config(tmp_path / "serve.yaml", api_port, {
            "FARM_ENV": "development", "FARM_API_REPLICAS": "1",
            "FARM_UPLOAD_PORT": str(free_port()), "FARM_DATA_DIR": str(tmp_path / "data"),
            "FARM_MONGO_URL": str(stores["mongo_url"]),
            "FARM_S3_ENDPOINT": str(stores["s3_endpoint"]),
            "FARM_S3_ACCESS_KEY": str(stores["s3_access_key"]),
            "FARM_S3_SECRET_KEY": str(stores["s3_secret_key"]),
            "FARM_SMTP_HOST": str(stores["smtp_host"]),
            "FARM_SMTP_PORT": str(stores["smtp_port"]),
            "FARM_SMTP_SECURITY": str(stores["smtp_security"])})
        deployed = await asyncio.to_thread(
            subprocess.run, [str(BIN / "serve"), "deploy", str(config),
                             "-a", f"http://127.0.0.1:{dashboard}"],
            env=ray_env, capture_output=True, text=True, timeout=120)
        assert deployed.returncode == 0, deployed.stdout + deployed.stderr
        base = f"http://127.0.0.1:{api_port}"
        ready = await asyncio.to_thread(wait_ready, base, 240)
        assert ready.json()["checks"]["dispatcher"]["status"] == "ok"
        async with contract.client(base_url=base, timeout=30) as api:
            _, headers = await register(api, "deployed", tmp_path / "data" / "mail")
            job = await submit(api, headers, command=["true"], frames="1-3")
            done = await wait_job(api, headers, job["id"], timeout_s=120)
        assert done["status"] == "completed", done
    finally:
        head.stop(signal.SIGTERM, timeout_s=120)
        services.stop()
    assert processes_with(temp_dir) == []
