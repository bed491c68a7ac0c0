"""Review over REST: comments on assets and decisions (the same actions as the socket's)."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query, Request

from pipelines.identity.models import Principal
from pipelines.identity.permissions import Action
from pipelines.numbers import MAX_INT64
from pipelines.review.models import CommentCreate, CommentPatch, DecisionCreate
from pipelines.review.service import ReviewService
from serve.deps import PageParams, require

router = APIRouter(tags=["review"])

Reader = Annotated[Principal, require(Action.ASSET_READ)]
Commenter = Annotated[Principal, require(Action.REVIEW_COMMENT)]
Decider = Annotated[Principal, require(Action.REVIEW_DECIDE)]


def get_review(request: Request) -> ReviewService:
    return request.app.state.platform.review


ReviewDep = Annotated[ReviewService, Depends(get_review)]


@router.get("/assets/{asset_id}/comments", summary="Comments of an asset, oldest first")
async def list_comments(asset_id: str, review: ReviewDep, who: Reader, page: PageParams,
                        version: Annotated[int | None, Query(ge=1, le=MAX_INT64)] = None,
                        ) -> dict[str, Any]:
    return await review.list_comments(who, asset_id, limit=page.limit, cursor=page.cursor,
                                      version=version)


@router.post("/assets/{asset_id}/comments", status_code=201,
             summary="Comment (frame or timecode range, annotation, reply, mentions)")
async def create_comment(asset_id: str, body: CommentCreate, review: ReviewDep,
                         who: Commenter) -> dict[str, Any]:
    comment, seq = await review.comment(who, asset_id, body)
    return {**comment, "seq": seq}


@router.patch("/comments/{comment_id}", summary="Edit your comment")
async def edit_comment(comment_id: str, body: CommentPatch, review: ReviewDep,
                       who: Commenter) -> dict[str, Any]:
    comment, seq = await review.edit(who, comment_id, body)
    return {**comment, "seq": seq}


@router.delete("/comments/{comment_id}", status_code=204, summary="Delete your comment")
async def delete_comment(comment_id: str, review: ReviewDep, who: Commenter) -> None:
    await review.delete(who, comment_id)


@router.post("/assets/{asset_id}/decisions", status_code=201,
             summary="Approve or request changes (moves the asset's status)")
async def decide(asset_id: str, body: DecisionCreate, review: ReviewDep,
                 who: Decider) -> dict[str, Any]:
    decision, seq = await review.decide(who, asset_id, body)
    return {**decision, "seq": seq}
