"""The studio's figures for producers and admins (docs/analytics.md)."""

from __future__ import annotations

from typing import Annotated, Literal

from fastapi import APIRouter, Depends, Query, Request

from pipelines.analytics import Analytics, ReviewOut, Rows, StorageOut
from pipelines.identity.models import Principal
from pipelines.identity.permissions import Action
from serve.deps import require

router = APIRouter(prefix="/analytics", tags=["analytics"])
Reader = Annotated[Principal, require(Action.ANALYTICS_READ)]
Days = Annotated[int, Query(ge=1, le=366, description="The window: the last N days.")]
Limit = Annotated[int, Query(ge=1, le=500)]
Offset = Annotated[int, Query(ge=0, le=100_000)]


def get_analytics(request: Request) -> Analytics:
    return request.app.state.platform.analytics


AnalyticsDep = Annotated[Analytics, Depends(get_analytics)]


@router.get("/usage", response_model=Rows,
            summary="Succeeded tasks, frames, render and core hours by day, submitter or kind")
async def usage(analytics: AnalyticsDep, who: Reader,
                group: Literal["day", "submitter", "job_kind", "task_kind"] = "day",
                days: Days = 30, limit: Limit = 100, offset: Offset = 0) -> dict:
    items = await analytics.usage(who.studio_id, group, days, limit, offset)
    return {"items": items, "days": days}


@router.get("/failures", response_model=Rows,
            summary="Failed attempts and failure rate by failure class or by node")
async def failures(analytics: AnalyticsDep, who: Reader,
                   group: Literal["class", "node"] = "class", days: Days = 30,
                   limit: Limit = 100, offset: Offset = 0) -> dict:
    items = await analytics.failures(who.studio_id, group, days, limit, offset)
    return {"items": items, "days": days}


@router.get("/nodes", response_model=Rows,
            summary="Each farm node's busy hours and utilisation (every studio's work)")
async def nodes(analytics: AnalyticsDep, who: Reader, days: Days = 7) -> dict:
    return {"items": await analytics.nodes(days), "days": days}


@router.get("/storage", response_model=StorageOut,
            summary="Storage the studio uses, and its quota")
async def storage(analytics: AnalyticsDep, who: Reader) -> dict:
    return await analytics.storage(who.studio_id)


@router.get("/review", response_model=ReviewOut,
            summary="Review decisions and turnaround, upload to decision")
async def review(analytics: AnalyticsDep, who: Reader, days: Days = 30) -> dict:
    return await analytics.review(who.studio_id, days) | {"days": days}
