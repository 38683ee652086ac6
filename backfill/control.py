"""Pause, continue or stop a run from any console, through its ledger document.

`scripts/backfill_control.py` writes `control` on the run's document (for a sharded run,
the run's own document, which every shard reads). Each running task reads that document
every CONTROL_POLL_SECONDS (one read each time: 720 reads an hour per task) and obeys:
pause closes the gate as throttling does, continue opens it, stop ends the run at a clean
point like Ctrl-C (status `interrupted`, exit 130, resumable). A new `pace` (set) is
handed to the run, which applies it (backfill.pace).
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Callable, Mapping
from typing import Any

from backfill.errors import BackfillError
from backfill.ledger import Ledger
from backfill.limits import CONTROL_POLL_SECONDS
from backfill.status import StopRequest
from backfill.throttle import Gate

JOIN_SECONDS = 2.0
PAUSE, CONTINUE, STOP = "pause", "continue", "stop"


class RunControl:
    """A thread that reads the run's control field and obeys it."""

    def __init__(self, ledger: Ledger, run_id: str, gate: Gate, stop: StopRequest,
                 say: Callable[[str], None], poll_seconds: float = CONTROL_POLL_SECONDS,
                 first_look: Mapping[str, Any] | None = None,
                 before_polls: Callable[[], None] | None = None,
                 on_pace: Callable[[Mapping[str, Any]], None] = lambda pace: None) -> None:
        """`first_look`: the run's entry as just read (a resume, a shard: the run may have
        been paused before this task started), obeyed before the first write with no read
        of its own. `before_polls`: what the first poll waits for (the run's entry
        written). `on_pace`: a pace set on the run, once per change (the one standing
        when the task starts included)."""
        self.ledger, self.run_id, self.gate, self.stop = ledger, run_id, gate, stop
        self.say = say
        self.poll_seconds = poll_seconds
        self.first_look = first_look
        self.before_polls = before_polls
        self.on_pace = on_pace
        self._pace_seen: Any = None
        self._done = threading.Event()
        self._thread = threading.Thread(target=self._watch, name="control", daemon=True)

    def obey(self) -> None:
        try:
            entry = self.ledger.get(self.run_id)
        except BackfillError:
            return  # the database is away: the run's own calls say so
        self._obey(entry.data if entry is not None else {})

    def _obey(self, data: Mapping[str, Any]) -> None:
        pace = data.get("pace")
        if isinstance(pace, Mapping) and pace != self._pace_seen:
            self._pace_seen = pace
            self.on_pace(pace)
        control, by = data.get("control"), str(data.get("control_by", "someone"))
        if control == STOP and not self.stop.is_set():
            self.say(f"⏹  Stop requested by {by}: stopping after the batches in flight")
            self.stop.request(f"stopped by {by} (backfill_control.py stop)")
        elif control == PAUSE:
            self.gate.pause(f"paused by {by}")
        else:
            self.gate.pause(None)

    def _watch(self) -> None:
        if self.before_polls is not None:
            with contextlib.suppress(Exception):  # the run says what failed
                self.before_polls()
        while not self._done.wait(self.poll_seconds):
            self.obey()

    def __enter__(self) -> RunControl:
        if self.first_look is not None:
            self._obey(self.first_look)
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._done.set()
        # A read in progress ends within its retry budget; the thread is a daemon and the
        # run's end does not wait for it longer than this.
        self._thread.join(JOIN_SECONDS)
