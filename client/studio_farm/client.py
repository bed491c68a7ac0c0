"""`AsyncFarm` (asyncio) and `Farm` (the same, blocking): the API from Python.

    farm = Farm.login("http://farm:8000", "northern-lights", "ada@example.com", password)
    farm = Farm("http://farm:8000", api_key="sfk_...")      # a render-node script
"""

from __future__ import annotations

import asyncio
import os
import threading
from collections.abc import AsyncIterator, Callable, Coroutine, Iterator
from pathlib import Path
from typing import Any, TypeVar

from studio_farm._http import Session, Tokens
from studio_farm.errors import JobFailed
from studio_farm.jobs import Event, Follower, LayeredJob
from studio_farm.models import Asset, Job, JobType, Me, Node, Task, Version
from studio_farm.transfer import TransferReport, Transfers

T = TypeVar("T")
JobRef = Job | str


def _id(job: JobRef) -> str:
    return job if isinstance(job, str) else job.id


class AsyncFarm:
    def __init__(self, url: str, *, api_key: str | None = None, tokens: Tokens | None = None,
                 timeout_s: float = 30.0, parallel: int = 4,
                 on_tokens: Callable[[Tokens], None] | None = None, **http: Any):
        self.session = Session(url, api_key=api_key, tokens=tokens, timeout_s=timeout_s,
                               on_tokens=on_tokens, **http)
        self.transfers = Transfers(self.session, parallel=parallel)

    @classmethod
    async def login(cls, url: str, studio: str, email: str, password: str,
                    **options: Any) -> AsyncFarm:
        farm = cls(url, **options)
        await farm.session.login(studio, email, password)
        return farm

    async def close(self) -> None:
        await self.transfers.close()
        await self.session.close()

    async def __aenter__(self) -> AsyncFarm:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    async def me(self) -> Me:
        return Me.model_validate(await self.session.call("GET", "/auth/me"))

    # -- assets ---------------------------------------------------------------------------
    async def create_asset(self, name: str, kind: str = "other", **fields: Any) -> Asset:
        return Asset.model_validate(await self.session.call(
            "POST", "/assets", json={"name": name, "kind": kind, **fields}))

    async def asset(self, asset_id: str) -> Asset:
        return Asset.model_validate(await self.session.call("GET", f"/assets/{asset_id}"))

    async def delete_asset(self, asset_id: str) -> None:
        """Delete an asset of yours (a producer or admin: any); its files go later."""
        await self.session.call("DELETE", f"/assets/{asset_id}")

    async def assets(self, **filters: Any) -> AsyncIterator[Asset]:
        """Every asset the filters match, page after page."""
        async for item in self._pages("/assets", filters):
            yield Asset.model_validate(item)

    async def versions(self, asset_id: str) -> list[Version]:
        answer = await self.session.call("GET", f"/assets/{asset_id}/versions")
        return [Version.model_validate(v) for v in answer["items"]]

    async def upload(self, path: str | os.PathLike[str], asset: Asset | str, *,
                     content_type: str | None = None, state_dir: Path | None = None,
                     progress: bool | None = None) -> tuple[Version, TransferReport]:
        asset_id = asset if isinstance(asset, str) else asset.id
        version, report = await self.transfers.upload(path, asset_id, content_type=content_type,
                                                      state_dir=state_dir, progress=progress)
        return Version.model_validate(version), report

    async def download(self, version: Version, path: str | os.PathLike[str], *,
                       progress: bool | None = None) -> TransferReport:
        answer = await self.session.call(
            "GET", f"/assets/{version.asset_id}/versions/{version.number}/download")
        return await self.transfers.download(answer["url"], path, size=answer["size"],
                                             sha256=answer["sha256"], progress=progress)

    # -- jobs -----------------------------------------------------------------------------
    async def job_types(self) -> list[JobType]:
        answer = await self.session.call("GET", "/job-types")
        return [JobType.model_validate(t) for t in answer["items"]]

    async def submit(self, job: LayeredJob | dict[str, Any], *,
                     after: list[JobRef] | None = None) -> Job:
        """A job: a `LayeredJob`, or a body as `POST /jobs` takes it (`kind`: command,
        render, preview, layered)."""
        body = job.body() if isinstance(job, LayeredJob) else dict(job)
        if after:
            body["after"] = [_id(j) for j in after]
        return Job.model_validate(await self.session.call("POST", "/jobs", json=body))

    async def submit_type(self, job_type: str, settings: dict[str, Any], *,
                          after: list[JobRef] | None = None, **common: Any) -> Job:
        body = {**common, "settings": settings, "after": [_id(j) for j in after or []]}
        return Job.model_validate(await self.session.call(
            "POST", f"/job-types/{job_type}/jobs", json=body))

    async def job(self, job: JobRef) -> Job:
        return Job.model_validate(await self.session.call("GET", f"/jobs/{_id(job)}"))

    async def jobs(self, **filters: Any) -> AsyncIterator[Job]:
        async for item in self._pages("/jobs", filters):
            yield Job.model_validate(item)

    async def tasks(self, job: JobRef) -> list[Task]:
        return [Task.model_validate(t) async for t in self._pages(
            f"/jobs/{_id(job)}/tasks", {"limit": 500})]

    async def steer(self, job: JobRef, action: str, **params: Any) -> Job:
        """`pause` (`requeue=True` too), `resume`, `cancel`, `retry`."""
        return Job.model_validate(await self.session.call(
            "POST", f"/jobs/{_id(job)}/{action}", params=params or None))

    async def kill(self, task_id: str) -> Task:
        return Task.model_validate(await self.session.call("POST", f"/tasks/{task_id}/kill"))

    async def retry_task(self, task_id: str) -> Task:
        """Run an ended task again (docs/farm.md, "Steering a job")."""
        return Task.model_validate(await self.session.call("POST", f"/tasks/{task_id}/retry"))

    async def skip_task(self, task_id: str) -> Task:
        """Skip a task that has not run: it counts as done."""
        return Task.model_validate(await self.session.call("POST", f"/tasks/{task_id}/skip"))

    async def retry_frames(self, job: JobRef, frames: str) -> Job:
        """Run again the ended tasks holding `frames` (`1001-1010`, `5,7`)."""
        return Job.model_validate(await self.session.call(
            "POST", f"/jobs/{_id(job)}/frames/retry", json={"frames": frames}))

    async def task_log(self, task_id: str, attempt: int | None = None) -> str:
        """The task's log so far (the latest attempt's, or `attempt`'s)."""
        return "".join([text async for text in self.session.stream(
            f"/tasks/{task_id}/log", {"attempt": attempt})])

    async def follow_log(self, task_id: str, attempt: int | None = None
                         ) -> AsyncIterator[str]:
        """The task's log as it grows, until its attempt ends."""
        async for text in self.session.stream(f"/tasks/{task_id}/log",
                                              {"attempt": attempt, "follow": "true"}):
            yield text

    async def follow(self, job: JobRef, on_event: Callable[[Event], Any] | None = None, *,
                     timeout_s: float | None = None) -> Job:
        """The job once it ended, reading its events live (replayed after a dropped
        socket; polled when there is no socket to be had)."""
        return await Follower(self.session, _id(job), on_event).run(timeout_s)

    async def wait(self, job: JobRef, *, timeout_s: float | None = None,
                   on_event: Callable[[Event], Any] | None = None) -> Job:
        """Like `follow`, but a job that did not complete raises JobFailed."""
        done = await self.follow(job, on_event, timeout_s=timeout_s)
        if done.status != "completed":
            raise JobFailed(f"job {done.id} {done.status}: {done.reason or 'no reason'}",
                            code=f"job_{done.status}")
        return done

    async def download_outputs(self, job: JobRef, folder: str | os.PathLike[str]) -> list[Path]:
        answer = await self.session.call("GET", f"/jobs/{_id(job)}/outputs")
        paths = []
        for item in answer["items"]:
            path = Path(folder) / item["path"]
            path.parent.mkdir(parents=True, exist_ok=True)
            await self.transfers.download(item["url"], path, progress=False)
            paths.append(path)
        return paths

    async def nodes(self) -> list[Node]:
        answer = await self.session.call("GET", "/farm/nodes")
        return [Node.model_validate(n) for n in answer["items"]]

    async def node(self, node_id: str) -> Node:
        return Node.model_validate(await self.session.call("GET", f"/farm/nodes/{node_id}"))

    async def set_node(self, node_id: str, mode: str, *, reason: str | None = None) -> Node:
        """`lock`, `drain` or `unlock` a node (docs/farm.md, "Nodes")."""
        body = {"reason": reason} if reason else None
        return Node.model_validate(await self.session.call(
            "POST", f"/farm/nodes/{node_id}/{mode}", json=body))

    async def label_node(self, node_id: str, labels: list[str]) -> Node:
        return Node.model_validate(await self.session.call(
            "PATCH", f"/farm/nodes/{node_id}", json={"labels": labels}))

    async def _pages(self, path: str, params: dict[str, Any]) -> AsyncIterator[dict]:
        cursor = None
        while True:
            answer = await self.session.call("GET", path, params={**params, "cursor": cursor})
            for item in answer["items"]:
                yield item
            cursor = answer.get("next_cursor")
            if not cursor:
                return


