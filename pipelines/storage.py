"""Object storage over the `minio` client.

The client is synchronous, so every call runs in a worker thread and the event loop
never blocks. Transport failures become `DependencyUnavailable`; a missing object
becomes `NotFound`.
"""

from __future__ import annotations

import asyncio
import hashlib
import io
import logging
import os
import re
import time
from collections.abc import AsyncIterable, AsyncIterator, Callable
from dataclasses import dataclass
from datetime import timedelta
from typing import Any, TypeVar
from urllib.parse import urlsplit

import httpx
import urllib3
from minio import Minio
from minio.datatypes import Part
from minio.deleteobjects import DeleteObject
from minio.error import InvalidResponseError, MinioException, S3Error

from config.settings import Settings
from pipelines.errors import DependencyUnavailable, NotFound

T = TypeVar("T")
log = logging.getLogger("farm.storage")
_READ_CHUNK = 1024 * 1024
# A small file goes in one signed PUT from a thread: for a task log of a few hundred bytes
# (most are) a node agent spent 1.1 ms less CPU per task than through the streamed PUT.
_SMALL_PUT = 1 << 20
_MAX_PUT = 5 * 1024**3  # the largest object S3 takes in one PUT
_MISSING = {"NoSuchKey", "NoSuchBucket", "NoSuchUpload", "NotFound"}
_STREAMED_URL_TTL_S = 3600


def _unreachable(exc: Exception) -> DependencyUnavailable:
    # Clients get plain words; the transport's class name is for the log.
    log.warning("storage call failed: %s", type(exc).__name__)
    return DependencyUnavailable("storage is unreachable; retry")


@dataclass(frozen=True)
class StorageConfig:
    endpoint: str
    access_key: str
    secret_key: str
    bucket: str
    region: str = "us-east-1"
    secure: bool = False
    timeout_s: float = 5.0
    public_url: str | None = None  # what presigned URLs for clients carry


def storage_config(settings: Settings) -> StorageConfig:
    if not (settings.s3_endpoint and settings.s3_access_key and settings.s3_secret_key):
        raise ValueError("storage settings are incomplete (endpoint, access key, secret key)")
    return StorageConfig(
        endpoint=settings.s3_endpoint,
        access_key=settings.s3_access_key.get_secret_value(),
        secret_key=settings.s3_secret_key.get_secret_value(),
        bucket=settings.s3_bucket,
        region=settings.s3_region,
        secure=settings.s3_secure,
        timeout_s=settings.dependency_timeout_s,
        public_url=settings.s3_public_url,
    )


