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
default; the run's --control-poll-seconds). `set` changes a running run's pace: a
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
    connect_target,
    log_format_option,
    run_boundary,
    target_options,
    version_option,
)
from backfill.control import CONTINUE, PAUSE, STOP
from backfill.errors import ConfigurationError, ExitCode
from backfill.lease import LeaseMalformed, LeaseState, read_lease_of
from backfill.ledger import DEFAULT_LEDGER_COLLECTION, Ledger, LedgerEntry
from backfill.limits import CONTROL_POLL_SECONDS
from backfill.names import check_id, check_run_id
from backfill.pace import rate_shown
from backfill.retry import RetryPolicy
from backfill.run_view import (
    headline,
    outlook_line,
    outlook_of,
    pace_line,
    progress_line,
    task_line,
    whole_run,
)
from backfill.status import CONTROLLABLE, UNFINISHED

ACTIONS = {"pause": PAUSE, "continue": CONTINUE, "stop": STOP}
# When a running run's tasks see a control or a pace: at their next control poll (a run
# started with --control-poll-seconds polls at that, which is not recorded).
WITHIN_POLL = f"its control poll ({CONTROL_POLL_SECONDS:g} s by default)"


@click.command(cls=ToolCommand, context_settings=COMMAND_SETTINGS)
@click.argument("action", type=click.Choice(["status", *ACTIONS, "set"]))
@click.argument("run_id", required=False)
@click.option("--writes-per-second", type=WRITES_PER_SECOND,
              help="set: the run's write rate from now on, and its ceiling (0: unpaced).")
@click.option("--parallel-batches", type=PARALLEL_BATCHES,
              help="set: write batches each task has in flight.")
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
    if action == "set" and not pace_given:
        raise ConfigurationError("set needs --writes-per-second N or --parallel-batches N")
    if action != "set" and pace_given:
        raise ConfigurationError("--writes-per-second and --parallel-batches go with set")
    target, client = connect_target(**options)
    ledger = Ledger(client, ledger_collection, RetryPolicy(max_total_wait=max_retry_seconds))
    entry = find_run(ledger, target.collection, run_id, latest=action == "status")
    if action == "status":
        lease = None
        try:
            lease = read_lease_of(client, ledger.collection, str(entry.data.get("collection")),
                                  ledger.policy)
        except LeaseMalformed as error:
            click.echo(f"⚠️  {error}", err=True)
        show(ledger, entry, lease)
        return ExitCode.OK
    if action == "set":
        return set_pace(ledger, entry, writes_per_second, parallel_batches)
    standing = entry.data.get("control")
    if entry.status not in (*UNFINISHED, *CONTROLLABLE):
        raise ConfigurationError(f"run {entry.run_id} is {entry.status}: there is nothing to "
                                 f"{action}")
    if action == "continue" and entry.status not in CONTROLLABLE and \
            standing not in (PAUSE, STOP):
        raise ConfigurationError(
            f"run {entry.run_id} is {entry.status}, with no pause or stop standing: there is "
            "nothing to continue (resume it with --resume)")
    ledger.set_control(entry.run_id, ACTIONS[action])
    if entry.status in CONTROLLABLE:
        what = {"pause": "pause requested: nothing new is read or written until `continue`",
                "continue": "continue requested: it goes on where it was",
                "stop": "stop requested: it ends at a clean point, resumable (status "
                        "`interrupted`)"}[action]
        click.echo(f"Run {entry.run_id}: {what}. Every task obeys within {WITHIN_POLL}.")
    else:
        what = {"pause": "paused: a task that starts it again waits until `continue`",
                "continue": f"{standing} cleared: a task that starts it again (--resume, "
                            "or the engine's retry) goes on",
                "stop": "stopped: a task the engine starts again writes nothing and ends "
                        "(exit 0); an operator's --resume clears the stop"}[action]
        click.echo(f"Run {entry.run_id} ({entry.status}): {what}.")
    return ExitCode.OK


def set_pace(ledger: Ledger, entry: LedgerEntry, writes_per_second: float | None,
             parallel_batches: int | None) -> int:
    """A running run applies the pace within a control poll; an unfinished one that is
    not running (interrupted, failed) has it recorded, and its resume carries it on: how
    an operator changes the pace a run resumes with."""
    if entry.status not in (*CONTROLLABLE, *UNFINISHED):
        raise ConfigurationError(
            f"run {entry.run_id} is {entry.status}, not running: a pace is set on a running "
            "run (a resume carries on the pace it had)")
    ledger.set_pace(entry.run_id, writes_per_second, parallel_batches)
    what = []
    if writes_per_second is not None:
        what.append(f"write rate {rate_shown(writes_per_second)}"
                    + (" (no ramp-up from now on)" if writes_per_second > 0 else ""))
        if "shard_count" in entry.data and writes_per_second > 0:
            what[-1] += f", shared by its {entry.data['shard_count']} shards"
    if parallel_batches is not None:
        what.append(f"{parallel_batches} batches in flight per task")
    if entry.status in CONTROLLABLE:
        click.echo(f"Run {entry.run_id}: pace set: {', '.join(what)}. Every task applies it "
                   f"within {WITHIN_POLL}.")
    else:
        click.echo(f"Run {entry.run_id} ({entry.status}): pace set: {', '.join(what)}. Its "
                   "resume carries it on.")
    return ExitCode.OK


def find_run(ledger: Ledger, collection: str, run_id: str | None,
             latest: bool = False) -> LedgerEntry:
    """The run named, or the newest running one of the collection; with `latest` (a
    status), when none is running, the newest of the collection however it ended."""
    if run_id is not None:
        entry = ledger.get(run_id)
        if entry is None:
            raise ConfigurationError(f"no run {run_id!r} in the ledger {ledger.collection.id!r}")
        return entry
    runs = [entry for entry in ledger.runs() if entry.data.get("collection") == collection]
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


def show(ledger: Ledger, entry: LedgerEntry, lease: LeaseState | None) -> None:
    data = entry.data
    click.echo(headline(entry))
    if data.get("control"):
        click.echo(f"  control: {data['control']} (by {data.get('control_by')} at "
                   f"{data.get('control_at')})")
    click.echo("  " + pace_line(data))
    parts = ledger.shards(entry.run_id) if "shard_count" in data else [entry]
    outlooks = [outlook_of(part, data) for part in parts]
    if "shard_count" in data:
        click.echo(f"  {data.get('status')}: {len(parts)} of {data['shard_count']} shards "
                   "started")
        if parts:
            whole = outlook_line(whole_run(outlooks))
            shards = "" if len(parts) == data["shard_count"] else " (of the shards started)"
            click.echo(f"  whole run{shards}: {whole}")
    for part, outlook in zip(parts, outlooks, strict=True):
        click.echo("  " + progress_line(part, data, task_line(part, entry.run_id, lease)))
        click.echo("    " + outlook_line(outlook))
