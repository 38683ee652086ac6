"""How a run in the ledger is shown, in one place: `--list-runs`, `backfill_control.py
status` and `backfill_validation.py --run-id` all show entries through these."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from backfill.clock import utc_now
from backfill.control import STOP
from backfill.lease import LeaseState
from backfill.ledger import LedgerEntry
from backfill.pace import rate_shown
from backfill.ranges import Part
from backfill.shards import share_read
from backfill.stats import RATE_WINDOW
from backfill.status import GateState, RunStatus


def _held(entry: LedgerEntry) -> str | None:
    """While the run is running: throttled or paused, if it is held."""
    state = entry.data.get("state", GateState.RUNNING)
    return str(state) if entry.status == RunStatus.RUNNING and state != GateState.RUNNING \
        else None


def status_of(entry: LedgerEntry) -> str:
    """The status, and while running, whether it is throttled or paused."""
    held = _held(entry)
    return f"{entry.status}/{held}" if held else entry.status


def headline(entry: LedgerEntry) -> str:
    data = entry.data
    where = list(dict(data.get("settings") or {}).get("where") or [])
    subset = f" where {' and '.join(where)}" if where else ""  # a canary's, as typed
    return (f"Run {entry.run_id}: {data.get('mode', data.get('tool'))} of "
            f"{data.get('collection')}{subset}, {data.get('status')}, field "
            f"{data.get('target_field', 'normalized')}, {data.get('environment')}, started "
            f"{data.get('started_at')}")


def task_line(part: LedgerEntry, run_id: str, lease: LeaseState | None) -> str | None:
    """While a run (or shard) is running: its task's heartbeat, by the database's clock,
    or that it is gone (killed without a word: its resume takes its lease over)."""
    if part.status != RunStatus.RUNNING:
        return None
    key = str(part.data["shard"]).split("/")[0] if "shard" in part.data else "0"
    holder = lease.holders.get(key) if lease is not None and lease.run_id == run_id else None
    if holder is None:
        return "gone (it holds no lease: a resume takes over)"
    if holder.stale:
        beat = ("no heartbeat" if holder.beat_age is None
                else f"last heartbeat {holder.beat_age:.0f}s ago")
        return f"gone ({beat}, past {holder.timeout:g}s: a resume takes over)"
    return f"heartbeat {holder.beat_age or 0:.0f}s ago"


def _seconds_held(part: LedgerEntry, name: str, state: GateState) -> float:
    """Time held so far, as recorded, plus the spell going on now (by the database's
    clock: the time of the change, and of the read that found it)."""
    data = part.data
    seconds = float(data.get(name) or 0.0)
    since = data.get("state_since")
    if _held(part) == state and isinstance(since, datetime) and part.read_at is not None:
        seconds += max(0.0, (part.read_at - since).total_seconds())
    return seconds


def stopping_by(part: LedgerEntry, run: dict[str, Any]) -> str | None:
    """While a run (or shard) is running with a stop standing on its run: who stopped it."""
    if part.status != RunStatus.RUNNING or run.get("control") != STOP:
        return None
    return str(run.get("control_by") or "someone")


def where_it_stands(data: dict[str, Any]) -> str:
    """The checkpoint: one ID for one cursor; for parallel reads, how much of the key
    space the parts have read (no single ID says that)."""
    parts = data.get("parts")
    if parts and len(parts) > 1:
        share = share_read([Part.from_dict(p) for p in parts])
        return f"{len(parts)} parts, {100 * share:.0f}% of the ID key space read"
    return f"checkpoint {data.get('checkpoint')}"


def progress_line(part: LedgerEntry, run: dict[str, Any], task: str | None = None) -> str:
    """One run's (or one shard's) progress: who, counts, pace, where it stands, time
    held (the spell going on included), and why it stopped early, if it did; with
    `task`, its task's heartbeat (task_line)."""
    data = part.data
    counts = dict(data.get("counts") or {})
    held = _held(part)
    state = f"{part.status}, {held}" if held else part.status
    if stopping_by(part, run):  # it goes on only to end at a clean point
        state += ", stopping"
    label = f"shard {data['shard']}: " if "shard" in data else ""
    processed = int(counts.get("processed", 0))
    active = float(data.get("active_seconds") or 0.0)
    rate = f", {processed / active:,.1f} items/s" if active > 0 else ""
    alive = f" ({task})" if task else ""
    line = (f"{label}{state} by {data.get('user')}@{data.get('host')}{alive}: "
            f"{processed} processed, {counts.get('updated', 0)} written, "
            f"{counts.get('errors', 0)} errors{rate}; {where_it_stands(data)}; "
            f"throttled {_seconds_held(part, 'throttled_seconds', GateState.THROTTLED):.1f}s "
            f"in {data.get('throttle_spells') or 0} spell(s), paused "
            f"{_seconds_held(part, 'paused_seconds', GateState.PAUSED):.1f}s")
    if data.get("stopped_because"):
        line += f"; stopped because: {data['stopped_because']}"
    return line


