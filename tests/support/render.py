"""Factories for render-job tests: a scene version, a target asset, a render job body."""

from __future__ import annotations

import json
import subprocess
from dataclasses import dataclass
from pathlib import Path

import httpx

from tests.support.assets import create_asset, upload_simple


@dataclass
class RenderSetup:
    scene_asset: dict
    target: dict


def probe(path: Path) -> dict:
    out = subprocess.run(["ffprobe", "-v", "error", "-count_packets", "-print_format", "json",
                          "-show_streams", "-show_format", str(path)],
                         capture_output=True, check=True, timeout=30)
    return json.loads(out.stdout)


async def scene_and_target(http: httpx.AsyncClient, headers: dict,
                           blend: bytes) -> RenderSetup:
    scene = await create_asset(http, headers, kind="environment")
    uploaded = await upload_simple(http, headers, scene["id"], blend, filename="shot.blend",
                                   content_type="application/x-blender")
    assert uploaded.status_code == 201, uploaded.text
    return RenderSetup(scene, await create_asset(http, headers, kind="render"))


def render_body(setup: RenderSetup, frames: str = "1-24", chunk_size: int = 2,
                **render: object) -> dict:
    return {"kind": "render", "name": "shot render", "frames": frames,
            "chunk_size": chunk_size,
            "render": {"scene": {"asset_id": setup.scene_asset["id"], "version": 1},
                       "target_asset_id": setup.target["id"], "samples": 2, **render}}
