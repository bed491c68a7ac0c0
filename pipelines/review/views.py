"""What the API answers about comments and decisions (shared with the SDK).

`public_comment` and `public_decision` in models.py make these shapes from stored
documents. Times are ISO 8601 strings in UTC.
"""

from __future__ import annotations

from typing import Annotated, Any

from pydantic import BaseModel, Field

from pipelines.assets.models import AssetStatus
from pipelines.review.models import DecisionKind

Timestamp = Annotated[str, Field(json_schema_extra={"format": "date-time"},
                                 examples=["2026-05-14T09:30:00.000+00:00"])]
Seq = Annotated[int, Field(description="Sequence number of the event this change made.")]


class TimecodeRangeOut(BaseModel):
    start: str
    end: str


class CommentOut(BaseModel):
    id: str
    asset_id: str
    version: int | None
    author_id: str
    body: str
    frame: int | None
    timecode: TimecodeRangeOut | None
    annotation: dict[str, Any] | None = Field(description="Strokes on a 0-1 grid.")
    parent_id: str | None
    thread_id: str
    mentions: list[str]
    created_at: Timestamp
    edited_at: Timestamp | None


class CommentPage(BaseModel):
    items: list[CommentOut]
    next_cursor: str | None


class CommentChanged(CommentOut):
    seq: Seq


class DecisionOut(BaseModel):
    id: str
    asset_id: str
    version: int
    decision: DecisionKind
    note: str
    by: str
    status: AssetStatus = Field(description="The asset's status after the decision.")
    at: Timestamp
    seq: Seq
