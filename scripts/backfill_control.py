#!/usr/bin/env python3
"""Pause, continue or stop a running backfill or rollback from any console, or show it.

    python3 scripts/backfill_control.py status [RUN_ID]
    python3 scripts/backfill_control.py pause [RUN_ID]
    python3 scripts/backfill_control.py continue [RUN_ID]
    python3 scripts/backfill_control.py stop [RUN_ID]

RUN_ID defaults to the newest running run of the collection. Every task of the run (all
shards of a sharded run) obeys within 10 seconds. Exit codes: 0 done, 2 usage or
configuration (no such run), 3 fatal.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from datetime import datetime

import click

from backfill.cli import (
    COMMAND_SETTINGS,
    FiniteFloat,
    ToolCommand,
    connect,
    run_boundary,
    target_options,
    version_option,
)
from backfill.control import CONTINUE, PAUSE, STOP
from backfill.errors import ConfigurationError, ExitCode
from backfill.ledger import DEFAULT_LEDGER_COLLECTION, Ledger, LedgerEntry
from backfill.names import check_id
from backfill.options import RunOptions
from backfill.stats import utc_now
from backfill.status import CONTROLLABLE, GateState, RunStatus

ACTIONS = {"pause": PAUSE, "continue": CONTINUE, "stop": STOP}


@click.command(cls=ToolCommand, context_settings=COMMAND_SETTINGS)
@click.argument("action", type=click.Choice(["status", *ACTIONS]))
@click.argument("run_id", required=False)
@target_options
@click.option("--ledger-collection", default=DEFAULT_LEDGER_COLLECTION, show_default=True,
              help="Where runs record themselves.")
@click.option("--max-retry-seconds", type=FiniteFloat(0), default=30.0,
              show_default=True, help="How long to keep retrying a transient database error.")
@version_option
@run_boundary
def main(action: str, run_id: str | None, ledger_collection: str, **options: Any) -> int:
    """Pause, continue, stop or show a run (default: the newest running run)."""
    run = RunOptions(**options, batch_size=500, output_dir=Path("."), quiet=True,
                     as_json=False, ledger_collection=ledger_collection)
    if run_id is not None:
        check_id(run_id, "RUN_ID")
    target, client = connect(run)
    ledger = Ledger(client, ledger_collection, run.policy)
    entry = find_run(ledger, target.collection, run_id)
    if action == "status":
        show(ledger, entry)
        return ExitCode.OK
    if entry.status not in CONTROLLABLE:
        raise ConfigurationError(f"run {entry.run_id} is {entry.status}: there is nothing to "
                                 f"{action}")
    ledger.set_control(entry.run_id, ACTIONS[action])
    what = {"pause": "pause requested: nothing new is read or written until `continue`",
            "continue": "continue requested: it goes on where it was",
            "stop": "stop requested: it ends at a clean point, resumable (status "
                    "`interrupted`)"}[action]
    click.echo(f"Run {entry.run_id}: {what}. Every task obeys within 10 seconds.")
    return ExitCode.OK


def find_run(ledger: Ledger, collection: str, run_id: str | None) -> LedgerEntry:
    if run_id is not None:
        entry = ledger.get(run_id)
        if entry is None:
            raise ConfigurationError(f"no run {run_id!r} in the ledger {ledger.collection.id!r}")
        return entry
    for entry in ledger.runs():
        if entry.data.get("collection") == collection and entry.status in CONTROLLABLE:
            return entry
    raise ConfigurationError(f"no running run of collection {collection!r} in the ledger "
                             f"{ledger.collection.id!r}")


def show(ledger: Ledger, entry: LedgerEntry) -> None:
    data = entry.data
    click.echo(f"Run {entry.run_id}: {data.get('mode', data.get('tool'))} of "
               f"{data.get('collection')} ({data.get('target_field', 'normalized')}), "
               f"{data.get('environment')}, started {data.get('started_at')}")
    if data.get("control"):
        click.echo(f"  control: {data['control']} (by {data.get('control_by')} at "
                   f"{data.get('control_at')})")
    parts = ledger.shards(entry.run_id) if "shard_count" in data else [entry]
    if "shard_count" in data:
        click.echo(f"  {data.get('status')}: {len(parts)} of {data['shard_count']} shards "
                   "started")
    for part in parts:
        click.echo("  " + describe(part, data))


def describe(part: LedgerEntry, run: dict[str, Any]) -> str:
    data = part.data
    counts = dict(data.get("counts") or {})
    state = part.status
    if state == RunStatus.RUNNING and data.get("state", GateState.RUNNING) != GateState.RUNNING:
        state = f"running, {data['state']}"
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
    return (f"{label}{state} by {data.get('user')}@{data.get('host')}: "
            f"{counts.get('processed', 0)} processed, {counts.get('updated', 0)} written, "
            f"{counts.get('errors', 0)} errors{rate}; checkpoint {data.get('checkpoint')}; "
            f"throttled {float(data.get('throttled_seconds') or 0):.1f}s in "
            f"{data.get('throttle_spells') or 0} spell(s), paused "
            f"{float(data.get('paused_seconds') or 0):.1f}s")


if __name__ == "__main__":
    main()
