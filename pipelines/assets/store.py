"""Collections and indexes of the assets domain."""

from __future__ import annotations

from pymongo import ASCENDING, DESCENDING, IndexModel

from pipelines.db import declare_indexes

ASSETS = "assets"
VERSIONS = "asset_versions"
UPLOADS = "uploads"
USAGE = "studio_usage"

# Every list query filters on (studio_id, deleted) first, then sorts on (field, _id).
# `_id` is left out of the keys: the embedded server cannot index it inside a compound
# index, and the sort field alone keeps pages narrow.
_LIST_SORTS = ("name_lower", "created_at", "updated_at")
declare_indexes(ASSETS, [
    *(IndexModel([("studio_id", ASCENDING), ("deleted", ASCENDING), (field, ASCENDING)],
                 name=f"list_by_{field}") for field in _LIST_SORTS),
    IndexModel([("studio_id", ASCENDING), ("kind", ASCENDING), ("created_at", DESCENDING)],
               name="filter_kind"),
    IndexModel([("studio_id", ASCENDING), ("status", ASCENDING), ("created_at", DESCENDING)],
               name="filter_status"),
    IndexModel([("studio_id", ASCENDING), ("tags", ASCENDING), ("created_at", DESCENDING)],
               name="filter_tag"),
    IndexModel([("studio_id", ASCENDING), ("owner_id", ASCENDING), ("created_at", DESCENDING)],
               name="filter_owner"),
    IndexModel([("deleted", ASCENDING), ("purged", ASCENDING)], name="purge_queue"),
])
declare_indexes(VERSIONS, [
    IndexModel([("asset_id", ASCENDING), ("number", ASCENDING)], unique=True,
               name="asset_number"),
    IndexModel([("studio_id", ASCENDING), ("asset_id", ASCENDING)], name="studio_asset"),
])
declare_indexes(UPLOADS, [
    IndexModel([("studio_id", ASCENDING), ("state", ASCENDING)], name="studio_state"),
    IndexModel([("state", ASCENDING), ("expires_at", ASCENDING)], name="reap_queue"),
])
