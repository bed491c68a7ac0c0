"""Small factories for asset and upload tests."""

from __future__ import annotations

import hashlib
import uuid

import httpx

MIB = 1024 * 1024


async def create_asset(http: httpx.AsyncClient, headers: dict, **fields: object) -> dict:
    body = {"name": f"asset {uuid.uuid4().hex[:8]}", "kind": "shot", **fields}
    response = await http.post("/api/v1/assets", json=body, headers=headers)
    assert response.status_code == 201, response.text
    return response.json()


async def upload_simple(http: httpx.AsyncClient, headers: dict, asset_id: str, data: bytes,
                        filename: str = "clip.mp4",
                        content_type: str = "video/mp4") -> httpx.Response:
    return await http.post(f"/api/v1/assets/{asset_id}/file", headers=headers,
                           files={"file": (filename, data, content_type)})


async def declare(http: httpx.AsyncClient, headers: dict, asset_id: str, data: bytes,
                  **extra: object) -> dict:
    body = {"filename": "big.mp4", "size": len(data),
            "sha256": hashlib.sha256(data).hexdigest(), **extra}
    response = await http.post(f"/api/v1/assets/{asset_id}/uploads", json=body, headers=headers)
    assert response.status_code == 201, response.text
    return response.json()


def chunks(data: bytes, part_size: int) -> list[bytes]:
    return [data[i:i + part_size] for i in range(0, len(data), part_size)]


async def put_direct(session: dict, data: bytes, only: set[int] | None = None) -> list[dict]:
    """PUT parts straight to storage with the presigned URLs."""
    sent = []
    async with httpx.AsyncClient(timeout=60) as storage:
        for url, part in zip(session["part_urls"], chunks(data, session["part_size"]),
                             strict=True):
            if only is not None and url["part"] not in only:
                continue
            response = await storage.put(url["url"], content=part)
            assert response.status_code == 200, response.text
            sent.append({"part": url["part"], "etag": response.headers["etag"]})
    return sent


async def put_proxied(http: httpx.AsyncClient, headers: dict, upload_id: str, number: int,
                      part: bytes) -> httpx.Response:
    return await http.put(f"/api/v1/uploads/{upload_id}/parts/{number}", content=part,
                          headers={**headers, "Content-Type": "application/octet-stream"})
