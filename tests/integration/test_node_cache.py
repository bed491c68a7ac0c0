"""A farm node's input cache over the real object store: once per node, bounded, and never
removing a file a running task holds."""

from __future__ import annotations

import asyncio
import hashlib
import uuid

import pytest

from pipelines.farm.node.cache import InputCache
from pipelines.storage import ObjectStore, storage_config

KIB = 1024


@pytest.fixture
async def inputs(settings):
    """Three stored 1 KiB inputs: name -> (key, sha256)."""
    store = ObjectStore(storage_config(settings))
    await store.ensure_bucket()
    found = {}
    for name in ("a", "b", "c"):
        data = uuid.uuid4().hex.encode() * (KIB // 32)
        key = f"tests/cache/{uuid.uuid4().hex}/{name}"
        await store.put_bytes(key, data, "application/octet-stream")
        found[name] = (key, hashlib.sha256(data).hexdigest())
    return store, found


def cached(cache: InputCache, inputs: dict, *names: str) -> bool:
    return all((cache.directory / inputs[name][1]).exists() for name in names)


async def use_once(cache: InputCache, inputs: dict, name: str) -> bool:
    async with cache.use(*inputs[name]) as (path, downloaded):
        assert path.stat().st_size == KIB
    return downloaded


async def test_an_input_is_downloaded_once_and_shared_by_concurrent_tasks(inputs, tmp_path):
    store, found = inputs
    cache = InputCache(store, tmp_path)
    first = await asyncio.gather(*(use_once(cache, found, "a") for _ in range(4)))
    assert sorted(first) == [False, False, False, True]
    assert await use_once(cache, found, "a") is False
    assert not cache.in_use and [p.name for p in tmp_path.iterdir()] == [found["a"][1]]


async def test_beyond_the_budget_the_least_recently_used_go_first(inputs, tmp_path):
    store, found = inputs
    cache = InputCache(store, tmp_path, max_bytes=2 * KIB)
    for name in ("a", "b"):
        await use_once(cache, found, name)
    assert await use_once(cache, found, "a") is False  # a is now the most recent
    await use_once(cache, found, "c")
    assert cached(cache, found, "a", "c") and not cached(cache, found, "b")
    assert await use_once(cache, found, "b") is True  # fetched again when asked


async def test_an_input_a_task_holds_is_never_removed(inputs, tmp_path):
    store, found = inputs
    cache = InputCache(store, tmp_path, max_bytes=KIB)
    async with cache.use(*found["a"]) as (held, _):
        await use_once(cache, found, "b")
        await use_once(cache, found, "c")
        assert held.read_bytes()  # still there for the task that holds it
    assert cached(cache, found, "a", "c") and not cached(cache, found, "b")
    await use_once(cache, found, "b")  # a is free now: it goes
    assert not cached(cache, found, "a")


async def test_an_input_counts_as_used_until_its_task_lets_go_of_it(inputs, tmp_path):
    """A scene held by a long render is recent when the render ends, not when it began."""
    store, found = inputs
    cache = InputCache(store, tmp_path, max_bytes=2 * KIB)
    async with cache.use(*found["a"]):
        await use_once(cache, found, "b")
    await use_once(cache, found, "c")
    assert cached(cache, found, "a", "c") and not cached(cache, found, "b")
