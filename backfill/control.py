"""The control protocol, in one place: pause, continue, stop or set the pace of a run from
any console, through its ledger document; what each means for a running task; how a task
obeys; and how the control standing on a run is shown.

`scripts/backfill_control.py` (backfill.commands.control, a thin command over this) writes
`control` on the run's document (for a sharded run, the run's own document, which every
shard reads). Each running task reads that document every CONTROL_POLL_SECONDS (one read
each time: 720 reads an hour per task) and obeys: pause closes the gate as throttling does,
continue opens it, stop ends the run at a clean point like Ctrl-C (status `interrupted`,
exit 130, resumable). A new pace (set) is handed to the run, which applies it
(backfill.pace). A task started again obeys what stands (standing_stop, first_look).

Adding a command: its meaning here (COMMANDS, _REQUESTED, _RECORDED, RunControl._obey),
its word in backfill.commands.control, and a test.
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Callable

from backfill.errors import BackfillError, ConfigurationError
from backfill.ledger import Ledger, Pace, RunEntry
from backfill.limits import CONTROL_POLL_SECONDS
from backfill.ratelimit import rate_shown
from backfill.status import UNFINISHED, RunStatus, StopRequest
from backfill.throttle import Gate

# When a running run's tasks see a control or a pace: at their next control poll (a run
# started with --control-poll-seconds polls at that, which is not recorded).
WITHIN_POLL = f"its control poll ({CONTROL_POLL_SECONDS:g} s by default)"

JOIN_SECONDS = 2.0
PAUSE, CONTINUE, STOP = "pause", "continue", "stop"
SET = "set"  # a new pace: not a control standing on the run, a change of its settings
COMMANDS = {"pause": PAUSE, "continue": CONTINUE, "stop": STOP}
# What a control can still act on: a run (or a sharded run) whose tasks may be running.
CONTROLLABLE = (RunStatus.RUNNING, RunStatus.SHARDED)

# What a command means for a run whose tasks are running...
_REQUESTED = {
    PAUSE: "pause requested: nothing new is read or written until `continue`",
    CONTINUE: "continue requested: it goes on where it was",
    STOP: "stop requested: it ends at a clean point, resumable (status `interrupted`)",
}
# ... and for one whose tasks are not (interrupted, failed): what a task started again does.
_RECORDED = {
    PAUSE: "paused: a task that starts it again waits until `continue`",
    CONTINUE: "{standing} cleared: a task that starts it again (--resume, or the engine's "
              "retry) goes on",
    STOP: "stopped: a task the engine starts again writes nothing and ends (exit 0); an "
          "operator's --resume clears the stop",
}


def request(ledger: Ledger, entry: RunEntry, action: str) -> str:
    """Put the control `action` (pause, continue, stop) on the run; returns what it means,
    said as a line."""
    standing = entry.control
    if entry.status not in (*UNFINISHED, *CONTROLLABLE):
        raise ConfigurationError(f"run {entry.run_id} is {entry.status}: there is nothing to "
                                 f"{action}")
    if action == CONTINUE and entry.status not in CONTROLLABLE and \
            standing not in (PAUSE, STOP):
        raise ConfigurationError(
            f"run {entry.run_id} is {entry.status}, with no pause or stop standing: there is "
            "nothing to continue (resume it with --resume)")
    ledger.set_control(entry.run_id, COMMANDS[action])
    if entry.status in CONTROLLABLE:
        return f"Run {entry.run_id}: {_REQUESTED[action]}. Every task obeys within {WITHIN_POLL}."
    what = _RECORDED[action].format(standing=standing)
    return f"Run {entry.run_id} ({entry.status}): {what}."


def set_pace(ledger: Ledger, entry: RunEntry, writes_per_second: float | None,
             parallel_batches: int | None) -> str:
    """A running run applies the pace within a control poll; an unfinished one that is
    not running (interrupted, failed) has it recorded, and its resume carries it on: how
    an operator changes the pace a run resumes with. Returns what was set, as a line."""
    if entry.status not in (*CONTROLLABLE, *UNFINISHED):
        raise ConfigurationError(
            f"run {entry.run_id} is {entry.status}, not running: a pace is set on a running "
            "run (a resume carries on the pace it had)")
    ledger.set_pace(entry.run_id, writes_per_second, parallel_batches)
    what = []
    if writes_per_second is not None:
        what.append(f"write rate {rate_shown(writes_per_second)}"
                    + (" (no ramp-up from now on)" if writes_per_second > 0 else ""))
        if entry.sharded and writes_per_second > 0:
            what[-1] += f", shared by its {entry.shard_count} shards"
    if parallel_batches is not None:
        what.append(f"{parallel_batches} batches in flight per task")
    if entry.status in CONTROLLABLE:
        return (f"Run {entry.run_id}: pace set: {', '.join(what)}. Every task applies it "
                f"within {WITHIN_POLL}.")
    return (f"Run {entry.run_id} ({entry.status}): pace set: {', '.join(what)}. Its "
            "resume carries it on.")


def standing_stop(entry: RunEntry | None) -> str | None:
    """Who stopped the run, when a stop stands on it (a task started again obeys it)."""
    if entry is None or entry.control != STOP:
        return None
    return entry.control_by or "someone"


# --- how the control is shown ---------------------------------------------------------


def control_line(entry: RunEntry) -> str | None:
    """The control standing on the run, by whom and when; None when none stands."""
    if not entry.control:
        return None
    return f"control: {entry.control} (by {entry.control_by} at {entry.control_at})"


def stopping_by(part: RunEntry, run: RunEntry) -> str | None:
    """While a run (or shard) is running with a stop standing on its run: who stopped it."""
    if part.status != RunStatus.RUNNING:
        return None
    return standing_stop(run)


def fixed_pace(run: RunEntry) -> float | None:
    """The run's write rate in force when it is a fixed one (set, or started with a
    ceiling no higher than its start); None: unpaced, or a ramp."""
    rate = run.settings.get("max_writes_per_second")
    initial = run.settings.get("initial_writes_per_second")
    if not isinstance(rate, int | float) or rate <= 0:
        return None
    fixed = (run.pace is not None and run.pace.sets_rate) or (
        isinstance(initial, int | float) and initial >= rate)
    return float(rate) if fixed else None


def pace_line(run: RunEntry) -> str:
    """The run's pace now: as it started, or as last set (by whom, when)."""
    rate = run.settings.get("max_writes_per_second")
    initial = run.settings.get("initial_writes_per_second")
    pace = run.pace
    if (pace is not None and pace.sets_rate) or not rate or float(initial or rate) >= rate:
        writes = rate_shown(float(rate or 0))
    else:
        writes = f"ramp from {rate_shown(float(initial or rate))} up to {rate_shown(rate)}"
    batches = run.settings.get("parallel_batches")
    line = f"pace: {writes}, {batches} batches in flight per task"
    if pace is not None:
        line += f" (last set by {pace.by} at {pace.at})"
    return line


# --- how a task obeys -----------------------------------------------------------------


class RunControl:
    """A thread that reads the run's control field and obeys it."""

    def __init__(self, ledger: Ledger, run_id: str, gate: Gate, stop: StopRequest,
                 say: Callable[[str], None], poll_seconds: float = CONTROL_POLL_SECONDS,
                 first_look: RunEntry | None = None,
                 before_polls: Callable[[], None] | None = None,
                 on_pace: Callable[[Pace], None] = lambda pace: None) -> None:
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
        self._pace_seen: Pace | None = None
        self._done = threading.Event()
        self._thread = threading.Thread(target=self._watch, name="control", daemon=True)

    def obey(self) -> None:
        try:
            entry = self.ledger.get(self.run_id)
        except BackfillError:
            return  # the database is away: the run's own calls say so
        self._obey(entry if entry is not None else RunEntry.parse({}))

    def _obey(self, entry: RunEntry) -> None:
        pace = entry.pace
        if pace is not None and pace != self._pace_seen:
            self._pace_seen = pace
            self.on_pace(pace)
        control, by = entry.control, entry.control_by or "someone"
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
