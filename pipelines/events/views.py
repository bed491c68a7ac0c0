"""What `GET /api/v1/events` answers (the event contract of docs/realtime.md)."""

from __future__ import annotations

from typing import Annotated, Any

from pydantic import BaseModel, Field


class EventOut(BaseModel):
    seq: int = Field(description="Contiguous per studio.")
    type: str = Field(examples=["job.progress"], description="`<noun>.<verb_past>` or "
                                                            "`<noun>.progress`.")
    studio_id: str
    room: str = Field(examples=["job:5f0c..."])
    at: Annotated[str, Field(json_schema_extra={"format": "date-time"})]
    data: dict[str, Any]
    request_id: str | None = Field(None, description="The request behind it: the one that "
                                   "made the change, or that submitted the job whose task "
                                   "it is about.")


class EventPage(BaseModel):
    items: list[EventOut]
    next_cursor: str | None = Field(description="Pass as `cursor` (or `after`) for the next "
                                                "page.")
    head_seq: int = Field(description="The newest event's seq.")
    oldest_seq: int | None = Field(description="The oldest event kept.")
    resync: bool = Field(description="True when `after` is outside what is kept: reload "
                                     "over REST and continue from `head_seq`.")
