"""The FastAPI application: middleware, error contract, routes, and the clients' lifespan."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from fastapi import FastAPI
from starlette.middleware.cors import CORSMiddleware

from config.settings import Settings
from pipelines.logs import configure_logging
from serve.cluster_link import ClusterLink, LocalLink
from serve.contract import finish_openapi
from serve.errors import install_error_handlers
from serve.metrics import HttpMetrics
from serve.middleware import BodyLimitMiddleware, RateLimitMiddleware, RequestContextMiddleware
from serve.platform import Platform
from serve.routes import (
    accounts,
    analytics,
    api_keys,
    assets,
    audit,
    auth,
    events,
    health,
    invitations,
    job_types,
    jobs,
    mail,
    nodes,
    review,
    upload_bytes,
    uploads,
    users,
    ws,
)

API_PREFIX = "/api/v1"


def create_app(settings: Settings, link: ClusterLink | None = None, *,
               behind_serve_proxy: bool = False) -> FastAPI:
    """Build the app; clients open in the lifespan, never at import or build time."""
    app = _app_with_platform(
        settings, link, echo_request_id=not behind_serve_proxy,
        title="Studio Farm API", version="0.1.0",
        description="Assets, review, render-farm jobs and live events for animation studios.",
    )
    app.include_router(health.router)
    for module in (auth, accounts, users, invitations, mail, api_keys, audit, assets, uploads,
                   upload_bytes, jobs, job_types, nodes, analytics):
        app.include_router(module.router, prefix=API_PREFIX)
    for module in (events, review, ws):  # live events and review (docs/realtime.md)
        app.include_router(module.router, prefix=API_PREFIX)
    finish_openapi(app, settings.max_upload_bytes)
    return app


def create_upload_app(settings: Settings, link: ClusterLink | None = None) -> FastAPI:
    """The routes Serve's proxy carries poorly (file bytes, the live socket), for the
    upload gateway (plain uvicorn).

    Same middleware, error contract, auth and platform as the Api; its routes and their
    documentation live in the Api's OpenAPI document, so this app serves none of its own.
    """
    app = _app_with_platform(settings, link, echo_request_id=True, title="Studio Farm uploads",
                             docs_url=None, redoc_url=None, openapi_url=None)
    app.include_router(upload_bytes.router, prefix=API_PREFIX)
    # The live socket too: through Serve's proxy every frame to every socket is a Ray
    # message (~0.5 ms of CPU each, docs/realtime.md); here a frame is one socket write.
    app.include_router(ws.router, prefix=API_PREFIX)
    return app


def _app_with_platform(settings: Settings, link: ClusterLink | None, *, echo_request_id: bool,
                       **fastapi_options: Any) -> FastAPI:
    """The lifespan (platform clients), error handlers and middleware every app shares."""
    metrics = HttpMetrics()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        configure_logging(settings.log_level)
        platform = Platform.open(settings, link or LocalLink())
        platform.metrics = metrics
        app.state.platform = platform
        platform.start_background()
        try:
            yield
        finally:
            await platform.close()

    app = FastAPI(lifespan=lifespan, **fastapi_options)
    install_error_handlers(app)

    # Added last = outermost. Order, outside in: context → CORS → rate limit → body limit.
    app.add_middleware(BodyLimitMiddleware, limit_bytes=settings.json_body_limit_bytes)
    # Within FARM_DEPENDENCY_TIMEOUT_S (T) a request answers, even with the database away:
    # the counter's wait (T/5), then one deadline for the request's calls (T/2), then the
    # driver's overrun of it (up to one 0.5 s heartbeat, pipelines/db.py): 1.9 s of 2.
    budget = settings.dependency_timeout_s
    app.add_middleware(RateLimitMiddleware, timeout_s=budget / 5, rest_s=budget / 2)
    app.add_middleware(
        CORSMiddleware,
        allow_origins=settings.cors_origins,
        allow_credentials=True,
        allow_methods=["GET", "POST", "PUT", "PATCH", "DELETE"],
        allow_headers=["Authorization", "Content-Type", "X-Request-ID"],
        expose_headers=["X-Request-ID", "Retry-After"],
        max_age=600,
    )
    app.add_middleware(
        RequestContextMiddleware,
        # The Serve proxy already echoes X-Request-ID; a second copy would confuse clients.
        echo_request_id=echo_request_id,
        trust_forwarded_proto=settings.tls_terminated_upstream,
        metrics=metrics,
    )
    return app
