"""How many tasks a round leases: as many as keep a round near its target length.

What a round writes grows with what it leases: the leases now, their starts and ends in
later rounds. A fixed number that fills a farm quickly on MongoDB makes rounds of seconds
on a slower database (the embedded one writes a task in about 200 us at a million tasks),
and a long round delays all else the loop does: heartbeats, steering, cancellations. So
each round's limit follows the length of the last: it shrinks in proportion when a round
ran long, and at most doubles when one ran short, up to the configured most.
"""

from __future__ import annotations

from dataclasses import dataclass, field

LEAST = 50  # a round always leases this many, however slow: the farm never stops filling


@dataclass
class LeasePacer:
    most: int
    target_s: float
    limit: int = field(init=False)

    def __post_init__(self) -> None:
        self.limit = self.most

    def took(self, seconds: float) -> None:
        """The last round's length."""
        scaled = self.limit * self.target_s / max(seconds, 1e-6)
        self.limit = int(max(min(LEAST, self.most), min(self.most, 2 * self.limit, scaled)))
