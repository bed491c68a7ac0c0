"""The FastAPI application: middleware, error contract, routes, and the clients' lifespan."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI
from starlette.middleware.cors import CORSMiddleware

from config.settings import Settings
from pipelines.logs import configure_logging
from serve.cluster_link import ClusterLink, LocalLink
from serve.errors import install_error_handlers
from serve.metrics import HttpMetrics
from serve.middleware import BodyLimitMiddleware, RateLimitMiddleware, RequestContextMiddleware
from serve.platform import Platform
from serve.routes import api_keys, assets, audit, auth, health, uploads, users

API_PREFIX = "/api/v1"


def create_app(settings: Settings, link: ClusterLink | None = None, *,
               behind_serve_proxy: bool = False) -> FastAPI:
    """Build the app; clients open in the lifespan, never at import or build time."""
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

    app = FastAPI(
        title="Studio Farm API",
        version="0.1.0",
        lifespan=lifespan,
        description="Assets, review, render-farm jobs and live events for animation studios.",
    )
    install_error_handlers(app)
    app.include_router(health.router)
    for module in (auth, users, api_keys, audit, assets, uploads):
        app.include_router(module.router, prefix=API_PREFIX)

    # Added last = outermost. Order, outside in: context → CORS → rate limit → body limit.
    app.add_middleware(BodyLimitMiddleware, limit_bytes=settings.json_body_limit_bytes)
    app.add_middleware(RateLimitMiddleware)
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
        echo_request_id=not behind_serve_proxy,
        trust_forwarded_proto=settings.tls_terminated_upstream,
        metrics=metrics,
    )
    return app
