"""Rooms: who receives an event.

The delivery rule: an event reaches its own `room` and, unless that room is a personal
`user:<id>` room, also `studio:<studio_id>`. So producers write one room (`job:<id>`,
`asset:<id>`) and the studio-wide feed still sees everything that is not personal.
"""

from __future__ import annotations

import re
from typing import Any

from pipelines.errors import Forbidden, InvalidInput

KINDS = ("studio", "asset", "job", "user")
ROOM_PATTERN = r"^(studio|asset|job|user):([A-Za-z0-9_-]{1,64})$"  # also in the OpenAPI doc
_ROOM = re.compile(ROOM_PATTERN)


def studio_room(studio_id: str) -> str:
    return f"studio:{studio_id}"


def user_room(user_id: str) -> str:
    return f"user:{user_id}"


def audience(studio_id: str, room: str) -> list[str]:
    """Every room an event written to `room` is delivered to (stored with the event)."""
    if room.startswith("user:") or room == studio_room(studio_id):
        return [room]
    return [room, studio_room(studio_id)]


def reaches(event: dict[str, Any], rooms: set[str] | frozenset[str]) -> bool:
    """True when a socket joined to `rooms` receives `event`."""
    room = event["room"]
    if room in rooms:
        return True
    return not room.startswith("user:") and studio_room(event["studio_id"]) in rooms


def parse(room: str) -> tuple[str, str]:
    match = _ROOM.fullmatch(room) if isinstance(room, str) else None  # no trailing newline
    if match is None:
        raise InvalidInput("a room is studio:<id>, asset:<id>, job:<id> or user:<id>",
                           code="invalid_room")
    return match.group(1), match.group(2)


def check_own(room: str, studio_id: str, user_id: str) -> tuple[str, str]:
    """Refuse another studio's room and another user's personal room."""
    kind, ident = parse(room)
    if (kind == "studio" and ident != studio_id) or (kind == "user" and ident != user_id):
        raise Forbidden("that room is not yours", code="room_forbidden")
    return kind, ident
