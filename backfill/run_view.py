"""How a run in the ledger is shown, in one place: `--list-runs`, `backfill_control.py
status` and `backfill_validation.py --run-id` all show entries through these."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from backfill.lease import LeaseState
from backfill.ledger import LedgerEntry
from backfill.stats import utc_now
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
    return (f"Run {entry.run_id}: {data.get('mode', data.get('tool'))} of "
            f"{data.get('collection')}, {data.get('status')}, field "
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


def progress_line(part: LedgerEntry, run: dict[str, Any], task: str | None = None) -> str:
    """One run's (or one shard's) progress: who, counts, pace, checkpoint, time held, and
    why it stopped early, if it did; with `task`, its task's heartbeat (task_line)."""
    data = part.data
    counts = dict(data.get("counts") or {})
    held = _held(part)
    state = f"{part.status}, {held}" if held else part.status
    label = f"shard {data['shard']}: " if "shard" in data else ""
    started = data.get("started_at") or run.get("started_at")
    rate = ""
    try:
        end = data.get("finished_at") or data.get("updated_at")
        seconds = ((datetime.fromisoformat(str(end)) if end else utc_now())
                   - datetime.fromisoformat(str(started))).total_seconds()
        rate = f", {int(counts.get('processed', 0)) / seconds:,.1f} items/s" if seconds > 0 \
            else ""
    except (TypeError, ValueError):
        pass
    alive = f" ({task})" if task else ""
    line = (f"{label}{state} by {data.get('user')}@{data.get('host')}{alive}: "
            f"{counts.get('processed', 0)} processed, {counts.get('updated', 0)} written, "
            f"{counts.get('errors', 0)} errors{rate}; checkpoint {data.get('checkpoint')}; "
            f"throttled {float(data.get('throttled_seconds') or 0):.1f}s in "
            f"{data.get('throttle_spells') or 0} spell(s), paused "
            f"{float(data.get('paused_seconds') or 0):.1f}s")
    if data.get("stopped_because"):
        line += f"; stopped because: {data['stopped_because']}"
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
