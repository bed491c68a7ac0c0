"""Request bodies read in bounded pieces: upload bytes never sit whole in memory."""

from __future__ import annotations

import contextlib
import hashlib
import os
import tempfile
from collections.abc import AsyncIterator
from dataclasses import dataclass, field

from fastapi import Request
from python_multipart.exceptions import MultipartParseError
from python_multipart.multipart import MultipartParser, parse_options_header

from pipelines.assets.uploads import SpooledFile
from pipelines.errors import InvalidInput, PayloadTooLarge

# Form overhead (boundaries, part headers) allowed on top of the file itself.
FORM_OVERHEAD_BYTES = 64 * 1024


async def read_exact(request: Request, expected: int) -> bytearray:
    """A body of exactly `expected` bytes (one part: bounded by the part size)."""
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > expected:
        raise PayloadTooLarge(f"this part must be {expected} bytes")
    buffer = bytearray()  # handed on as is: a bytes() copy would double the peak
    async for chunk in request.stream():
        buffer += chunk
        if len(buffer) > expected:
            raise PayloadTooLarge(f"this part must be {expected} bytes")
    if len(buffer) != expected:
        raise InvalidInput(f"this part must be {expected} bytes, got {len(buffer)}",
                           code="part_size_mismatch")
    return buffer


@dataclass
class _FilePart:
    """Collects the `file` field of a form into a temporary file, hashing as it goes."""

    limit: int
    directory: str | None
    headers: dict[bytes, bytes] = field(default_factory=dict)
    field_name: bytes = b""
    filename: str | None = None
    content_type: str | None = None
    path: str | None = None
    size: int = 0
    hasher: object = field(default_factory=hashlib.sha256)
    _out: object = None
    _header: bytes = b""

    def header_field(self, data: bytes, start: int, end: int) -> None:
        self._header += data[start:end]

    def header_value(self, data: bytes, start: int, end: int) -> None:
        self.headers[self._header.lower()] = self.headers.get(self._header.lower(), b"") + \
            data[start:end]

    def header_end(self) -> None:
        self._header = b""

    def headers_finished(self) -> None:
        _, options = parse_options_header(self.headers.get(b"content-disposition", b""))
        if options.get(b"name") == b"file" and self.path is None:
            self.filename = options.get(b"filename", b"upload").decode("utf-8", "replace")
            declared = self.headers.get(b"content-type", b"").decode("latin-1").strip()
            self.content_type = declared or None
            fd, self.path = tempfile.mkstemp(prefix="farm-upload-", dir=self.directory)
            self._out = os.fdopen(fd, "wb")
        self.headers = {}

    def data(self, data: bytes, start: int, end: int) -> None:
        if self._out is None:
            return
        chunk = data[start:end]
        self.size += len(chunk)
        if self.size > self.limit:
            raise PayloadTooLarge(f"simple uploads stop at {self.limit} bytes; use a "
                                  "multipart upload")
        self.hasher.update(chunk)  # type: ignore[attr-defined]
        self._out.write(chunk)  # type: ignore[attr-defined]

    def part_end(self) -> None:
        if self._out is not None:
            self._out.close()  # type: ignore[attr-defined]
            self._out = None

    def discard(self) -> None:
        self.part_end()
        if self.path:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(self.path)


@contextlib.asynccontextmanager
async def spooled_form_file(request: Request, limit: int,
                            directory: str | None = None) -> AsyncIterator[SpooledFile]:
    """Stream a multipart/form-data body's `file` field to disk; removed afterwards."""
    content_type, options = parse_options_header(request.headers.get("content-type", ""))
    if content_type != b"multipart/form-data" or b"boundary" not in options:
        raise InvalidInput("send the file as multipart/form-data in a field named 'file'",
                           code="form_expected")
    declared = request.headers.get("content-length")
    if declared and declared.isdigit() and int(declared) > limit + FORM_OVERHEAD_BYTES:
        raise PayloadTooLarge(f"simple uploads stop at {limit} bytes; use a multipart upload")
    part = _FilePart(limit, directory)
    parser = MultipartParser(options[b"boundary"], {
        "on_header_field": part.header_field, "on_header_value": part.header_value,
        "on_header_end": part.header_end, "on_headers_finished": part.headers_finished,
        "on_part_data": part.data, "on_part_end": part.part_end,
    })
    try:
        try:
            async for chunk in request.stream():
                parser.write(chunk)
            parser.finalize()
        except MultipartParseError as exc:
            raise InvalidInput("the form body is malformed", code="form_malformed") from exc
        if part.path is None:
            raise InvalidInput("the form has no field named 'file'", code="file_missing")
        yield SpooledFile(part.path, part.filename or "upload", part.size,
                          part.hasher.hexdigest(), part.content_type)  # type: ignore[attr-defined]
    finally:
        part.discard()
