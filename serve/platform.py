"""The long-lived clients one Api replica holds, opened in the lifespan and closed after."""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import os
import socket
import time
import uuid
from dataclasses import dataclass, field

from config.settings import Settings
from pipelines.analytics import Analytics
from pipelines.assets.domain import AssetsDomain
from pipelines.assets.previews import PreviewRequests
from pipelines.db import Database
from pipelines.errors import FarmError
from pipelines.events.feed import Feed
from pipelines.events.log import EventLog
from pipelines.farm.node_admin import NodeAdmin
from pipelines.farm.submit.jobs import JobService
from pipelines.health import ExecutableCheck, Readiness
from pipelines.identity.service import Identity
from pipelines.mail.transport import SmtpConfig, SmtpTransport
from pipelines.mail.worker import MailWorker
from pipelines.ratelimit import COLLECTION as RATE_COLLECTION
from pipelines.ratelimit import WindowCounter, purge_ended_windows
from pipelines.review.service import ReviewService
from pipelines.storage import ObjectStore, storage_config
from serve.cluster_link import ClusterLink
from serve.metrics import HttpMetrics

log = logging.getLogger("farm.platform")


@dataclass
class Platform:
    settings: Settings
    db: Database
    store: ObjectStore
    link: ClusterLink
    metrics: HttpMetrics = field(default_factory=HttpMetrics)
    source_id: str = field(
        default_factory=lambda: f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"
    )
    ffmpeg_check: ExecutableCheck | None = None
    _tasks: list[asyncio.Task] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.ffmpeg_check = ExecutableCheck(self.settings.ffmpeg)

    @classmethod
    def open(cls, settings: Settings, link: ClusterLink) -> Platform:
        if settings.mongo_url is None:
            raise ValueError("no database URL: start the embedded services or set FARM_MONGO_URL")
        db = Database(settings.mongo_url.get_secret_value(), settings.mongo_db,
                      timeout_s=settings.dependency_timeout_s, for_requests=True)
        return cls(settings, db, ObjectStore(storage_config(settings)), link)

    @property
    def rate_limiter(self) -> WindowCounter:
        return WindowCounter(self.db[RATE_COLLECTION], self.settings.rate_limit_requests,
                             self.settings.rate_limit_window_s)

    @functools.cached_property
    def identity(self) -> Identity:
        return Identity(self.db, self.settings)

    @functools.cached_property
    def events(self) -> EventLog:
        return EventLog(self.db, publisher=self.link.event_publisher())

    @functools.cached_property
    def feed(self) -> Feed:
        """This process's live events, for its sockets (docs/realtime.md)."""
        return Feed(self.events, self.link.event_source(), self.source_id)

    @functools.cached_property
    def review(self) -> ReviewService:
        return ReviewService(self.db, self.events, self.assets.assets)

    @functools.cached_property
    def assets(self) -> AssetsDomain:
        # A new version's preview request wakes the dispatcher, which adopts it at once.
        requests = PreviewRequests(self.db, wake=self.link.wake_dispatcher)
        return AssetsDomain.build(self.db, self.store, self.settings, self.events, requests)

    @functools.cached_property
    def jobs(self) -> JobService:
        return JobService(self.db, self.events, wake=self.link.wake_dispatcher)

    @functools.cached_property
    def analytics(self) -> Analytics:
        return Analytics(self.db, self.settings.studio_quota_bytes)

    @functools.cached_property
    def nodes(self) -> NodeAdmin:
        return NodeAdmin(self.db, self.events, self.settings.node_managers)

    @property
    def readiness(self) -> Readiness:
        timeout = self.settings.dependency_timeout_s
        return Readiness(
            {  # type: ignore[dict-item]
                "database": self.db.ping,
                "storage": self.store.ping,
                "ray": self.link.ping,
                "dispatcher": self.link.ping_dispatcher,
                "ffmpeg": self.ffmpeg_check,
            },
            timeout_s=timeout,
        )

    def start_background(self) -> None:
        self._tasks.append(asyncio.create_task(self._prepare_storage_and_indexes()))
        self._tasks.append(asyncio.create_task(self._publish_metrics_forever()))
        self._tasks.append(asyncio.create_task(self._janitor_forever()))
        self._tasks.append(asyncio.create_task(self._mail_forever()))
        self._tasks.append(asyncio.create_task(self.feed.run()))

    async def _janitor_forever(self) -> None:
        while True:
            await asyncio.sleep(self.settings.janitor_interval_s)
            try:
                done = await self.assets.janitor.run_once()
                done["rate_windows_purged"] = await purge_ended_windows(
                    self.db[RATE_COLLECTION], time.time())
                done["events_pruned"] = await self.events.prune(
                    max_age_s=self.settings.event_retention_s,
                    max_count=self.settings.event_retention_count)
                if any(done.values()):
                    log.info("janitor", extra=done)
            except Exception:  # noqa: BLE001 - next round retries; the loop must not die
                log.exception("janitor round failed")

    async def _mail_forever(self, every_s: float = 1.0) -> None:
        """Reset requests answered and queued mail sent (any process may: each message is
        claimed by one sender)."""
        if self.settings.smtp_host is None:
            log.warning("no SMTP server (FARM_SMTP_HOST): mail stays queued until one is set")
            return
        worker = MailWorker(self.identity.outbox, SmtpTransport(SmtpConfig.of(self.settings)),
                            before=self.identity.resets.process)
        while True:
            await asyncio.sleep(every_s)
            try:
                await worker.run_once()
            except FarmError as exc:  # the database away: the next round retries
                log.warning("mail round skipped: %s", exc.message)
            except Exception:  # noqa: BLE001 - the loop must not die
                log.exception("mail round failed")

    async def _prepare_storage_and_indexes(self) -> None:
        """Retried until it succeeds: a dependency that is down at start-up comes back later."""
        delay = 0.5
        while True:
            try:
                await self.db.ensure_indexes()
                await self.store.ensure_bucket()
                return
            except FarmError as exc:
                log.warning("start-up preparation waiting: %s", exc.message)
                await asyncio.sleep(delay)
                delay = min(delay * 2, 10.0)

    async def publish_metrics(self) -> None:
        await self.link.report_metrics(self.source_id, self.metrics.snapshot())

    async def _publish_metrics_forever(self, every_s: float = 1.0) -> None:
        while True:
            await asyncio.sleep(every_s)
            try:
                await self.publish_metrics()
            except Exception as exc:  # noqa: BLE001 - metrics must never take a replica down
                log.debug("metrics report failed: %s", type(exc).__name__)

    async def close(self) -> None:
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        await self.store.aclose()
        await self.db.close()
