"""Review: comments (with frame, timecode range and annotation) and decisions.

Request models forbid unknown fields, like every body of the API. Annotations are strokes
on a 0-1 grid (x right, y down, relative to the frame), so they survive any player size.
"""

from __future__ import annotations

import re
from enum import StrEnum
from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, Field, StringConstraints, model_validator
from pydantic_core import PydanticCustomError

from pipelines.clock import iso
from pipelines.numbers import Float, Int, VersionNumber
from pipelines.schema import at_least_one

MAX_BODY = 10_000
MAX_MENTIONS = 20
MAX_STROKES = 200
MAX_POINTS = 5_000

Id = Annotated[str, StringConstraints(pattern=r"^[A-Za-z0-9_-]{1,64}$")]
# Some visible character: what str.strip() leaves is not empty (the pattern names the
# characters Python strips that a JSON Schema `\s` does not).
Body = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1,
                                        max_length=MAX_BODY, pattern=r"[^\s\x1c-\x1f\x85]")]
Unit = Annotated[Float, Field(ge=0.0, le=1.0)]
# SMPTE timecode HH:MM:SS:FF (";" before the frames for drop-frame rates).
_TIMECODE = re.compile(r"^(\d{2}):([0-5]\d):([0-5]\d)[:;](\d{2})$")
Timecode = Annotated[str, StringConstraints(pattern=_TIMECODE.pattern)]


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class Stroke(Strict):
    tool: str = Field("pen", pattern=r"^(pen|arrow|rect|ellipse|text)$")
    color: str = Field("#ff0000", pattern=r"^#[0-9a-fA-F]{6}$")
    width: Float = Field(0.004, gt=0, le=0.1, description="Line width, fraction of frame width.")
    points: list[tuple[Unit, Unit]] = Field(min_length=1, max_length=MAX_POINTS)
    text: str | None = Field(None, max_length=500)


class Annotation(Strict):
    strokes: list[Stroke] = Field(min_length=1, max_length=MAX_STROKES)

    @model_validator(mode="after")
    def _bounded(self) -> Annotation:
        if sum(len(stroke.points) for stroke in self.strokes) > MAX_POINTS:
            raise ValueError(f"an annotation holds at most {MAX_POINTS} points")
        return self


class TimecodeRange(Strict):
    start: Timecode
    end: Timecode

    @model_validator(mode="after")
    def _ordered(self) -> TimecodeRange:
        if _frames(self.end) < _frames(self.start):
            # Its own code: the schema cannot compare two timecodes.
            raise PydanticCustomError("timecode_reversed", "the range ends before it starts")
        return self


def _frames(timecode: str) -> tuple[int, ...]:
    match = _TIMECODE.match(timecode)
    assert match is not None
    return tuple(int(part) for part in match.groups())


class CommentCreate(Strict):
    model_config = ConfigDict(extra="forbid", json_schema_extra={
        "not": {"required": ["frame", "timecode"],
                "properties": {"frame": {"type": "integer"}, "timecode": {"type": "object"}}},
        "examples": [{"body": "The rim light pops on this frame.", "frame": 1042},
                     {"body": "Hold a bit longer", "timecode": {
                         "start": "00:00:41:00", "end": "00:00:42:12"}}]})
    body: Body
    version: VersionNumber | None = Field(None, description="Defaults to the current version.")
    frame: Int | None = Field(None, ge=0, le=10_000_000)
    timecode: TimecodeRange | None = None
    annotation: Annotation | None = None
    parent_id: Id | None = Field(None, description="Reply to this comment (same asset).")
    mentions: list[Id] = Field(default_factory=list, max_length=MAX_MENTIONS)

    @model_validator(mode="after")
    def _one_anchor(self) -> CommentCreate:
        if self.frame is not None and self.timecode is not None:
            raise ValueError("anchor a comment to a frame or to a timecode range, not both")
        self.mentions = list(dict.fromkeys(self.mentions))
        return self


class CommentPatch(Strict):
    model_config = ConfigDict(extra="forbid", json_schema_extra=at_least_one(
        "body", "annotation", "mentions") | {"examples": [{"body": "Fixed in v4?"}]})
    body: Body | None = None
    annotation: Annotation | None = None
    mentions: list[Id] | None = Field(None, max_length=MAX_MENTIONS)

    @model_validator(mode="after")
    def _not_empty(self) -> CommentPatch:
        if self.body is None and self.annotation is None and self.mentions is None:
            raise ValueError("nothing to change: give body, annotation or mentions")
        if self.mentions is not None:
            self.mentions = list(dict.fromkeys(self.mentions))
        return self


class DecisionKind(StrEnum):
    APPROVE = "approve"
    REQUEST_CHANGES = "request_changes"


class DecisionCreate(Strict):
    model_config = ConfigDict(extra="forbid", json_schema_extra={"examples": [
        {"decision": "approve", "note": "Final."},
        {"decision": "request_changes", "note": "Warmer key light", "version": 3}]})
    decision: DecisionKind
    note: str = Field("", max_length=MAX_BODY)
    version: VersionNumber | None = Field(None, description="Defaults to the current version; "
                                "deciding on an older one is a conflict.")


def public_comment(doc: dict[str, Any]) -> dict[str, Any]:
    return {
        "id": doc["_id"], "asset_id": doc["asset_id"], "version": doc.get("version"),
        "author_id": doc["author_id"], "body": doc["body"], "frame": doc.get("frame"),
        "timecode": doc.get("timecode"), "annotation": doc.get("annotation"),
        "parent_id": doc.get("parent_id"), "thread_id": doc["thread_id"],
        "mentions": doc.get("mentions", []), "created_at": iso(doc["created_at"]),
        "edited_at": iso(doc.get("edited_at")),
    }


def public_decision(doc: dict[str, Any]) -> dict[str, Any]:
    return {"id": doc["_id"], "asset_id": doc["asset_id"], "version": doc["version"],
            "decision": doc["decision"], "note": doc["note"], "by": doc["by"],
            "status": doc["status"], "at": iso(doc["at"])}
