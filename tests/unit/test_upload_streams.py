"""Upload bytes as streams: exact part lengths, parts cut from a form, bounded memory."""

from __future__ import annotations

import asyncio
import hashlib
import os
import tracemalloc

import httpx
import pytest
from starlette.requests import Request

from pipelines.assets.streams import PartWriter, exact_length
from pipelines.errors import BodyTimeout, InvalidInput, PayloadTooLarge
from serve.streaming import form_file, idle_limited

MIB = 1024 * 1024


async def source(*pieces: bytes, fail: Exception | None = None):
    for piece in pieces:
        yield piece
        await asyncio.sleep(0)  # as a network source does, let the consumers run
    if fail:
        raise fail


async def collect(stream) -> list[bytes]:
    return [chunk async for chunk in stream]


async def test_exact_length_passes_a_part_on_in_batches():
    pieces = [os.urandom(100_000) for _ in range(30)]
    out = await collect(exact_length(source(*pieces), 3_000_000, batch=MIB))
    assert b"".join(out) == b"".join(pieces)
    assert all(len(chunk) < MIB + 100_000 for chunk in out) and len(out) == 3


async def test_exact_length_refuses_long_and_short_parts_before_the_last_byte_goes():
    given: list[bytes] = []
    with pytest.raises(PayloadTooLarge):
        async for chunk in exact_length(source(b"a" * 10, b"b" * 10), 15, batch=1):
            given.append(chunk)
    assert sum(map(len, given)) < 15
    # Exactly the length, then more: the consumer never got the whole part.
    given.clear()
    with pytest.raises(PayloadTooLarge):
        async for chunk in exact_length(source(b"a" * 10, b"b" * 5, b"c"), 15, batch=1):
            given.append(chunk)
    assert sum(map(len, given)) < 15
    given.clear()
    with pytest.raises(InvalidInput) as short:
        async for chunk in exact_length(source(b"a" * 10), 15, batch=1):
            given.append(chunk)
    assert short.value.code == "part_size_mismatch" and given == []
    with pytest.raises(ConnectionError):  # a dropped connection never completes the part
        async for chunk in exact_length(source(b"a" * 10, fail=ConnectionError()), 10, batch=1):
            given.append(chunk)
    assert given == []


class FakeStore:
    """Records parts and how many were being stored at once."""

    def __init__(self, fail_on: int | None = None):
        self.parts: dict[int, bytes] = {}
        self.attempts: list[tuple[int, int]] = []  # (part, declared length)
        self.in_flight = self.most_in_flight = 0
        self.fail_on = fail_on

    async def stream_part(self, key, upload_id, number, chunks, length) -> str:
        self.attempts.append((number, length))
        self.in_flight += 1
        self.most_in_flight = max(self.most_in_flight, self.in_flight)
        try:
            data = b""
            async for chunk in chunks:
                data += chunk
                await asyncio.sleep(0)
            assert len(data) == length
            if number == self.fail_on:
                raise InvalidInput("storage refused")
            self.parts[number] = data
            return f"etag-{number}"
        finally:
            self.in_flight -= 1


@pytest.mark.parametrize("hint", [None, "exact", "form"])
async def test_part_writer_cuts_a_stream_into_parts(hint):
    data = os.urandom(5 * MIB + 123)
    size_hint = {None: None, "exact": len(data), "form": len(data) + 300}[hint]
    store = FakeStore()
    writer = PartWriter(store, "k", "u", part_size=2 * MIB, limit=10 * MIB)  # type: ignore[arg-type]
    written = await writer.write(source(*[data[i:i + 70_000]
                                          for i in range(0, len(data), 70_000)]), size_hint)
    assert written.size == len(data) and written.sha256 == hashlib.sha256(data).hexdigest()
    assert written.parts == [(1, "etag-1"), (2, "etag-2"), (3, "etag-3")]
    assert [len(store.parts[n]) for n in (1, 2, 3)] == [2 * MIB, 2 * MIB, MIB + 123]
    assert b"".join(store.parts[n] for n in (1, 2, 3)) == data
    assert store.most_in_flight <= 2  # a part's answer may overlap the next part's start
    if hint is None:  # the last part was streamed as if whole, then cut and sent again
        assert store.attempts == [(1, 2 * MIB), (2, 2 * MIB), (3, 2 * MIB), (3, MIB + 123)]
    else:  # the request's length said it was the last one: sent once
        assert store.attempts == [(1, 2 * MIB), (2, 2 * MIB), (3, MIB + 123)]


