"""`GET /api/v1/events`: replay of the event log over HTTP."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query, Request

from pipelines.events.replay import MAX_PAGE, replay_page
from pipelines.events.rooms import ROOM_PATTERN
from pipelines.events.views import EventPage
from pipelines.identity.models import Principal
from pipelines.identity.permissions import Action
from serve.contract import errors
from serve.deps import require
from serve.room_access import check_room

router = APIRouter(prefix="/events", tags=["live"])

Reader = Annotated[Principal, require(Action.EVENT_READ)]


@router.get("", response_model=EventPage,
            summary="Events after a sequence number, oldest first (replay)",
            responses=errors(codes={403: ["room_forbidden"], 404: ["room_not_found"],
                                    422: ["invalid_room"]}))
async def list_events(
    request: Request, who: Reader,
    after: Annotated[int | None, Query(ge=0, description="Last seq the client has.")] = None,
    cursor: Annotated[str | None, Query(pattern=r"^\d{1,18}$",
                                        description="`next_cursor` of the previous page.")] = None,
    room: Annotated[str | None, Query(max_length=80, pattern=ROOM_PATTERN,
                                      description="`studio:`, `asset:`, `job:` or `user:` "
                                                  "and an id.")] = None,
    limit: Annotated[int, Query(ge=1, le=MAX_PAGE)] = 100,
) -> dict:
    if after is None and cursor is not None:
        after = int(cursor)
    platform = request.app.state.platform
    if room:
        await check_room(platform, who, room)
    return await replay_page(platform.events, who, after=after, room=room, limit=limit)