class ObjectStore:
    def __init__(self, config: StorageConfig):
        self.config = config
        self.bucket = config.bucket
        http = urllib3.PoolManager(
            timeout=urllib3.Timeout(connect=config.timeout_s, read=max(30.0, config.timeout_s)),
            retries=urllib3.Retry(total=2, backoff_factor=0.1, status_forcelist=[502, 503, 504]),
            maxsize=16,
        )
        self.client = Minio(
            config.endpoint,
            access_key=config.access_key,
            secret_key=config.secret_key,
            secure=config.secure,
            region=config.region,
            http_client=http,
        )
        self._signer = self._public_signer(config) or self.client
        self._stream_client: httpx.AsyncClient | None = None

    @staticmethod
    def _public_signer(config: StorageConfig) -> Minio | None:
        """A client that only signs: a presigned URL's signature covers its host, so URLs
        for clients are signed for the address they use. With the region given, signing
        makes no request."""
        if not config.public_url:
            return None
        parts = urlsplit(config.public_url)
        return Minio(parts.netloc, access_key=config.access_key, secret_key=config.secret_key,
                     secure=parts.scheme == "https", region=config.region)

    @property
    def _streams(self) -> httpx.AsyncClient:
        """For streamed part uploads; made on first use, inside the event loop that uses it."""
        if self._stream_client is None:
            timeout = self.config.timeout_s
            self._stream_client = httpx.AsyncClient(
                timeout=httpx.Timeout(connect=timeout, read=max(60.0, timeout),
                                      write=max(60.0, timeout), pool=max(60.0, timeout)),
                limits=httpx.Limits(max_connections=64, max_keepalive_connections=16),
            )
        return self._stream_client

    async def aclose(self) -> None:
        if self._stream_client is not None:
            await self._stream_client.aclose()
            self._stream_client = None

    async def _call(self, fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
        try:
            return await asyncio.to_thread(fn, *args, **kwargs)
        except S3Error as exc:
            if exc.code in _MISSING:
                raise NotFound(f"object not found: {exc.object_name or exc.bucket_name}") from exc
            raise DependencyUnavailable(f"storage error: {exc.code}") from exc
        except InvalidResponseError as exc:
            # The embedded S3 server answers a missing key's GET as text/xml, which the
            # client does not parse: a 404 all the same.
            if getattr(exc, "_code", None) == 404:
                raise NotFound("object not found") from exc
            raise _unreachable(exc) from exc
        except (MinioException, urllib3.exceptions.HTTPError, OSError) as exc:
            raise _unreachable(exc) from exc

    async def ensure_bucket(self) -> None:
        if not await self._call(self.client.bucket_exists, self.bucket):
            await self._call(self.client.make_bucket, self.bucket)

    async def ping(self, timeout_s: float) -> float:
        """Round-trip time of a bucket check in seconds; raises DependencyUnavailable."""
        started = time.perf_counter()
        try:
            exists = await asyncio.wait_for(
                self._call(self.client.bucket_exists, self.bucket), timeout_s
            )
        except TimeoutError as exc:
            raise DependencyUnavailable("storage did not answer in time") from exc
        if not exists:
            raise DependencyUnavailable(f"bucket {self.bucket!r} is missing")
        return time.perf_counter() - started

    async def put_bytes(self, key: str, data: bytes,
                        content_type: str = "application/octet-stream"):
        return await self._call(
            self.client.put_object, self.bucket, key, io.BytesIO(data), len(data),
            content_type=content_type,
        )

    async def get_bytes(self, key: str, length: int = 0) -> bytes:
        """The object (or its first `length` bytes): for small objects only."""

        def read() -> bytes:
            response = self.client.get_object(self.bucket, key, offset=0, length=length)
            try:
                return response.read()
            finally:
                response.close()
                response.release_conn()

        return await self._call(read)

    async def chunks(self, key: str, offset: int = 0) -> AsyncIterator[bytes]:
        """The object from `offset` (within it) on, a chunk at a time: memory stays at one
        chunk whatever its size."""
        response = await self._call(self.client.get_object, self.bucket, key, offset=offset)
        try:
            stream = response.stream(_READ_CHUNK)
            while chunk := await asyncio.to_thread(next, stream, b""):
                yield chunk
        finally:
            response.close()
            response.release_conn()

    async def list_keys(self, prefix: str) -> list[tuple[str, int]]:
        """(key, size) of every object under `prefix`, in key order."""

        def listing() -> list[tuple[str, int]]:
            return sorted((o.object_name, o.size) for o in
                          self.client.list_objects(self.bucket, prefix, recursive=True))

        return await self._call(listing)

    async def stat(self, key: str):
        return await self._call(self.client.stat_object, self.bucket, key)

    async def remove(self, key: str) -> None:
        await self._call(self.client.remove_object, self.bucket, key)

    async def presigned_get(self, key: str, expires_s: int = 300) -> str:
        """A download URL for clients (at FARM_S3_PUBLIC_URL when set)."""
        return await self._call(
            self._signer.presigned_get_object, self.bucket, key,
            expires=timedelta(seconds=expires_s),
        )

    async def presigned_part_url(self, key: str, upload_id: str, part: int,
                                 expires_s: int, *, for_clients: bool = True) -> str:
        signer = self._signer if for_clients else self.client
        return await self._call(
            signer.get_presigned_url, "PUT", self.bucket, key,
            expires=timedelta(seconds=expires_s),
            extra_query_params={"partNumber": str(part), "uploadId": upload_id},
        )

    # Multipart: the minio client keeps these low-level calls private but stable (7.x).
    async def create_multipart(self, key: str, content_type: str) -> str:
        return await self._call(
            self.client._create_multipart_upload, self.bucket, key,
            {"Content-Type": content_type},
        )

    async def upload_part(self, key: str, upload_id: str, part: int,
                          data: bytes | bytearray) -> str:
        return await self._call(self.client._upload_part, self.bucket, key, data, None,
                                upload_id, part)

    async def stream_part(self, key: str, upload_id: str, part: int,
                          chunks: AsyncIterable[bytes], length: int) -> str:
        """Store one part of exactly `length` bytes as they arrive; returns its ETag.

        Sent through a presigned URL, whose payload is unsigned, so nothing needs the whole
        part first (the minio client would hash it before sending): only the piece in hand
        is held. An error raised by `chunks` ends the request before its last byte, and
        storage keeps nothing of the part.
        """
        url = await self.presigned_part_url(key, upload_id, part, _STREAMED_URL_TTL_S,
                                            for_clients=False)
        headers = {"Content-Length": str(length), "Content-Type": "application/octet-stream"}
        try:
            response = await self._streams.put(url, content=chunks, headers=headers)
        except httpx.HTTPError as exc:
            raise _unreachable(exc) from exc
        if response.status_code >= 300:
            found = re.search(r"<Code>([^<]+)</Code>", response.text)
            code = found.group(1) if found else f"HTTP {response.status_code}"
            if code in _MISSING:
                raise NotFound(f"object not found: {key}")
            raise DependencyUnavailable(f"storage error: {code}")
        return response.headers.get("etag", "").strip('"')

    async def list_parts(self, key: str, upload_id: str) -> list[tuple[int, int, str]]:
        """(number, size, etag) of every part the store holds, in order."""

        def collect() -> list[tuple[int, int, str]]:
            found, marker = [], None
            while True:
                page = self.client._list_parts(self.bucket, key, upload_id, max_parts=1000,
                                               part_number_marker=marker)
                found += [(p.part_number, p.size or 0, p.etag) for p in page.parts]
                if not page.is_truncated:
                    return found
                marker = str(page.next_part_number_marker)

        return await self._call(collect)

    async def complete_multipart(self, key: str, upload_id: str,
                                 parts: list[tuple[int, str]]) -> None:
        await self._call(self.client._complete_multipart_upload, self.bucket, key, upload_id,
                         [Part(number, etag) for number, etag in parts])

    async def abort_multipart(self, key: str, upload_id: str) -> None:
        await self._call(self.client._abort_multipart_upload, self.bucket, key, upload_id)

    async def download(self, key: str, path: str) -> None:
        await self._call(self.client.fget_object, self.bucket, key, path)

    async def put_file(self, key: str, path: str, content_type: str) -> None:
        await self._call(self.client.fput_object, self.bucket, key, path,
                         content_type=content_type)

    async def stream_file(self, key: str, path: str, content_type: str) -> None:
        """Store a file read a chunk at a time (the minio client holds 5 MiB parts, three
        at once): one PUT through a presigned URL, whose payload is unsigned, up to S3's
        5 GiB for one PUT; a larger file goes as parts, a small one (up to 1 MiB) in one
        signed PUT."""
        size = await asyncio.to_thread(os.path.getsize, path)
        if size > _MAX_PUT or size <= _SMALL_PUT:
            await self.put_file(key, path, content_type)
            return
        url = await self._call(self.client.get_presigned_url, "PUT", self.bucket, key,
                               expires=timedelta(seconds=_STREAMED_URL_TTL_S))

        async def chunks() -> AsyncIterator[bytes]:
            with open(path, "rb") as file:  # noqa: ASYNC230 - a local file, a chunk a read
                while data := await asyncio.to_thread(file.read, _READ_CHUNK):
                    yield data

        headers = {"Content-Length": str(size), "Content-Type": content_type}
        try:
            response = await self._streams.put(url, content=chunks(), headers=headers)
        except httpx.HTTPError as exc:
            raise _unreachable(exc) from exc
        if response.status_code >= 300:
            found = re.search(r"<Code>([^<]+)</Code>", response.text)
            raise DependencyUnavailable(
                f"storage error: {found.group(1) if found else response.status_code}")

    async def read_head(self, key: str, length: int) -> bytes:
        return await self.get_bytes(key, length)

    async def sha256(self, key: str) -> str:
        """Hash an object by streaming it: memory stays at one chunk whatever the size."""

        def digest() -> str:
            hasher = hashlib.sha256()
            response = self.client.get_object(self.bucket, key)
            try:
                for chunk in response.stream(_READ_CHUNK):
                    hasher.update(chunk)
            finally:
                response.close()
                response.release_conn()
            return hasher.hexdigest()

        return await self._call(digest)

    async def remove_prefix(self, prefix: str) -> int:
        def remove() -> int:
            keys = [DeleteObject(o.object_name)
                    for o in self.client.list_objects(self.bucket, prefix, recursive=True)]
            errors = list(self.client.remove_objects(self.bucket, keys))
            if errors:
                raise MinioException(f"{len(errors)} objects not removed")
            return len(keys)

        return await self._call(remove)
