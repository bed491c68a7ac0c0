"""How many tasks a round leases: as many as keep its reports and leases near a target.

What a round writes grows with what it leases: the leases now, their starts and ends in
later rounds. A fixed number that fills a farm quickly on MongoDB makes rounds of seconds
on a slower database (the embedded one writes a task in about 200 us at a million tasks),
and a long round delays all else the loop does: heartbeats, steering, cancellations. So
each round's limit follows the time the last one spent applying reports and writing leases
(the rest of a round has budgets of its own): it shrinks in proportion when that ran long,
and grows by a quarter at most when it ran short (a sudden jump of leases would make the
very spike it avoids), up to the configured most.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field

LEAST = 50  # a round always leases this many, however slow: the farm never stops filling


@dataclass
class LeasePacer:
    most: int
    target_s: float
    limit: int = field(init=False)
    spent: float = 0.0  # this round's time on reports and leases so far

    def __post_init__(self) -> None:
        # From a few rounds' worth: the first rounds of a dispatcher that starts on a
        # backlog are its longest (every lease, then every start), and a fast database
        # grows the limit to the most within a few rounds.
        self.limit = min(self.most, 4 * LEAST)

    @contextmanager
    def paced(self) -> Iterator[None]:
        """Counts the time of the work inside towards this round's."""
        began = time.perf_counter()
        try:
            yield
        finally:
            self.spent += time.perf_counter() - began

    def round_over(self) -> None:
        """Sizes the next round from what this one spent."""
        scaled = self.limit * self.target_s / max(self.spent, 1e-6)
        self.limit = int(max(min(LEAST, self.most),
                             min(self.most, self.limit * 1.25, scaled)))
        self.spent = 0.0
