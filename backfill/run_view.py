"""How a run in the ledger is shown, in one place: `--list-runs`, `backfill_control.py
status` and `backfill_validation.py --run-id` all show entries through these."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from backfill.clock import utc_now
from backfill.control import fixed_pace, stopping_by
from backfill.lease import LeaseState
from backfill.ledger import RunEntry
from backfill.ranges import Part
from backfill.shards import share_read
from backfill.stats import RATE_WINDOW
from backfill.status import GateState, RunStatus


def _held(entry: RunEntry) -> str | None:
    """While the run is running: throttled or paused, if it is held."""
    state = entry.state
    return state if entry.status == RunStatus.RUNNING and state != GateState.RUNNING \
        else None


def status_of(entry: RunEntry) -> str:
    """The status, and while running, whether it is throttled or paused."""
    held = _held(entry)
    return f"{entry.status}/{held}" if held else entry.status


def headline(entry: RunEntry) -> str:
    where = entry.where
    subset = f" where {' and '.join(where)}" if where else ""  # a canary's, as typed
    field = f", field {entry.target_field}" if entry.target_field else ""  # a task: its mode
    return (f"Run {entry.run_id}: {entry.mode} of {entry.collection}{subset}, "
            f"{entry.status}{field}, {entry.environment}, started {entry.started_at}")


def task_line(part: RunEntry, run_id: str, lease: LeaseState | None) -> str | None:
    """While a run (or shard) is running: its task's heartbeat, by the database's clock,
    or that it is gone (killed without a word: its resume takes its lease over)."""
    if part.status != RunStatus.RUNNING:
        return None
    key = part.shard.split("/")[0] if part.shard is not None else "0"
    holder = lease.holders.get(key) if lease is not None and lease.run_id == run_id else None
    if holder is None:
        return "gone (it holds no lease: a resume takes over)"
    if holder.stale:
        beat = ("no heartbeat" if holder.beat_age is None
                else f"last heartbeat {holder.beat_age:.0f}s ago")
        return f"gone ({beat}, past {holder.timeout:g}s: a resume takes over)"
    return f"heartbeat {holder.beat_age or 0:.0f}s ago"


def _seconds_held(part: RunEntry, state: GateState) -> float:
    """Time held so far, as recorded, plus the spell going on now (by the database's
    clock: the time of the change, and of the read that found it)."""
    seconds = part.paused_seconds if state == GateState.PAUSED else part.throttled_seconds
    since = part.state_since
    if _held(part) == state and since is not None and part.read_at is not None:
        seconds += max(0.0, (part.read_at - since).total_seconds())
    return seconds


def where_it_stands(entry: RunEntry) -> str:
    """The checkpoint: one ID for one cursor; for parallel reads, how much of the key
    space the parts have read (no single ID says that)."""
    parts = entry.parts
    if parts and len(parts) > 1:
        share = share_read([Part.from_dict(p) for p in parts])
        return f"{len(parts)} parts, {100 * share:.0f}% of the ID key space read"
    return f"checkpoint {entry.checkpoint}"


def progress_line(part: RunEntry, run: RunEntry, task: str | None = None) -> str:
    """One run's (or one shard's) progress: who, counts, pace, where it stands, time
    held (the spell going on included), and why it stopped early, if it did; with
    `task`, its task's heartbeat (task_line)."""
    counts = part.counts
    held = _held(part)
    state = f"{part.status}, {held}" if held else part.status
    if stopping_by(part, run):  # it goes on only to end at a clean point
        state += ", stopping"
    label = f"shard {part.shard}: " if part.shard is not None else ""
    processed = part.count("processed")
    active = part.active_seconds
    rate = f", {processed / active:,.1f} items/s" if active > 0 else ""
    alive = f" ({task})" if task else ""
    line = (f"{label}{state} by {part.user}@{part.host}{alive}: "
            f"{processed} processed, {counts.get('updated', 0)} written, "
            f"{counts.get('errors', 0)} errors{rate}; {where_it_stands(part)}; "
            f"throttled {_seconds_held(part, GateState.THROTTLED):.1f}s "
            f"in {part.throttle_spells} spell(s), paused "
            f"{_seconds_held(part, GateState.PAUSED):.1f}s")
    if part.stopped_because:
        line += f"; stopped because: {part.stopped_because}"
    return line


def runs_table(entries: list[RunEntry]) -> list[str]:
    """--list-runs: a header and a row per run."""
    lines = [f"{'run ID':<38}{'tool':<10}{'environment':<13}{'field':<22}{'who':<24}"
             f"{'started (UTC)':<21}{'status':<13}{'processed':>10}{'written':>9}"
             f"{'errors':>8}"]
    for entry in entries:
        counts = entry.counts
        who = f"{entry.user}@{entry.host or ''}" if entry.user else "sharded"
        lines.append(f"{entry.run_id:<38}{entry.tool or '':<10}"
                     f"{entry.environment or '':<13}"
                     f"{(entry.target_field or entry.writes)[:21]:<22}{who[:23]:<24}"
                     f"{(entry.started_at or '')[:19]:<21}{status_of(entry):<13}"
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


def pace_began_within_window(part: RunEntry, run: RunEntry, now: datetime) -> bool:
    """Whether the pace a part goes at now began within the window its recent rate is
    measured over: the run's pace set then, or the part going on after a hold then
    (by the database's clock: when it went on)."""
    window_start = now - RATE_WINDOW
    set_at = _moment(run.pace.at) if run.pace is not None else None
    went_on = part.state_since if part.state == GateState.RUNNING else None
    return any(moment is not None and moment > window_start for moment in (set_at, went_on))


def _paced_items(part: RunEntry, run: RunEntry) -> float | None:
    """Items/s a part may go through at the run's fixed pace (its share of it, for a
    shard): each item costs the writes its items so far have cost."""
    rate = fixed_pace(run)
    if rate is None:
        return None
    processed, written = part.count("processed"), part.count("updated")
    if processed and not written:
        return None  # nothing written so far: the pace holds nothing back
    per_item = written / processed if processed else 1.0
    return rate / (run.shard_count or 1) / per_item


def outlook_of(part: RunEntry, run: RunEntry | None = None) -> Outlook:
    """`run`: the run's own entry (a shard's run), which holds its pace and its control;
    by default the part's own."""
    run = part if run is None else run
    processed, total = part.count("processed"), part.total
    if part.status != RunStatus.RUNNING:
        return Outlook(processed, total, None)
    held = _held(part)
    waiting, why = None, part.held_because or ""
    if held is not None:  # a pause's reason says it: "paused by ops@host"
        waiting = why if why.startswith(held) else f"{held}: {why}" if why else held
    now = part.read_at or utc_now()
    rate = last_minute_rate(part.recent, now)
    return Outlook(processed, total, rate, waiting, paced=_paced_items(part, run),
                   stopping=stopping_by(part, run),
                   new_pace=pace_began_within_window(part, run, now))


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
