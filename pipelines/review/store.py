"""Collections and indexes of the review domain."""

from __future__ import annotations

from pymongo import ASCENDING, IndexModel

from pipelines.db import declare_indexes

COMMENTS = "review_comments"
DECISIONS = "review_decisions"

# Lists filter on (studio, asset, deleted) and page on created_at (then _id, which the
# embedded server cannot hold inside a compound index).
declare_indexes(COMMENTS, [
    IndexModel([("studio_id", ASCENDING), ("asset_id", ASCENDING), ("deleted", ASCENDING),
                ("created_at", ASCENDING)], name="asset_thread"),
])
declare_indexes(DECISIONS, [
    IndexModel([("studio_id", ASCENDING), ("asset_id", ASCENDING), ("at", ASCENDING)],
               name="asset_decisions"),
])
