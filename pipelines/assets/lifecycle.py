"""An asset's status, and the one table of who may move it where.

Every status change goes through `AssetService.move`, which asks `sources` which statuses
the move may start from and writes it as one conditional update; nothing else writes an
asset's status.
"""

from __future__ import annotations

from enum import StrEnum

from pipelines.assets.models import AssetStatus
from pipelines.errors import InvalidInput

_ANY = frozenset(AssetStatus)


class Cause(StrEnum):
    EDIT = "edit"  # its owner or a producer, through PATCH
    APPROVAL = "approval"  # a review decision
    CHANGES_REQUESTED = "changes_requested"  # a review decision
    RENDER_PUBLISHED = "render_published"  # a render job's movie became its new version


# cause → (statuses it moves from, statuses it may move to)
MOVES: dict[Cause, tuple[frozenset[AssetStatus], frozenset[AssetStatus]]] = {
    Cause.EDIT: (_ANY, frozenset({AssetStatus.DRAFT, AssetStatus.IN_REVIEW})),
    Cause.APPROVAL: (_ANY, frozenset({AssetStatus.APPROVED})),
    Cause.CHANGES_REQUESTED: (_ANY, frozenset({AssetStatus.CHANGES_REQUESTED})),
    # An approved asset's versions are frozen, so a render cannot publish onto it.
    Cause.RENDER_PUBLISHED: (_ANY - {AssetStatus.APPROVED},
                             frozenset({AssetStatus.IN_REVIEW})),
}


def sources(cause: Cause, to: AssetStatus) -> list[str]:
    """The statuses `cause` may move an asset from into `to`; refused when it may not."""
    start, targets = MOVES[cause]
    if to not in targets:
        if cause is Cause.EDIT:
            raise InvalidInput("approval and change requests are review decisions",
                               code="status_needs_decision")
        raise InvalidInput(f"{cause} cannot make an asset {to}")
    return sorted(start)