def pace_line(data: dict[str, Any]) -> str:
    """The run's pace now: as it started, or as last set (by whom, when)."""
    settings = dict(data.get("settings") or {})
    rate = settings.get("max_writes_per_second")
    initial = settings.get("initial_writes_per_second")
    pace = dict(data.get("pace") or {})
    if "writes_per_second" in pace or not rate or float(initial or rate) >= rate:
        writes = rate_shown(float(rate or 0))
    else:
        writes = f"ramp from {rate_shown(float(initial or rate))} up to {rate_shown(rate)}"
    batches = settings.get("parallel_batches")
    line = f"pace: {writes}, {batches} batches in flight per task"
    if pace:
        line += f" (last set by {pace.get('by')} at {pace.get('at')})"
    return line


def runs_table(entries: list[LedgerEntry]) -> list[str]:
    """--list-runs: a header and a row per run."""
    lines = [f"{'run ID':<38}{'tool':<10}{'environment':<13}{'field':<22}{'who':<24}"
             f"{'started (UTC)':<21}{'status':<13}{'processed':>10}{'written':>9}"
             f"{'errors':>8}"]
    for entry in entries:
        data, counts = entry.data, entry.data.get("counts", {})
        who = f"{data.get('user', '')}@{data.get('host', '')}" if data.get("user") else "sharded"
        lines.append(f"{entry.run_id:<38}{data.get('tool', ''):<10}"
                     f"{data.get('environment', ''):<13}"
                     f"{str(data.get('target_field', 'normalized'))[:21]:<22}{who[:23]:<24}"
                     f"{str(data.get('started_at', ''))[:19]:<21}{status_of(entry):<13}"
                     f"{counts.get('processed', ''):>10}{counts.get('updated', ''):>9}"
                     f"{counts.get('errors', ''):>8}")
    return lines


@dataclass(frozen=True)
class Outlook:
    """How far a run (or a shard) is, and when it will be done at its current pace."""

    processed: int
    total: int | None  # the count it goes through (None: not recorded yet)
    per_second: float | None  # over the last minute; None: not running
    waiting: str | None = None  # throttled (why) or paused (by whom)
    parts: tuple[Outlook, ...] = ()  # a sharded run's: its shards'
    # Items/s the pace in force allows (a fixed rate, set or started with); None: a
    # ramp or unpaced, which the last minute's rate tells.
    paced: float | None = None
    stopping: str | None = None  # a stop stands: by whom (it ends, no ETA)
    # The pace in force began within the last minute (set, or the run went on after a
    # hold): the last minute's rate is mostly of the pace before, or of the hold.
    new_pace: bool = False

    @property
    def eta_rate(self) -> float | None:
        """Items/s the ETA counts with: the last minute's, but no more than the pace in
        force allows (right after a cut, the last minute is still the old pace's); the
        pace in force itself when it began within the last minute (a raise, or the end
        of a pause: the last minute's slow rate says nothing of it)."""
        if self.paced is None:
            return self.per_second
        if self.new_pace or not self.per_second:
            return self.paced
        return min(self.per_second, self.paced)

    @property
    def percent(self) -> float | None:
        if not self.total:
            return None
        return min(100.0, 100.0 * self.processed / self.total)

    @property
    def eta_seconds(self) -> float | None:
        """At the last minute's pace; None when that says nothing (held, no progress). A
        sharded run is done when its slowest shard is."""
        if self.parts:
            etas = [part.eta_seconds for part in self.parts if part.per_second is not None]
            return None if not etas or None in etas else max(e or 0.0 for e in etas)
        rate = self.eta_rate
        if self.total is None or not rate or self.waiting or self.stopping:
            return None
        return max(0, self.total - self.processed) / rate


def _moment(value: Any) -> datetime | None:
    try:
        return datetime.fromisoformat(str(value))
    except ValueError:
        return None


def last_minute_rate(recent: Sequence[dict[str, Any]], now: datetime) -> float:
    """Items/s over the minute before `now`, from the progress the run recorded: from
    its last record at or before the minute's start (else its first) to `now`."""
    points = [(at, int(point.get("processed") or 0)) for point in recent
              if (at := _moment(point.get("at"))) is not None]
    if not points:
        return 0.0
    earlier = [point for point in points if point[0] <= now - RATE_WINDOW]
    since, processed_then = earlier[-1] if earlier else points[0]
    elapsed = (now - since).total_seconds()
    return max(0.0, points[-1][1] - processed_then) / elapsed if elapsed > 0 else 0.0