class CountingStore:
    """Takes parts as storage does, keeping nothing."""

    async def stream_part(self, key, upload_id, number, chunks, length) -> str:
        got = 0
        async for chunk in chunks:
            got += len(chunk)
            await asyncio.sleep(0)
        assert got == length
        return f"etag-{number}"


async def test_part_writer_holds_at_most_one_part():
    part_size = 8 * MIB

    async def pieces():
        for _ in range(40 * 10):
            yield os.urandom(100_000)
            await asyncio.sleep(0)

    tracemalloc.start()
    try:
        writer = PartWriter(CountingStore(), "k", "u", part_size, 64 * MIB)  # type: ignore[arg-type]
        written = await writer.write(pieces())
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert written.size == 40_000_000 and len(written.parts) == 5
    # One part, plus the pieces on their way (two parts would be 16 MiB).
    assert peak < part_size + 3 * MIB, peak / MIB


async def test_part_writer_refuses_over_the_limit_empty_files_and_storage_errors():
    with pytest.raises(PayloadTooLarge):
        await PartWriter(FakeStore(), "k", "u", MIB, 3 * MIB).write(  # type: ignore[arg-type]
            source(*[b"x" * MIB] * 4))
    with pytest.raises(InvalidInput) as empty:
        await PartWriter(FakeStore(), "k", "u", MIB, MIB).write(source())  # type: ignore[arg-type]
    assert empty.value.code == "empty_file"
    with pytest.raises(InvalidInput, match="storage refused"):
        await PartWriter(FakeStore(fail_on=1), "k", "u", MIB, 9 * MIB).write(  # type: ignore[arg-type]
            source(*[b"x" * MIB] * 4))


def form_request(body: bytes, content_type: str, chunk: int = 50_000) -> Request:
    pieces = [body[i:i + chunk] for i in range(0, len(body), chunk)] or [b""]
    messages = [{"type": "http.request", "body": p, "more_body": i < len(pieces) - 1}
                for i, p in enumerate(pieces)]

    async def receive():
        return messages.pop(0)

    headers = [(b"content-type", content_type.encode()),
               (b"content-length", str(len(body)).encode())]
    return Request({"type": "http", "method": "POST", "headers": headers}, receive)


def multipart(files: dict, data: dict | None = None) -> tuple[bytes, str]:
    request = httpx.Request("POST", "http://x/", files=files, data=data)
    return request.read(), request.headers["content-type"]


async def test_form_file_streams_the_file_field_and_skips_the_others():
    payload = os.urandom(300_000)
    body, content_type = multipart({"file": ("shot 1.mov", payload, "video/quicktime")},
                                   {"note": "first", "other": "x" * 1000})
    incoming = await form_file(form_request(body, content_type), limit=MIB, idle_s=5)
    assert incoming.filename == "shot 1.mov" and incoming.content_type == "video/quicktime"
    assert incoming.size_hint == len(body)
    assert b"".join(await collect(incoming.chunks)) == payload


async def test_form_file_refusals():
    body, content_type = multipart({"other": ("a.txt", b"abc", "text/plain")})
    with pytest.raises(InvalidInput) as missing:
        await form_file(form_request(body, content_type), limit=MIB, idle_s=5)
    assert missing.value.code == "file_missing"
    with pytest.raises(InvalidInput) as not_a_form:
        await form_file(form_request(b"{}", "application/json"), limit=MIB, idle_s=5)
    assert not_a_form.value.code == "form_expected"
    body, content_type = multipart({"file": ("a.bin", os.urandom(200_000), None)})
    with pytest.raises(PayloadTooLarge):  # declared too long: refused before reading
        await form_file(form_request(body, content_type), limit=100_000, idle_s=5)
    cut = body[: len(body) // 2]
    incoming = await form_file(form_request(cut, content_type), limit=MIB, idle_s=5)
    with pytest.raises(InvalidInput) as malformed:
        await collect(incoming.chunks)
    assert malformed.value.code == "form_malformed"


async def test_a_body_is_refused_once_it_sends_nothing_for_the_idle_limit():
    async def stalls():
        yield b"a"
        yield b"b"
        await asyncio.sleep(5)
        yield b"never"

    received = []
    with pytest.raises(BodyTimeout, match="sent nothing for 0.05 s"):
        async for chunk in idle_limited(stalls(), idle_s=0.05):
            received.append(chunk)
    assert received == [b"a", b"b"]

    async def steady():
        for piece in (b"x", b"y", b"z"):
            await asyncio.sleep(0.02)  # each gap under the limit, the whole body over it
            yield piece

    assert [c async for c in idle_limited(steady(), idle_s=0.05)] == [b"x", b"y", b"z"]
