"""Cursor pagination: `?limit=&cursor=` -> items and an opaque `next_cursor`.

The cursor holds only the last item's sort key and id. The caller's filter (which always
includes the studio from the credential) is applied again on every page, so a forged
cursor can move within the caller's own data and nowhere else.
"""

from __future__ import annotations

import base64
import binascii
import json
from typing import Any

from pipelines.errors import InvalidInput

DEFAULT_LIMIT = 50
MAX_LIMIT = 200


def encode_cursor(sort_value: float, doc_id: str) -> str:
    raw = json.dumps([sort_value, doc_id], separators=(",", ":")).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def decode_cursor(cursor: str) -> tuple[float, str]:
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
        sort_value, doc_id = json.loads(raw)
    except (binascii.Error, ValueError, TypeError) as exc:
        raise InvalidInput("the cursor is not valid", code="invalid_cursor") from exc
    if not isinstance(sort_value, int | float) or not isinstance(doc_id, str):
        raise InvalidInput("the cursor is not valid", code="invalid_cursor")
    return float(sort_value), doc_id


async def fetch_page(collection: Any, query: dict[str, Any], sort_field: str, *,
                     limit: int, cursor: str | None,
                     descending: bool = False) -> tuple[list[dict[str, Any]], str | None]:
    limit = max(1, min(limit, MAX_LIMIT))
    if cursor:
        value, doc_id = decode_cursor(cursor)
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
    return docs, encode_cursor(docs[-1][sort_field], docs[-1]["_id"])
