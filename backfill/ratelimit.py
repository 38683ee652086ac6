"""Write pacing that follows Firestore's ramp-up guidance ("500/50/5").

Start at 500 operations per second and raise the rate by 50% every 5 minutes, up to a
ceiling. Writes are paced evenly (each batch waits its share of a second after the last
one), never let through in bursts after an idle spell.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable

RAMP_START = 500.0
RAMP_FACTOR = 1.5
RAMP_PERIOD_SECONDS = 300.0


class WriteRateLimiter:
    """`ceiling` 0 turns pacing off."""

    def __init__(self, *, initial: float = RAMP_START, ceiling: float = 0.0,
                 clock: Callable[[], float] = time.monotonic,
                 sleep: Callable[[float], None] = time.sleep) -> None:
        if initial <= 0:
            raise ValueError("the initial rate must be positive")
        self.initial = initial
        self.ceiling = ceiling
        self._clock = clock
        self._sleep = sleep
        self._lock = threading.Lock()
        self._started = clock()
        self._next_free = self._started

    @property
    def enabled(self) -> bool:
        return self.ceiling > 0

    def rate(self, now: float | None = None) -> float:
        """Operations per second allowed at `now`."""
        elapsed = (self._clock() if now is None else now) - self._started
        ramped = self.initial * RAMP_FACTOR ** int(max(0.0, elapsed) // RAMP_PERIOD_SECONDS)
        return min(ramped, self.ceiling)

    def hold(self, seconds: float) -> None:
        """The run wrote nothing for `seconds` (throttled, paused): the ramp-up takes up
        again at the rate it had, not further on."""
        with self._lock:
            self._started += seconds

    def acquire(self, operations: int) -> float:
        """Wait until `operations` writes may be sent; returns the seconds waited."""
        if not self.enabled or operations <= 0:
            return 0.0
        with self._lock:
            now = self._clock()
            start = max(now, self._next_free)
            self._next_free = start + operations / self.rate(start)
        wait = start - now
        if wait > 0:
            self._sleep(wait)
        return wait
