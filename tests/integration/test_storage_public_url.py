"""Presigned URLs carry the address clients use (FARM_S3_PUBLIC_URL), and still work there."""

from __future__ import annotations

import asyncio
import contextlib
import uuid
from collections.abc import AsyncIterator
from urllib.parse import urlsplit

import httpx
import pytest
from pydantic import ValidationError

from pipelines.embedded import free_port
from pipelines.storage import ObjectStore, storage_config


@contextlib.asynccontextmanager
async def forwarder(target: str) -> AsyncIterator[int]:
    """A TCP relay on another port: what a proxy or a DNS name in front of storage is."""
    host, port = target.rsplit(":", 1)

    async def pipe(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        with contextlib.suppress(ConnectionError):
            while data := await reader.read(65536):
                writer.write(data)
                await writer.drain()
        writer.close()

    async def relay(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        up_reader, up_writer = await asyncio.open_connection(host, int(port))
        await asyncio.gather(pipe(reader, up_writer), pipe(up_reader, writer))

    public_port = free_port()
    server = await asyncio.start_server(relay, "127.0.0.1", public_port)
    try:
        yield public_port
    finally:
        server.close()


async def test_download_and_part_urls_are_signed_for_the_public_address(settings):
    async with forwarder(settings.s3_endpoint) as port:
        public = f"http://127.0.0.1:{port}"
        store = ObjectStore(storage_config(settings.model_copy(update={"s3_public_url": public})))
        key = f"public-url/{uuid.uuid4().hex}.bin"
        await store.ensure_bucket()
        await store.put_bytes(key, b"frame 0001")
        url = await store.presigned_get(key, 60)
        assert urlsplit(url).netloc == f"127.0.0.1:{port}"
        async with httpx.AsyncClient() as client:
            response = await client.get(url)
            assert response.status_code == 200 and response.content == b"frame 0001"

            upload_key = f"public-url/{uuid.uuid4().hex}.bin"
            upload_id = await store.create_multipart(upload_key, "application/octet-stream")
            part_url = await store.presigned_part_url(upload_key, upload_id, 1, 60)
            assert urlsplit(part_url).netloc == f"127.0.0.1:{port}"
            put = await client.put(part_url, content=b"part one")
            assert put.status_code == 200, put.text
        # The farm's own streaming still goes straight to storage, not through the proxy.
        internal = await store.presigned_part_url(upload_key, upload_id, 1, 60, for_clients=False)
        assert urlsplit(internal).netloc == settings.s3_endpoint
        await store.aclose()


async def test_without_a_public_url_clients_get_the_endpoint_the_farm_uses(settings):
    store = ObjectStore(storage_config(settings))
    url = await store.presigned_get("any/key.bin", 60)
    assert urlsplit(url).netloc == settings.s3_endpoint


@pytest.mark.parametrize("value", ["media.example.com", "ftp://media.example.com",
                                   "https://media.example.com/bucket", "https://a b"])
def test_a_public_url_must_be_scheme_and_host(settings, value):
    with pytest.raises(ValidationError, match="s3_public_url"):
        type(settings)(**(settings.model_dump() | {"s3_public_url": value}))
