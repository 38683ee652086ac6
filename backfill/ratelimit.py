"""Write pacing that follows Firestore's ramp-up guidance ("500/50/5").

Start at 500 operations per second and raise the rate by 50% every 5 minutes, up to a
ceiling. Writes are paced evenly (each batch waits its share of a second after the last
one), never let through in bursts after an idle spell. An operator may set a fixed rate
while the run goes on (backfill_control.py set): the ramp-up stops, and writes waiting
for their turn take it again at the new rate. A write waiting for its turn gives it up
when the run is asked to stop (RunInterrupted): a stop is not held back by a slow pace.
"""

from __future__ import annotations

import math
import threading
import time
from collections.abc import Callable
from typing import Any

from backfill.errors import STOPPED_ON_REQUEST, RunInterrupted
from backfill.limits import MIN_WRITES_PER_SECOND as MIN_WRITES_PER_SECOND
from backfill.limits import RAMP_PERIOD_SECONDS as RAMP_PERIOD_SECONDS
from backfill.limits import RAMP_START as RAMP_START

RAMP_FACTOR = 1.5
# The slowest rate that works: a batch of 500 waits at most 5,000 s for its turn (any
# slower and a run would seem dead; 1e-300 overflowed the wait). 0 turns pacing off.
STOP_POLL_SECONDS = 0.1  # how soon a write waiting for its turn sees the run's stop


def workable_rate(writes_per_second: float) -> bool:
    """Whether a write rate (a ceiling, or a rate set live) can work: 0 (unpaced), or a
    finite rate of at least MIN_WRITES_PER_SECOND."""
    return writes_per_second == 0 or (
        MIN_WRITES_PER_SECOND <= writes_per_second < float("inf"))


def rate_shown(writes_per_second: float) -> str:
    """A write rate as the operator reads it."""
    return "unpaced" if writes_per_second <= 0 else f"{writes_per_second:g} writes/s"


def workable_number(value: Any, *, zero: bool = True, low: float | None = None,
                    high: float | None = None, whole: bool = False) -> bool:
    """Whether a pace read back (the ledger, a control) can work: a number (not a bool;
    whole where `whole`), within [low, high]; a rate when no bounds are given (0 only
    where `zero`). An older version, or a hand, may have recorded one that cannot."""
    if isinstance(value, bool) or not isinstance(value, int if whole else int | float):
        return False
    if whole or low is not None or high is not None:
        return (low is None or low <= value) and (high is None or value <= high)
    return workable_rate(value) and (zero or value > 0)


def _steps_to(initial: float, ceiling: float) -> int:
    """How many ramp-up steps take `initial` to `ceiling` (or past it)."""
    if ceiling <= initial:
        return 0
    return math.ceil(math.log(ceiling / initial, RAMP_FACTOR))


class WriteRateLimiter:
    """`ceiling` 0 turns pacing off."""

    def __init__(self, *, initial: float = RAMP_START, ceiling: float = 0.0,
                 clock: Callable[[], float] = time.monotonic,
                 sleep: Callable[[float], None] | None = None,
                 stop: threading.Event | None = None) -> None:
        """`sleep`: how a write waits its turn (a test's fake clock); by default, a wait
        that a new rate (set_rate) ends early, and `stop` (the run's) ends at once."""
        if initial <= 0:
            raise ValueError("the initial rate must be positive")
        self.initial = initial
        self.ceiling = ceiling
        self._clock = clock
        self._sleep = sleep
        self._stop = stop
        self._lock = threading.Lock()
        self._rate_set = threading.Condition(self._lock)
        self._started = clock()
        self._next_free = self._started
        self._changes = 0  # how many times the rate was set: a waiting write re-queues

    @property
    def enabled(self) -> bool:
        return self.ceiling > 0

    def rate(self, now: float | None = None) -> float:
        """Operations per second allowed at `now`."""
        elapsed = (self._clock() if now is None else now) - self._started
        steps = int(max(0.0, elapsed) // RAMP_PERIOD_SECONDS)
        # The steps that can count before the ceiling is reached: a run of days at a low
        # fixed rate does not raise 1.5 to a power no float holds.
        steps = min(steps, _steps_to(self.initial, self.ceiling))
        return min(self.initial * RAMP_FACTOR ** steps, self.ceiling)

    def hold(self, seconds: float) -> None:
        """The run wrote nothing for `seconds` (throttled, paused): the ramp-up takes up
        again at the rate it had, not further on."""
        with self._lock:
            self._started += seconds

    def set_rate(self, writes_per_second: float) -> None:
        """From now on a fixed rate (the ramp-up stops); 0 turns pacing off. Writes
        waiting for their turn take it again at this rate."""
        with self._lock:
            if writes_per_second > 0:
                self.initial = self.ceiling = writes_per_second
            else:
                self.ceiling = 0.0
            self._next_free = self._clock()
            self._changes += 1
            self._rate_set.notify_all()

    def acquire(self, operations: int) -> float:
        """Wait until `operations` writes may be sent; returns the seconds waited. Raises
        RunInterrupted when the run's stop comes first (nothing may be sent then)."""
        waited = 0.0
        while True:
            with self._lock:
                if not self.enabled or operations <= 0:
                    return waited
                now = self._clock()
                start = max(now, self._next_free)
                self._next_free = start + operations / self.rate(start)
                changes = self._changes
            if start > now:
                self._wait(start - now, changes)
                waited += max(0.0, self._clock() - now)
                if self._stop is not None and self._stop.is_set():
                    raise RunInterrupted(STOPPED_ON_REQUEST)
            if changes == self._changes:
                return waited

    def _wait(self, seconds: float, changes: int) -> None:
        if self._sleep is not None:
            self._sleep(seconds)
            return
        # In short spells: a stop is an Event, which cannot wake this condition.
        deadline = time.monotonic() + seconds
        with self._rate_set:
            while self._changes == changes and not (self._stop and self._stop.is_set()):
                left = deadline - time.monotonic()
                if left <= 0:
                    return
                self._rate_set.wait(min(left, STOP_POLL_SECONDS))
