"""Pause, continue or stop a running backfill or rollback from any console, or show it.

    python3 scripts/backfill_control.py status [RUN_ID]
    python3 scripts/backfill_control.py pause [RUN_ID]
    python3 scripts/backfill_control.py continue [RUN_ID]
    python3 scripts/backfill_control.py stop [RUN_ID]
    python3 scripts/backfill_control.py set --writes-per-second 200 [RUN_ID]
    python3 scripts/backfill_control.py set --parallel-batches 2 [RUN_ID]

RUN_ID defaults to the newest running run of the collection (for `status`, when none
is running, the newest run of the collection, however it ended). Every task of the run (all
shards of a sharded run) obeys within its control poll (CONTROL_POLL_SECONDS, 5 s, by
default). `set` changes a running run's pace: a
fixed write rate from then on (0: unpaced; the ramp-up stops; a sharded run's tasks each
take their share), or how many batches each task has in flight; a resume carries them on.
On an interrupted or failed run, `set` records the pace its resume goes on with: how an
operator changes a recorded pace (a --resume that says another pace is refused).
A run that is not running (interrupted, failed) can be paused or stopped too: a task the
engine starts again obeys; `continue` clears what stands. Exit codes: 0 done, 2 usage or
configuration (no such run, a bad value, a completed run for `set`), 3 fatal.
"""

from __future__ import annotations

from typing import Any

import click

from backfill.cli import (
    COMMAND_SETTINGS,
    MAX_RETRY_SECONDS,
    PARALLEL_BATCHES,
    WRITES_PER_SECOND,
    FiniteFloat,
    ToolCommand,
    ToolOption,
    connect_target,
    log_format_option,
    run_boundary,
    target_options,
    version_option,
)
from backfill.control import COMMANDS, CONTROLLABLE, SET, control_line, pace_line, request, set_pace
from backfill.errors import ConfigurationError, ExitCode
from backfill.lease import LeaseMalformed, LeaseState, read_lease_of
from backfill.ledger import DEFAULT_LEDGER_COLLECTION, Ledger, RunEntry
from backfill.names import check_id, check_run_id
from backfill.retry import RetryPolicy
from backfill.run_view import (
    headline,
    outlook_line,
    outlook_of,
    progress_line,
    task_line,
    whole_run,
)


@click.command(cls=ToolCommand, context_settings=COMMAND_SETTINGS)
@click.argument("action", type=click.Choice(["status", *COMMANDS, SET]))
@click.argument("run_id", required=False)
@click.option("--writes-per-second", type=WRITES_PER_SECOND, cls=ToolOption, first=True,
              metavar="N",
              help="set: the run's write rate from now on, and its ceiling (0: unpaced).")
@click.option("--parallel-batches", type=PARALLEL_BATCHES, cls=ToolOption, first=True,
              metavar="N", help="set: write batches each task has in flight.")
@target_options
@click.option("--ledger-collection", default=DEFAULT_LEDGER_COLLECTION, show_default=True,
              help="Where runs record themselves.")
@click.option("--max-retry-seconds", type=FiniteFloat(0, MAX_RETRY_SECONDS), default=30.0,
              show_default=True, help="How long to keep retrying a transient database error.")
@log_format_option
@version_option
@run_boundary
def main(action: str, run_id: str | None, writes_per_second: float | None,
         parallel_batches: int | None, ledger_collection: str, max_retry_seconds: float,
         **options: Any) -> int:
    """Pause, continue, stop, show or set the pace of a run (default: the newest running
    run)."""
    check_id(ledger_collection, "--ledger-collection")
    if run_id is not None:
        check_run_id(run_id, "RUN_ID")
    pace_given = writes_per_second is not None or parallel_batches is not None
    if action == SET and not pace_given:
        raise ConfigurationError("set needs --writes-per-second N or --parallel-batches N")
    if action != SET and pace_given:
        raise ConfigurationError("--writes-per-second and --parallel-batches go with set")
    target, client = connect_target(**options)
    ledger = Ledger(client, ledger_collection, RetryPolicy(max_total_wait=max_retry_seconds))
    entry = find_run(ledger, target.collection, run_id, latest=action == "status")
    if action == "status":
        lease = None
        try:
            lease = read_lease_of(client, ledger.collection, str(entry.collection),
                                  ledger.policy)
        except LeaseMalformed as error:
            click.echo(f"⚠️  {error}", err=True)
        show(ledger, entry, lease)
    elif action == SET:
        click.echo(set_pace(ledger, entry, writes_per_second, parallel_batches))
    else:
        click.echo(request(ledger, entry, action))
    return ExitCode.OK


def find_run(ledger: Ledger, collection: str, run_id: str | None,
             latest: bool = False) -> RunEntry:
    """The run named, or the newest running one of the collection; with `latest` (a
    status), when none is running, the newest of the collection however it ended."""
    if run_id is not None:
        entry = ledger.get(run_id)
        if entry is None:
            raise ConfigurationError(f"no run {run_id!r} in the ledger {ledger.collection.id!r}")
        return entry
    runs = [entry for entry in ledger.runs() if entry.collection == collection]
    for entry in runs:
        if entry.status in CONTROLLABLE:
            return entry
    if latest and runs:
        return runs[0]
    if latest:
        raise ConfigurationError(f"no run of collection {collection!r} in the ledger "
                                 f"{ledger.collection.id!r}")
    raise ConfigurationError(f"no running run of collection {collection!r} in the ledger "
                             f"{ledger.collection.id!r}")


def show(ledger: Ledger, entry: RunEntry, lease: LeaseState | None) -> None:
    click.echo(headline(entry))
    control = control_line(entry)
    if control is not None:
        click.echo("  " + control)
    click.echo("  " + pace_line(entry))
    parts = ledger.shards(entry.run_id) if entry.sharded else [entry]
    outlooks = [outlook_of(part, entry) for part in parts]
    if entry.sharded:
        click.echo(f"  {entry.status}: {len(parts)} of {entry.shard_count} shards started")
        if parts:
            whole = outlook_line(whole_run(outlooks))
            shards = "" if len(parts) == entry.shard_count else " (of the shards started)"
            click.echo(f"  whole run{shards}: {whole}")
    for part, outlook in zip(parts, outlooks, strict=True):
        click.echo("  " + progress_line(part, entry, task_line(part, entry.run_id, lease)))
        click.echo("    " + outlook_line(outlook))
