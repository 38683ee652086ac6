"""The gate in front of every new read and write: closed while the app's backend is
unhealthy (throttling) or while an operator paused the run (backfill.control).

Health: each --throttle-url is probed with a GET every interval. Unhealthy is a
connection error, a status other than 2xx, or a whole answer (status, headers, body) that
takes longer than the latency limit, however its bytes trickle in. The gate closes at
the first unhealthy probe and opens again after HEALTHY_PROBES_TO_REOPEN healthy ones in
a row. Batches already in flight finish; the write pacing does not ramp up while the gate
is closed. Standard library HTTP only.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from backfill.errors import BackfillError, ExitCode
from backfill.health_url import HealthUrl, call
from backfill.ratelimit import STOP_POLL_SECONDS, WriteRateLimiter
from backfill.status import GateState

HEALTHY_PROBES_TO_REOPEN = 3


class ThrottledTooLong(BackfillError):
    """One throttle spell lasted longer than --max-throttle-seconds."""

    exit_code = ExitCode.FATAL


@dataclass(frozen=True)
class HealthCheck:
    urls: Sequence[HealthUrl]  # checked: backfill.health_url
    interval: float = 2.0
    max_latency_ms: float = 1000.0
    # Per URL, the probe still waiting for its answer: one at a time, however slowly an
    # endpoint trickles its bytes in.
    _waiting: dict[HealthUrl, threading.Thread] = field(default_factory=dict, compare=False,
                                                  repr=False)

    def probe(self, url: HealthUrl, stop: threading.Event | None = None) -> str | None:
        """Why `url` is unhealthy now, or None when it is healthy (or when `stop`, the
        run's, comes first: a stopping run waits for no answer). The whole answer
        (status, headers, body) must come within the latency limit."""
        limit = self.max_latency_ms / 1000
        earlier = self._waiting.get(url)
        if earlier is not None and earlier.is_alive():
            return f"{url.shown} has not answered the probe before this one"
        answer: list[str | None] = []
        started = time.monotonic()
        worker = threading.Thread(target=lambda: answer.append(self._ask(url, limit)),
                                  name="health-probe", daemon=True)
        self._waiting[url] = worker
        worker.start()
        while worker.is_alive() and time.monotonic() - started < limit:
            if stop is not None and stop.is_set():
                return None
            worker.join(min(STOP_POLL_SECONDS, max(0.0, limit - (time.monotonic() - started))))
        if not answer:
            return (f"{url.shown} did not answer within {self.max_latency_ms:.0f} ms "
                    f"(--throttle-max-latency-ms)")
        if answer[0] is not None:
            return answer[0]
        latency = (time.monotonic() - started) * 1000
        if latency > self.max_latency_ms:
            return (f"{url.shown} answered in {latency:.0f} ms "
                    f"(over {self.max_latency_ms:.0f} ms)")
        return None

    @staticmethod
    def _ask(url: HealthUrl, limit: float) -> str | None:
        problem = call(url.url, url.authorization, timeout=max(1.0, 2 * limit))
        return None if problem is None else f"{url.shown} {problem}"

    def unhealthy(self, stop: threading.Event | None = None) -> str | None:
        for url in self.urls:
            reason = self.probe(url, stop)
            if reason is not None:
                return reason
        return None


class Gate:
    """Open unless throttled or paused. Counts the time spent closed, per cause."""

    def __init__(self, *, max_throttle_seconds: float = 1800.0,
                 limiter: WriteRateLimiter | None = None,
                 on_change: Callable[[GateState, str | None], None] = lambda state, why: None,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.max_throttle_seconds = max_throttle_seconds
        self.limiter = limiter
        self.on_change = on_change
        self.clock = clock
        self._changed = threading.Condition()
        self.throttled_because: str | None = None
        self.paused_by: str | None = None
        self._closed_since: float | None = None
        self._spell_since: float | None = None
        self._pause_since: float | None = None
        self.throttled_seconds = 0.0
        self.throttle_spells = 0
        self.paused_seconds = 0.0

    @property
    def state(self) -> GateState:
        if self.paused_by is not None:
            return GateState.PAUSED
        return GateState.THROTTLED if self.throttled_because is not None else GateState.RUNNING

    def _update(self, throttled: str | None, paused: str | None) -> None:
        with self._changed:
            now = self.clock()
            before = self.state
            if (self.throttled_because is None) != (throttled is None):
                if throttled is not None:
                    self.throttle_spells += 1
                    self._spell_since = now
                elif self._spell_since is not None:
                    self.throttled_seconds += now - self._spell_since
                    self._spell_since = None
            if (self.paused_by is None) != (paused is None):
                if paused is not None:
                    self._pause_since = now
                elif self._pause_since is not None:
                    self.paused_seconds += now - self._pause_since
                    self._pause_since = None
            self.throttled_because, self.paused_by = throttled, paused
            closed = throttled is not None or paused is not None
            if closed and self._closed_since is None:
                self._closed_since = now
            elif not closed and self._closed_since is not None:
                if self.limiter is not None:  # the ramp-up resumes where it was
                    self.limiter.hold(now - self._closed_since)
                self._closed_since = None
            self._changed.notify_all()
            after = self.state
        if after != before:
            self.on_change(after, self.paused_by or self.throttled_because)

    def throttle(self, reason: str | None) -> None:
        self._update(reason, self.paused_by)

    def pause(self, by: str | None) -> None:
        self._update(self.throttled_because, by)

    def wait(self, stop: threading.Event) -> None:
        """Block while the gate is closed (or until `stop`); raise ThrottledTooLong when a
        throttle spell outlasts the limit."""
        with self._changed:
            while (self.throttled_because or self.paused_by) and not stop.is_set():
                if self._spell_since is not None and \
                        self.clock() - self._spell_since > self.max_throttle_seconds:
                    raise ThrottledTooLong(
                        f"throttled for more than {self.max_throttle_seconds:.0f}s "
                        f"(--max-throttle-seconds): {self.throttled_because}")
                self._changed.wait(0.2)

    def totals(self) -> tuple[float, int, float]:
        """Throttled seconds, throttle spells, paused seconds, the current spell included."""
        with self._changed:
            now = self.clock()
            throttled = self.throttled_seconds + (
                now - self._spell_since if self._spell_since is not None else 0.0)
            paused = self.paused_seconds + (
                now - self._pause_since if self._pause_since is not None else 0.0)
            return throttled, self.throttle_spells, paused


class HealthWatch:
    """Probes the health check every interval in a thread, and throttles the gate."""

    def __init__(self, check: HealthCheck, gate: Gate,
                 stop: threading.Event | None = None) -> None:
        """`stop`: the run's; a probe in progress then ends without a verdict."""
        self.check, self.gate, self.stop = check, gate, stop
        self._done = threading.Event()
        self._thread = threading.Thread(target=self._watch, name="health", daemon=True)
        self._healthy_in_a_row = 0

    def probe_once(self) -> None:
        reason = self.check.unhealthy(self.stop)
        if self.stop is not None and self.stop.is_set():
            return  # no verdict: the run is stopping
        if reason is not None:
            self._healthy_in_a_row = 0
            self.gate.throttle(reason)
            return
        self._healthy_in_a_row += 1
        if self.gate.throttled_because is not None and \
                self._healthy_in_a_row >= HEALTHY_PROBES_TO_REOPEN:
            self.gate.throttle(None)

    def _watch(self) -> None:
        while not self._done.wait(self.check.interval):
            self.probe_once()

    def __enter__(self) -> HealthWatch:
        self.probe_once()  # an unhealthy backend at the start: no first write either
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._done.set()
        # A probe in progress ends within its latency limit; the thread is a daemon.
        self._thread.join(self.check.max_latency_ms / 1000 + 1.0)
