"""Request bodies as streams: file bytes are passed on in pieces, never held whole."""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import AsyncIterator
from dataclasses import dataclass, field

from fastapi import Request
from python_multipart.exceptions import MultipartParseError
from python_multipart.multipart import MultipartParser, parse_options_header

from pipelines.assets.streams import IncomingFile
from pipelines.errors import BodyTimeout, InvalidInput, PayloadTooLarge, UnsupportedMedia

# Form overhead (boundaries, part headers, small fields) allowed on top of the file itself.
FORM_OVERHEAD_BYTES = 64 * 1024
# Headers of one form part; anything longer is not a browser's or an HTTP client's form.
PART_HEADER_LIMIT_BYTES = 16 * 1024
# As for a declared upload (UploadDeclare.filename): what file systems keep.
MAX_FILENAME_CHARS = 255


def _name_too_long() -> InvalidInput:
    return InvalidInput(f"the file name is over {MAX_FILENAME_CHARS} characters",
                        code="file_name_too_long")


def declared_length(request: Request) -> int | None:
    declared = request.headers.get("content-length")
    return int(declared) if declared is not None and declared.isdigit() else None


async def idle_limited(chunks: AsyncIterator[bytes], idle_s: float) -> AsyncIterator[bytes]:
    """The body's chunks, refused (408) when none comes for `idle_s`: a client that stops
    sending must not hold a connection to storage, and uvicorn has no such timeout."""
    while True:
        try:
            async with asyncio.timeout(idle_s):
                chunk = await anext(chunks)
        except StopAsyncIteration:
            return
        except TimeoutError:
            raise BodyTimeout(f"the request body sent nothing for {idle_s:g} s") from None
        yield chunk


def part_body(request: Request, expected: int, idle_s: float) -> AsyncIterator[bytes]:
    """The body of a proxied part, checked before reading: octet-stream, not over its size.

    The exact length is enforced while it streams (`pipelines.assets.streams.exact_length`).
    """
    if not request.headers.get("content-type", "").startswith("application/octet-stream"):
        raise UnsupportedMedia("send parts as application/octet-stream")
    declared = declared_length(request)
    if declared is not None and declared > expected:
        raise PayloadTooLarge(f"this part must be {expected} bytes", code="part_size_mismatch")
    return idle_limited(request.stream().__aiter__(), idle_s)


@dataclass
class _FileField:
    """Parser callbacks that pick out the first form field named `file`, as pieces."""

    filename: str | None = None
    content_type: str | None = None
    pieces: deque[bytes] = field(default_factory=deque)
    _headers: dict[bytes, bytes] = field(default_factory=dict)
    _header: bytes = b""
    _header_bytes: int = 0
    _in_file: bool = False
    ended: bool = False  # the closing boundary was seen: the form is whole

    def callbacks(self) -> dict:
        return {"on_header_field": self.header_field, "on_header_value": self.header_value,
                "on_header_end": self.header_end, "on_headers_finished": self.headers_finished,
                "on_part_data": self.data, "on_part_end": self.part_end,
                "on_end": self.end}

    def _count(self, size: int) -> None:
        self._header_bytes += size
        if self._header_bytes > PART_HEADER_LIMIT_BYTES:
            if self.in_disposition():
                raise _name_too_long()
            raise InvalidInput("a form part's headers are too long", code="form_malformed")

    def in_disposition(self) -> bool:
        """The header being read is Content-Disposition: where a (long) file name is."""
        return self._header.strip().lower() == b"content-disposition"

    def header_field(self, data: bytes, start: int, end: int) -> None:
        self._count(end - start)
        self._header += data[start:end]

    def header_value(self, data: bytes, start: int, end: int) -> None:
        self._count(end - start)
        name = self._header.lower()
        self._headers[name] = self._headers.get(name, b"") + data[start:end]

    def header_end(self) -> None:
        self._header = b""

    def headers_finished(self) -> None:
        _, options = parse_options_header(self._headers.get(b"content-disposition", b""))
        if options.get(b"name") == b"file" and self.filename is None:
            self.filename = options.get(b"filename", b"upload").decode("utf-8", "replace")
            if len(self.filename) > MAX_FILENAME_CHARS:
                raise _name_too_long()
            declared = self._headers.get(b"content-type", b"").decode("latin-1").strip()
            self.content_type = declared or None
            self._in_file = True
        self._headers, self._header_bytes = {}, 0

    def data(self, data: bytes, start: int, end: int) -> None:
        if self._in_file and end > start:
            self.pieces.append(data[start:end])

    def part_end(self) -> None:
        self._in_file = False

    def end(self) -> None:
        self.ended = True


class _FormStream:
    """Feeds a request body to the multipart parser a chunk at a time."""

    def __init__(self, request: Request, boundary: bytes, cap: int, idle_s: float):
        self.body = idle_limited(request.stream().__aiter__(), idle_s).__aiter__()
        self.field = _FileField()
        self.parser = MultipartParser(boundary, self.field.callbacks())
        self.cap = cap
        self.read = 0

    async def advance(self) -> bool:
        """Parse one more chunk of the body; False at its end (the form is then checked)."""
        try:
            chunk = await self.body.__anext__()
        except StopAsyncIteration:
            self._parse(None)
            return False
        self.read += len(chunk)
        if self.read > self.cap:
            raise PayloadTooLarge(f"simple uploads stop at {self.cap - FORM_OVERHEAD_BYTES} "
                                  "bytes; use a multipart upload")
        self._parse(chunk)
        return True

    def _parse(self, chunk: bytes | None) -> None:
        try:
            if chunk is None:
                self.parser.finalize()
            else:
                self.parser.write(chunk)
        except MultipartParseError as exc:
            # The parser's own limit on one header line: in Content-Disposition, that is
            # a file name thousands of characters long, and the client should hear so.
            if self.field.in_disposition():
                raise _name_too_long() from exc
            raise InvalidInput("the form body is malformed", code="form_malformed") from exc
        if chunk is None and not self.field.ended:  # a cut body must not become a version
            raise InvalidInput("the form body ends before its closing boundary",
                               code="form_malformed")

    async def file_chunks(self) -> AsyncIterator[bytes]:
        more = True
        while True:
            while self.field.pieces:
                yield self.field.pieces.popleft()
            if not more:
                return
            more = await self.advance()


async def form_file(request: Request, limit: int, idle_s: float) -> IncomingFile:
    """The `file` field of a multipart/form-data body, as a stream of its bytes.

    Reads only as far as the field's headers; the bytes follow as the consumer pulls them.
    """
    content_type, options = parse_options_header(request.headers.get("content-type", ""))
    if content_type != b"multipart/form-data" or b"boundary" not in options:
        raise InvalidInput("send the file as multipart/form-data in a field named 'file'",
                           code="form_expected")
    declared = declared_length(request)
    if declared is not None and declared > limit + FORM_OVERHEAD_BYTES:
        raise PayloadTooLarge(f"simple uploads stop at {limit} bytes; use a multipart upload")
    form = _FormStream(request, options[b"boundary"], limit + FORM_OVERHEAD_BYTES, idle_s)
    while form.field.filename is None:
        if not await form.advance():
            raise InvalidInput("the form has no field named 'file'", code="file_missing")
    return IncomingFile(form.field.filename, form.field.content_type, form.file_chunks(),
                        size_hint=declared)