class Farm:
    """The blocking client: every `AsyncFarm` method, run on a private event loop thread
    (so it also works inside Blender, Maya or Nuke, which run their own loops)."""

    def __init__(self, url: str, **options: Any):
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, daemon=True,
                                        name="studio-farm")
        self._thread.start()
        self._async: AsyncFarm = self._run(_make(url, options))

    @classmethod
    def login(cls, url: str, studio: str, email: str, password: str, **options: Any) -> Farm:
        farm = cls(url, **options)
        farm._run(farm._async.session.login(studio, email, password))
        return farm

    def _run(self, coroutine: Coroutine[Any, Any, T]) -> T:
        return asyncio.run_coroutine_threadsafe(coroutine, self._loop).result()

    def close(self) -> None:
        self._run(self._async.close())
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(5)

    def __enter__(self) -> Farm:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def assets(self, **filters: Any) -> Iterator[Asset]:
        return self._iterate(self._async.assets(**filters))

    def jobs(self, **filters: Any) -> Iterator[Job]:
        return self._iterate(self._async.jobs(**filters))

    def follow_log(self, task_id: str, attempt: int | None = None) -> Iterator[str]:
        return self._iterate(self._async.follow_log(task_id, attempt))

    def _iterate(self, pages: AsyncIterator[T]) -> Iterator[T]:
        while True:
            try:
                yield self._run(pages.__anext__())
            except StopAsyncIteration:
                return

    def __getattr__(self, name: str) -> Any:
        method = getattr(self._async, name)
        if not asyncio.iscoroutinefunction(method):
            return method

        def blocking(*args: Any, **kwargs: Any) -> Any:
            return self._run(method(*args, **kwargs))

        return blocking


async def _make(url: str, options: dict[str, Any]) -> AsyncFarm:
    return AsyncFarm(url, **options)  # its HTTP client belongs to the private loop
