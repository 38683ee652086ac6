"""A run's pace, which an operator may change while it goes on: its write rate and how
many batches it has in flight (`backfill_control.py set`).

The control (backfill.control) writes the new values on the run's ledger entry, with who
and when, and in the run's settings, so that a resume carries them on. Every task reads
them with its control poll and applies them here: a sharded run's
tasks each take their share of the rate, as they do at the start.
"""

from __future__ import annotations

import threading
from typing import TYPE_CHECKING

from backfill.limits import MAX_PARALLEL_BATCHES
from backfill.ratelimit import (
    MIN_WRITES_PER_SECOND,
    WriteRateLimiter,
    rate_shown,
    workable_number,
)

if TYPE_CHECKING:
    from backfill.ledger import Pace


class LivePace:
    """The pace one task applies: `share` tasks share the run's write rate."""

    def __init__(self, limiter: WriteRateLimiter, parallel_batches: int, share: int) -> None:
        self.limiter, self.share = limiter, share
        self._parallel_batches = parallel_batches
        self._lock = threading.Lock()

    def batches_in_flight(self) -> int:
        with self._lock:
            return self._parallel_batches

    def apply(self, pace: Pace) -> str | None:
        """Apply the values of a `pace` as the control wrote it; returns what is now
        applied, said as a line (None: nothing in it to apply)."""
        said: list[str] = []
        given = pace.writes_per_second
        rate = float(given) if workable_number(given) else None
        if given is not None and rate is None:
            said.append(f"write rate {given!r} ignored (it cannot work: 0, unpaced, or at "
                        f"least {MIN_WRITES_PER_SECOND:g} writes/s)")
        if rate is not None:
            self.limiter.set_rate(rate / self.share)
            mine = f" (this task's share: {rate_shown(rate / self.share)})" \
                if self.share > 1 and rate > 0 else ""
            said.append(f"{rate_shown(rate)}{mine}")
        batches = pace.parallel_batches if workable_number(
            pace.parallel_batches, whole=True, low=1, high=MAX_PARALLEL_BATCHES) else None
        if batches is not None:
            with self._lock:
                self._parallel_batches = batches
            said.append(f"{batches} batch{'es' if batches != 1 else ''} in flight")
        return ", ".join(said) or None
