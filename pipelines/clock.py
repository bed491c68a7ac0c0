"""Times are stored as epoch seconds (floats).

The embedded database stores a datetime written by `$set` as a string, which breaks sorting
and range queries; numbers behave the same on MongoDB and on the embedded server.
"""

from __future__ import annotations

from datetime import UTC, datetime


def iso(epoch_s: float | None) -> str | None:
    if epoch_s is None:
        return None
    return datetime.fromtimestamp(epoch_s, UTC).isoformat(timespec="milliseconds")
