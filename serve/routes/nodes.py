"""Farm nodes: the list, and taking one in and out of service (docs/farm.md, "Nodes")."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Request

from pipelines.farm.node_admin import NodeAdmin
from pipelines.farm.views import NodeLabels, NodeList, NodeMode, NodeOut
from pipelines.identity.models import Principal
from pipelines.identity.permissions import Action
from serve.contract import errors
from serve.deps import require

router = APIRouter(tags=["farm"])
FarmReader = Annotated[Principal, require(Action.FARM_READ)]
NodeManager = Annotated[Principal, require(Action.FARM_NODE_MANAGE)]
NODE_ERRORS = errors(codes={403: ["not_a_node_manager"], 404: ["node_not_found"]})


def get_nodes(request: Request) -> NodeAdmin:
    return request.app.state.platform.nodes


NodesDep = Annotated[NodeAdmin, Depends(get_nodes)]


@router.get("/farm/nodes", response_model=NodeList,
            summary="Farm nodes: state, slots, running tasks, circuit, recent failures")
async def farm_nodes(nodes: NodesDep, who: FarmReader) -> dict:
    return {"items": await nodes.all(who), "next_cursor": None}


@router.get("/farm/nodes/{node_id}", response_model=NodeOut, summary="One farm node",
            responses=errors(codes={404: ["node_not_found"]}))
async def farm_node(node_id: str, nodes: NodesDep, who: FarmReader) -> dict:
    return await nodes.get(who, node_id)


def _mode(mode: str) -> Any:
    async def set_mode(node_id: str, nodes: NodesDep, who: NodeManager,
                       body: NodeMode | None = None) -> dict:
        return await nodes.set_mode(who, node_id, mode, body.reason if body else None)

    set_mode.__name__ = f"{mode}_node"
    return set_mode


for _mode_name, _summary in (
        ("lock", "Lock: nothing new is leased to the node; its running tasks finish"),
        ("drain", "Drain: lock, then `node.drained` once it runs nothing"),
        ("unlock", "Unlock (or stop draining): the node gets work again")):
    router.add_api_route(f"/farm/nodes/{{node_id}}/{_mode_name}", _mode(_mode_name),
                         methods=["POST"], response_model=NodeOut, responses=NODE_ERRORS,
                         summary=_summary)


@router.patch("/farm/nodes/{node_id}", response_model=NodeOut,
              summary="Set the node's labels (tags people give it, which jobs may require)",
              responses=errors(codes={403: ["not_a_node_manager"], 404: ["node_not_found"],
                                      422: ["invalid_label"]}))
async def label_node(node_id: str, body: NodeLabels, nodes: NodesDep,
                     who: NodeManager) -> dict:
    return await nodes.set_labels(who, node_id, body.labels)
