"""Review over REST: comments on assets and decisions (the same actions as the socket's)."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Query, Request, Response

from pipelines.identity.models import Principal
from pipelines.identity.permissions import Action
from pipelines.numbers import MAX_INT64
from pipelines.review.models import CommentCreate, CommentPatch, DecisionCreate
from pipelines.review.service import ReviewService
from pipelines.review.views import CommentChanged, CommentPage, DecisionOut
from serve.contract import errors
from serve.deps import PageParams, require

router = APIRouter(tags=["review"])

Reader = Annotated[Principal, require(Action.ASSET_READ)]
Commenter = Annotated[Principal, require(Action.REVIEW_COMMENT)]
Decider = Annotated[Principal, require(Action.REVIEW_DECIDE)]


def get_review(request: Request) -> ReviewService:
    return request.app.state.platform.review


ReviewDep = Annotated[ReviewService, Depends(get_review)]
ASSET = {404: ["asset_not_found"]}
COMMENT = {404: ["comment_not_found"]}


@router.get("/assets/{asset_id}/comments", response_model=CommentPage,
            summary="Comments of an asset, oldest first",
            responses=errors(codes=ASSET | {422: ["invalid_cursor"]}))
async def list_comments(asset_id: str, review: ReviewDep, who: Reader, page: PageParams,
                        version: Annotated[int | None, Query(ge=1, le=MAX_INT64)] = None,
                        ) -> dict:
    return await review.list_comments(who, asset_id, limit=page.limit, cursor=page.cursor,
                                      version=version)


@router.post("/assets/{asset_id}/comments", status_code=201, response_model=CommentChanged,
             summary="Comment (frame or timecode range, annotation, reply, mentions)",
             responses=errors(codes=ASSET | {422: ["invalid_parent", "unknown_mention",
                                                    "timecode_reversed"]}))
async def create_comment(asset_id: str, body: CommentCreate, review: ReviewDep,
                         who: Commenter) -> dict:
    comment, seq = await review.comment(who, asset_id, body)
    return {**comment, "seq": seq}


@router.patch("/comments/{comment_id}", response_model=CommentChanged,
              summary="Edit your comment",
              responses=errors(codes=COMMENT | {403: ["not_author"], 422: ["unknown_mention"]}))
async def edit_comment(comment_id: str, body: CommentPatch, review: ReviewDep,
                       who: Commenter) -> dict:
    comment, seq = await review.edit(who, comment_id, body)
    return {**comment, "seq": seq}


@router.delete("/comments/{comment_id}", status_code=204, response_class=Response,
               summary="Delete your comment",
               responses=errors(codes=COMMENT | {403: ["not_author"]}))
async def delete_comment(comment_id: str, review: ReviewDep, who: Commenter) -> None:
    await review.delete(who, comment_id)


@router.post("/assets/{asset_id}/decisions", status_code=201, response_model=DecisionOut,
             summary="Approve or request changes (moves the asset's status)",
             responses=errors(codes=ASSET | {409: ["nothing_to_review",
                                                   "version_not_current"]}))
async def decide(asset_id: str, body: DecisionCreate, review: ReviewDep,
                 who: Decider) -> dict:
    decision, seq = await review.decide(who, asset_id, body)
    return {**decision, "seq": seq}
