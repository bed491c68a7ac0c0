"""Fixtures that start real services once per test run, on free loopback ports.

One Ray cluster (`ray.cluster_utils.Cluster`, so farm nodes can be added by tests), one
embedded database and object store, and the Serve application with two Api replicas.
Set FARM_MONGO_URL to run the database tests against a real MongoDB instead.
"""

from __future__ import annotations

import logging
import os
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import pytest

from pipelines.embedded import EmbeddedServices
from tests.support import contract
from tests.support.services import test_settings, wait_ready


@pytest.fixture(scope="session")
def data_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("farm-data")


@pytest.fixture(scope="session")
def services(data_dir: Path) -> Iterator[EmbeddedServices]:
    embedded = EmbeddedServices(data_dir)
    overrides = embedded.start(mongo=not os.environ.get("FARM_MONGO_URL"), s3=True,
                               smtp=True)
    if os.environ.get("FARM_MONGO_URL"):
        overrides["mongo_url"] = os.environ["FARM_MONGO_URL"]
    embedded.overrides = overrides  # type: ignore[attr-defined]
    yield embedded
    embedded.stop()


@pytest.fixture(scope="session")
def settings(services: EmbeddedServices):
    return test_settings(services, services.overrides)  # type: ignore[attr-defined]


@pytest.fixture(scope="session")
def ray_cluster():
    import ray
    from ray.cluster_utils import Cluster

    cluster = Cluster(
        initialize_head=True,
        head_node_args={"num_cpus": 4, "include_dashboard": False},
    )
    ray.init(address=cluster.address, namespace="studio-farm", logging_level=logging.WARNING)
    yield cluster
    ray.shutdown()
    cluster.shutdown()


@dataclass
class Farm:
    cluster: object
    nodes: list = field(default_factory=list)

    def add(self, slots: int = 2):
        node = self.cluster.add_node(num_cpus=2, resources={"farm": slots})
        self.cluster.wait_for_nodes()
        self.nodes.append(node)
        return node

    def remove(self, node) -> None:
        self.nodes.remove(node)
        self.cluster.remove_node(node, allow_graceful=False)


@pytest.fixture(scope="session")
def farm(ray_cluster, api):
    """Two farm nodes (real raylets with the `farm` resource) for cluster and chaos tests."""
    farm = Farm(ray_cluster)
    farm.add()
    farm.add()
    yield farm
    for node in list(farm.nodes):
        farm.remove(node)


@pytest.fixture(scope="session")
def api(settings, ray_cluster) -> Iterator[str]:
    from serve import deployments

    deployments.start(settings)
    base_url = f"http://127.0.0.1:{settings.api_port}"
    wait_ready(base_url)
    yield base_url


@pytest.fixture
async def http(api: str) -> AsyncIterator[httpx.AsyncClient]:
    # Every answer is checked against the OpenAPI document (tests/support/contract.py).
    async with contract.client(base_url=api, timeout=30) as client:
        yield client


@pytest.fixture(scope="session")
async def db(settings):
    from pipelines.db import Database

    database = Database(settings.mongo_url.get_secret_value(), settings.mongo_db)
    yield database
    await database.close()


@pytest.fixture(scope="session")
def mp4_bytes(tmp_path_factory) -> bytes:
    """A real H.264 MP4 made by FFmpeg, once per run."""
    from tests.support.media import make_mp4

    return make_mp4(tmp_path_factory.mktemp("media") / "clip.mp4").read_bytes()
