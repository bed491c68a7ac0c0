"""Replay over HTTP: `GET /api/v1/events?after=<seq>&room=&limit=`."""

from __future__ import annotations

from typing import Any

from pipelines.events.log import EventLog, public
from pipelines.events.rooms import check_own, studio_room, user_room
from pipelines.identity.models import Principal

MAX_PAGE = 500


async def replay_page(events: EventLog, principal: Principal, *, after: int | None,
                      room: str | None, limit: int) -> dict[str, Any]:
    """One page of the events the caller may see, oldest first.

    Without `after` the page starts at the oldest event kept. An `after` below what
    retention kept (or above the newest event) answers `resync: true` and no items: the
    client reloads its state over REST and continues from `head_seq`.
    """
    studio, user = principal.studio_id, principal.user_id
    if room:
        check_own(room, studio, user)
    rooms = [room] if room else [studio_room(studio), user_room(user)]
    head = await events.head(studio)
    oldest = await events.oldest(studio)
    if after is None:
        after = oldest - 1 if oldest is not None else 0
    elif after > head or (oldest is not None and after < oldest - 1):
        return {"items": [], "next_cursor": None, "head_seq": head, "oldest_seq": oldest,
                "resync": True}
    limit = max(1, min(limit, MAX_PAGE))
    docs = await events.after(studio, after, rooms=rooms, limit=limit + 1)
    more = len(docs) > limit
    items = [public(doc) for doc in docs[:limit]]
    return {"items": items, "next_cursor": str(items[-1]["seq"]) if more else None,
            "head_seq": head, "oldest_seq": oldest, "resync": False}
