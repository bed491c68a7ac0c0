"""The deployment files cannot run here; parse them and check everything they name exists."""

from __future__ import annotations

import importlib
import re
import shlex
import tomllib
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[2]


def _console_scripts() -> set[str]:
    return set(tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["scripts"])


def test_compose_has_the_promised_services_and_commands_that_exist():
    compose = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
    services = compose["services"]
    expected = {"mongo", "minio", "ray-head", "farm-node-1", "farm-node-2", "prometheus"}
    assert expected <= set(services)
    assert services["mongo"]["image"] == "mongo:7"
    for node in ("farm-node-1", "farm-node-2"):
        command = services[node]["command"]
        assert command.startswith("farm join ray-head:6379 --slots 2")
        assert services[node]["environment"]["RAY_AUTH_TOKEN"]  # nodes need the cluster token
    head = services["ray-head"]["command"]
    assert "farm up" in head and "farm" in _console_scripts()
    assert services["ray-head"]["environment"]["FARM_ENV"] == "production"
    for service in services.values():
        for volume in service.get("volumes", []):
            source = volume.split(":")[0]
            if source.startswith("./"):
                assert (ROOT / source).exists(), source


def test_dockerfile_copies_only_what_exists():
    for line in (ROOT / "Dockerfile").read_text().splitlines():
        if line.startswith("COPY "):
            for source in shlex.split(line)[1:-1]:
                assert (ROOT / source).exists(), source


def test_cluster_yaml_passes_rays_own_validation():
    from ray.autoscaler._private.util import prepare_config, validate_config

    config = yaml.safe_load((ROOT / "ray-cluster.yaml").read_text())
    validate_config(prepare_config(config))
    workers = " ".join(config["worker_start_ray_commands"])
    assert "farm join $RAY_HEAD_IP:6379 --slots 2" in workers and "--token-file" in workers
    head = " ".join(config["head_start_ray_commands"])
    assert "serve deploy config/serve.yaml" in head
    assert any("make setup" in c for c in config["setup_commands"])
    assert re.search(r"^setup:", (ROOT / "Makefile").read_text(), re.MULTILINE)


def test_serve_config_is_valid_and_its_import_path_builds():
    from ray.serve.schema import ServeDeploySchema

    config = yaml.safe_load((ROOT / "config/serve.yaml").read_text())
    schema = ServeDeploySchema.model_validate(config)
    module_name, attribute = schema.applications[0].import_path.split(":")
    builder = getattr(importlib.import_module(module_name), attribute)
    assert callable(builder)
