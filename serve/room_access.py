"""Which event rooms a caller may read: one rule for the socket and for replay over HTTP."""

from __future__ import annotations

from typing import TYPE_CHECKING

from pipelines.errors import NotFound
from pipelines.events.rooms import check_own
from pipelines.identity.models import Principal

if TYPE_CHECKING:
    from serve.platform import Platform


class RoomNotFound(NotFound):
    code = "room_not_found"


async def check_room(platform: Platform, principal: Principal, room: str) -> None:
    """A room of the caller's own studio that exists. Another studio's or user's studio or
    personal room is forbidden; another studio's asset or job room is 'not found', since
    its id alone must not tell that it exists."""
    kind, ident = check_own(room, principal.studio_id, principal.user_id)
    try:
        if kind == "asset":
            await platform.assets.assets.get_doc(principal, ident)
        elif kind == "job":
            await platform.jobs.get_doc(principal, ident)
    except NotFound:
        raise RoomNotFound("no such room") from None
