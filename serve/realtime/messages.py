"""Messages a WebSocket client may send (docs/realtime.md), validated like request bodies.

Every message is a JSON object with a `type`; `id` (a string or number of the client's
choosing) is echoed in the answer. `{"last_seq": N}` without a type is a resume.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, StringConstraints, TypeAdapter

from pipelines.review.models import CommentCreate, DecisionCreate, DecisionKind, Id

Ref = Annotated[str, StringConstraints(max_length=64)] | Annotated[int, Field(ge=0)] | None
Room = Annotated[str, StringConstraints(max_length=80)]


class _Message(BaseModel):
    model_config = ConfigDict(extra="forbid")
    id: Ref = None


class Auth(_Message):
    type: Literal["auth"]
    token: Annotated[str, StringConstraints(min_length=1, max_length=4096)]
    last_seq: int | None = Field(None, ge=0)


class Resume(_Message):
    type: Literal["resume"]
    last_seq: int = Field(ge=0)


class Ping(_Message):
    type: Literal["ping"]


class Pong(_Message):
    type: Literal["pong"]


class RoomChange(_Message):
    type: Literal["subscribe", "unsubscribe"]
    room: Room


class Comment(CommentCreate):
    type: Literal["asset.comment"]
    id: Ref = None
    asset_id: Id

    def create(self) -> CommentCreate:
        return CommentCreate.model_validate(
            self.model_dump(exclude={"type", "id", "asset_id"}, exclude_unset=True))


class Decision(_Message):
    type: Literal["asset.approve", "asset.request_changes"]
    asset_id: Id
    note: str = Field("", max_length=10_000)
    version: int | None = Field(None, ge=1)

    def create(self) -> DecisionCreate:
        kind = DecisionKind.APPROVE if self.type == "asset.approve" else \
            DecisionKind.REQUEST_CHANGES
        return DecisionCreate(decision=kind, note=self.note, version=self.version)


ClientMessage = Annotated[Auth | Resume | Ping | Pong | RoomChange | Comment | Decision,
                          Field(discriminator="type")]
TYPES = ("auth", "resume", "ping", "pong", "subscribe", "unsubscribe", "asset.comment",
         "asset.approve", "asset.request_changes")
_ADAPTER: TypeAdapter[Any] = TypeAdapter(ClientMessage)


def normalise(raw: Any) -> Any:
    if isinstance(raw, dict) and "type" not in raw and "last_seq" in raw:
        return {**raw, "type": "resume"}
    return raw


def parse(raw: Any) -> Any:
    """The typed message; raises pydantic.ValidationError."""
    return _ADAPTER.validate_python(normalise(raw))


def reference(raw: Any) -> str | int | None:
    """The client's `id`, when it is one we can echo safely."""
    ref = raw.get("id") if isinstance(raw, dict) else None
    if isinstance(ref, bool):
        return None
    if (isinstance(ref, str) and len(ref) <= 64) or (isinstance(ref, int) and ref >= 0):
        return ref
    return None
