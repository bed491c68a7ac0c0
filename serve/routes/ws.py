"""`/api/v1/ws`: the live socket (protocol: docs/realtime.md)."""

from __future__ import annotations

from fastapi import APIRouter, WebSocket

from serve.realtime.commands import read_messages
from serve.realtime.connection import Connection, Limits
from serve.realtime.handshake import admit

router = APIRouter(tags=["live"])


@router.websocket("/ws", name="live events")
async def live(ws: WebSocket) -> None:
    platform = ws.app.state.platform
    admitted = await admit(ws, platform)
    if admitted is None:
        return
    limits = Limits.of(platform.settings)
    principal = admitted.principal
    hello = {"type": "hello", "studio_id": principal.studio_id, "user_id": principal.user_id,
             "role": str(principal.role), "replica": platform.source_id,
             "limits": {"max_message_bytes": limits.max_message_bytes,
                        "messages_per_s": limits.messages_per_s,
                        "window_frames": limits.queue_frames,
                        "heartbeat_s": limits.heartbeat_s}}
    connection = Connection(ws, platform, principal, admitted.credential, limits)
    await connection.run(hello, admitted.resume_from, read_messages,
                         start_now=admitted.by_message)
