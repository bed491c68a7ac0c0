"""The reader: a socket's client messages, validated, authorised, answered in order.

Answers go through the socket's queue: `{"type": "ack", "id", ...}` or
`{"type": "error", "id", "error": {code, message, details, request_id}}` (the HTTP error
contract). Review messages answer with the stored event's `seq`.
"""

from __future__ import annotations

import json
import time
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any

from pydantic import ValidationError

from pipelines.context import request_id_var
from pipelines.errors import FarmError, InvalidInput, RateLimited
from serve.realtime import messages as protocol
from serve.realtime.connection import Closed
from serve.room_access import check_room

if TYPE_CHECKING:
    from serve.realtime.connection import Connection

TOO_BIG = (1009, "message too big")
TEXT_ONLY = (1003, "text messages only")


def error_frame(ref: Any, exc: FarmError) -> dict[str, Any]:
    return {"type": "error", "id": ref, "error": {
        "code": exc.code, "message": exc.message, "details": exc.details,
        "request_id": request_id_var.get()}}


def validation_error(exc: ValidationError) -> InvalidInput:
    # Never echo the input back: it may hold a token.
    details = [{"loc": [str(part) for part in err.get("loc", ())], "msg": err.get("msg", ""),
                "type": err.get("type", "")} for err in exc.errors()]
    return InvalidInput("the message is not valid", code="validation_failed", details=details)


async def read_messages(conn: Connection) -> None:
    limit = conn.limits.max_message_bytes
    while True:
        message = await conn.ws.receive()
        if message["type"] == "websocket.disconnect":
            conn.peer_gone = True
            conn.close_soon(message.get("code", 1000), "client left")
            raise Closed
        text = message.get("text")
        if text is None:
            conn.close_soon(*TEXT_ONLY)
            raise Closed
        if len(text) > limit or (len(text) * 4 > limit and len(text.encode()) > limit):
            conn.close_soon(*TOO_BIG)
            raise Closed
        conn.last_heard = time.monotonic()
        await handle(conn, text)


async def handle(conn: Connection, text: str) -> None:
    try:
        raw = json.loads(text)
    except ValueError:
        raw = None
    ref = protocol.reference(raw)
    if not isinstance(raw, dict):
        conn.send(error_frame(None, InvalidInput("send a JSON object", code="invalid_json")))
        return
    if raw.get("type") == "pong":  # flow control: cheap, never rate limited
        conn.on_pong(raw.get("id"))
        return
    if not conn.bucket.take():
        conn.send(error_frame(ref, RateLimited(
            "too many messages; slow down", retry_after_s=int(conn.bucket.retry_after_s()) + 1)))
        return
    try:
        message = protocol.parse(raw)
        await HANDLERS[message.type](conn, message)
    except ValidationError as exc:
        conn.send(error_frame(ref, validation_error(exc)))
    except FarmError as exc:
        conn.send(error_frame(ref, exc))
    finally:
        conn.start()  # the first message of any kind starts live delivery


async def _ping(conn: Connection, message: protocol.Ping) -> None:
    conn.send({"type": "pong", "id": message.id})


async def _resume(conn: Connection, message: protocol.Resume) -> None:
    if conn.started.is_set():
        raise InvalidInput("resume with the first message (or ?last_seq= / the auth message)",
                           code="resume_too_late")
    conn.start(message.last_seq)


async def _auth(conn: Connection, message: protocol.Auth) -> None:
    raise InvalidInput("this socket is already authenticated", code="already_authenticated")


async def _rooms(conn: Connection, message: protocol.RoomChange) -> None:
    if message.type == "subscribe":
        await check_room(conn.platform, conn.principal, message.room)
        conn.rooms.add(message.room)
    else:
        conn.rooms.discard(message.room)
    conn.send({"type": "ack", "id": message.id, "rooms": sorted(conn.rooms)})


async def _comment(conn: Connection, message: protocol.Comment) -> None:
    comment, seq = await conn.platform.review.comment(conn.principal, message.asset_id,
                                                      message.create())
    conn.send({"type": "ack", "id": message.id, "seq": seq, "data": {"comment": comment}})


async def _decide(conn: Connection, message: protocol.Decision) -> None:
    decision, seq = await conn.platform.review.decide(conn.principal, message.asset_id,
                                                      message.create())
    conn.send({"type": "ack", "id": message.id, "seq": seq, "data": {"decision": decision}})


Handler = Callable[["Connection", Any], Awaitable[None]]
HANDLERS: dict[str, Handler] = {
    "ping": _ping, "resume": _resume, "auth": _auth, "subscribe": _rooms,
    "unsubscribe": _rooms, "asset.comment": _comment, "asset.approve": _decide,
    "asset.request_changes": _decide,
}
