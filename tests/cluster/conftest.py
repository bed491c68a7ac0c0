"""Farm nodes joining the session's Ray cluster: real raylets with the `farm` resource."""

from __future__ import annotations

from dataclasses import dataclass, field

import pytest


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
    farm = Farm(ray_cluster)
    farm.add()
    farm.add()
    yield farm
    for node in list(farm.nodes):
        farm.remove(node)
