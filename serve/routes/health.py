"""Liveness, readiness and metrics: what load balancers and Prometheus poll."""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse, PlainTextResponse

router = APIRouter(tags=["operations"])


@router.get("/health", summary="The process is alive")
async def health() -> dict:
    return {"status": "ok"}


@router.get("/ready", summary="Every dependency answers (503 when one does not)")
async def ready(request: Request) -> JSONResponse:
    ok, checks = await request.app.state.platform.readiness.run()
    return JSONResponse(
        {"status": "ok" if ok else "unavailable", "checks": checks},
        status_code=200 if ok else 503,
    )


@router.get("/metrics", summary="Prometheus metrics summed over all Api replicas",
            response_class=PlainTextResponse)
async def metrics(request: Request) -> PlainTextResponse:
    platform = request.app.state.platform
    await platform.publish_metrics()  # this replica's latest counts, before rendering the sum
    text = await platform.link.render_metrics()
    return PlainTextResponse(text, media_type="text/plain; version=0.0.4; charset=utf-8")