def fixed_pace(run: dict[str, Any]) -> float | None:
    """The run's write rate in force when it is a fixed one (set, or started with a
    ceiling no higher than its start); None: unpaced, or a ramp."""
    settings = dict(run.get("settings") or {})
    rate, initial = settings.get("max_writes_per_second"), settings.get("initial_writes_per_second")
    if not isinstance(rate, int | float) or rate <= 0:
        return None
    fixed = "writes_per_second" in dict(run.get("pace") or {}) or (
        isinstance(initial, int | float) and initial >= rate)
    return float(rate) if fixed else None


def pace_began_within_window(data: dict[str, Any], run: dict[str, Any],
                             now: datetime) -> bool:
    """Whether the pace a part goes at now began within the window its recent rate is
    measured over: the run's pace set then, or the part going on after a hold then
    (by the database's clock: when it went on)."""
    window_start = now - RATE_WINDOW
    set_at = _moment(dict(run.get("pace") or {}).get("at"))
    since = data.get("state_since")
    went_on = (since if data.get("state", GateState.RUNNING) == GateState.RUNNING
               and isinstance(since, datetime) else None)
    return any(moment is not None and moment > window_start for moment in (set_at, went_on))


def _paced_items(data: dict[str, Any], run: dict[str, Any]) -> float | None:
    """Items/s a part may go through at the run's fixed pace (its share of it, for a
    shard): each item costs the writes its items so far have cost."""
    rate = fixed_pace(run)
    if rate is None:
        return None
    counts = dict(data.get("counts") or {})
    processed, written = int(counts.get("processed", 0)), int(counts.get("updated", 0))
    if processed and not written:
        return None  # nothing written so far: the pace holds nothing back
    per_item = written / processed if processed else 1.0
    return rate / int(run.get("shard_count") or 1) / per_item


def outlook_of(part: LedgerEntry, run: dict[str, Any] | None = None) -> Outlook:
    """`run`: the run's own entry (a shard's run), which holds its pace and its control;
    by default the part's own."""
    data = part.data
    run = data if run is None else run
    processed = int(dict(data.get("counts") or {}).get("processed", 0))
    total = data.get("total")
    total = int(total) if isinstance(total, int) else None
    if part.status != RunStatus.RUNNING:
        return Outlook(processed, total, None)
    held = _held(part)
    waiting, why = None, str(data.get("held_because") or "")
    if held is not None:  # a pause's reason says it: "paused by ops@host"
        waiting = why if why.startswith(held) else f"{held}: {why}" if why else held
    now = part.read_at or utc_now()
    rate = last_minute_rate(list(data.get("recent") or []), now)
    return Outlook(processed, total, rate, waiting, paced=_paced_items(data, run),
                   stopping=stopping_by(part, run),
                   new_pace=pace_began_within_window(data, run, now))


def whole_run(outlooks: Sequence[Outlook]) -> Outlook:
    """A sharded run's outlook: the shards' sums."""
    known = [o for o in outlooks if o.total is not None]
    running = [o for o in outlooks if o.per_second is not None]
    waiting = sorted({o.waiting for o in running if o.waiting})
    rate = sum(o.per_second or 0.0 for o in running) if running else None
    stopping = next((o.stopping for o in running if o.stopping), None)
    return Outlook(sum(o.processed for o in outlooks),
                   sum(o.total or 0 for o in known) if known else None, rate,
                   "; ".join(waiting) or None, tuple(outlooks), stopping=stopping)


def duration_shown(seconds: float) -> str:
    whole = round(seconds)
    if whole < 60:
        return f"{whole}s"
    if whole < 3600:
        return f"{whole // 60}m{whole % 60:02d}s"
    return f"{whole // 3600}h{whole % 3600 // 60:02d}m"


def outlook_line(outlook: Outlook) -> str:
    """Done so far of the count; while running: the last minute's pace, the ETA at that
    pace (or at the pace in force, when that is slower or began within the minute:
    Outlook.eta_rate), and what the run waits on."""
    percent = outlook.percent
    line = (f"{percent:.1f}% of {outlook.total:,}" if percent is not None and outlook.total
            else f"{outlook.processed:,} processed (no count recorded yet)")
    if outlook.per_second is None:
        return line
    line += f"; {outlook.per_second:,.1f} items/s over the last minute"
    eta = outlook.eta_seconds
    if outlook.stopping:
        line += (f"; stopping: a stop by {outlook.stopping} stands, it ends after the "
                 "batches in flight (no ETA)")
    elif outlook.waiting:
        line += f"; waiting on: {outlook.waiting} (no ETA while held)"
    elif eta is not None:
        line += f"; ETA {duration_shown(eta)} at this pace"
    else:
        line += "; no ETA yet (nothing done in the last minute)"
    return line
