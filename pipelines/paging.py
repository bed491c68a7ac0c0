"""Cursor pagination for any sort field: `?limit=&cursor=` -> items and `next_cursor`.

The cursor holds only the last item's sort value and id. The caller's filter (which always
includes the studio from the credential) is applied again on every page, so a forged
cursor moves within the caller's own data and nowhere else. Paging on (value, _id) is
stable under concurrent inserts: nothing already seen repeats and nothing is skipped.
"""

from __future__ import annotations

import base64
import binascii
import json
from datetime import datetime
from typing import Any

from pipelines.errors import InvalidInput

_BAD = "the cursor is not valid"
DEFAULT_LIMIT = 50
MAX_LIMIT = 200
# The shape of every cursor this module makes, stated in the OpenAPI document: unpadded
# base64url of a JSON array whose first item is a sort field (`["` and a lowercase letter
# encode as `WyJ`). Anything else is refused by the schema; what fits it but was not made
# here is refused as `invalid_cursor` too.
CURSOR_PATTERN = r"^WyJ[A-Za-z0-9_-](?:[A-Za-z0-9_-]{4})*(?:[A-Za-z0-9_-]{2,3})?$"
MAX_CURSOR_CHARS = 1024


def _encode_value(value: Any) -> list:
    if isinstance(value, datetime):
        return ["t", value.isoformat()]
    if isinstance(value, bool) or not isinstance(value, str | int | float):
        raise TypeError(f"cannot page on {type(value).__name__}")
    return ["v", value]


def _decode_value(tagged: Any) -> Any:
    if not (isinstance(tagged, list) and len(tagged) == 2):
        raise ValueError
    tag, value = tagged
    if tag == "t" and isinstance(value, str):
        return datetime.fromisoformat(value)
    if tag == "v" and isinstance(value, str | int | float) and not isinstance(value, bool):
        return value
    raise ValueError


def encode_cursor(sort_field: str, value: Any, doc_id: str) -> str:
    raw = json.dumps([sort_field, _encode_value(value), doc_id], separators=(",", ":"))
    return base64.urlsafe_b64encode(raw.encode()).decode().rstrip("=")


def decode_cursor(cursor: str, sort_field: str) -> tuple[Any, str]:
    try:
        # validate=True: characters outside the alphabet are refused, not skipped.
        raw = base64.b64decode(cursor + "=" * (-len(cursor) % 4), altchars=b"-_",
                               validate=True)
        field, tagged, doc_id = json.loads(raw)
        value = _decode_value(tagged)
    except (binascii.Error, ValueError, TypeError) as exc:
        raise InvalidInput(_BAD, code="invalid_cursor") from exc
    if field != sort_field or not isinstance(doc_id, str):
        raise InvalidInput("the cursor belongs to another sort order", code="invalid_cursor")
    return value, doc_id


async def fetch_page(collection: Any, query: dict[str, Any], sort_field: str, *, limit: int,
                     cursor: str | None, descending: bool = False,
                     max_limit: int = MAX_LIMIT) -> tuple[list[dict[str, Any]], str | None]:
    limit = max(1, min(limit, max_limit))
    if cursor:
        value, doc_id = decode_cursor(cursor, sort_field)
        beyond = "$lt" if descending else "$gt"
        query = {"$and": [query, {"$or": [
            {sort_field: {beyond: value}},
            {sort_field: value, "_id": {beyond: doc_id}},
        ]}]}
    direction = -1 if descending else 1
    docs = await collection.find(query).sort(
        [(sort_field, direction), ("_id", direction)]
    ).limit(limit + 1).to_list()
    if len(docs) <= limit:
        return docs, None
    docs = docs[:limit]
    return docs, encode_cursor(sort_field, docs[-1][sort_field], docs[-1]["_id"])
