"""Liveness, readiness and metrics: what load balancers and Prometheus poll."""

from __future__ import annotations

from typing import Literal

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse, PlainTextResponse
from pydantic import BaseModel, Field

router = APIRouter(tags=["operations"])


class Health(BaseModel):
    status: Literal["ok"]


class Check(BaseModel):
    status: Literal["ok", "down"]
    latency_ms: float
    error: str | None = Field(None, description="Why the dependency is down.")


class Readiness(BaseModel):
    status: Literal["ok", "unavailable"]
    checks: dict[str, Check] = Field(description="database, storage, ray, dispatcher, ffmpeg.")


@router.get("/health", response_model=Health, summary="The process is alive")
async def health() -> dict:
    return {"status": "ok"}


@router.get("/ready", response_model=Readiness,
            summary="Every dependency answers (503 when one does not)",
            responses={503: {"model": Readiness, "description": "A dependency is down: the "
                             "same shape, `status: unavailable`, the failing check says why."}})
async def ready(request: Request) -> JSONResponse:
    ok, checks = await request.app.state.platform.readiness.run()
    return JSONResponse(
        {"status": "ok" if ok else "unavailable", "checks": checks},
        status_code=200 if ok else 503,
    )


@router.get("/metrics", summary="Prometheus metrics summed over all Api replicas",
            response_class=PlainTextResponse,
            responses={200: {"content": {"text/plain": {"schema": {"type": "string"}}},
                             "description": "Prometheus text exposition format 0.0.4."}})
async def metrics(request: Request) -> PlainTextResponse:
    platform = request.app.state.platform
    await platform.publish_metrics()  # this replica's latest counts, before rendering the sum
    text = await platform.link.render_metrics()
    return PlainTextResponse(text, media_type="text/plain; version=0.0.4; charset=utf-8")
