"""The CLI boundary the scripts share: options, confirmation, the run, exit codes.

Typed errors from the engine become one message and one exit code here, and nowhere else.
"""

from __future__ import annotations

import contextlib
import json
import logging
import math
import os
import signal
import sys
import threading
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import replace
from functools import wraps
from pathlib import Path
from types import FrameType
from typing import Any, NoReturn, TypeVar

import click
from google.cloud import firestore

from backfill import __version__, console
from backfill.control import CONTROL_POLL_SECONDS, RunControl
from backfill.errors import (
    Aborted,
    BackfillError,
    ConfigurationError,
    ExitCode,
    RunInterrupted,
)
from backfill.jobs import Job, UndoRunJob
from backfill.journal import Journal
from backfill.lease import HEARTBEAT_SECONDS, LEASE_TIMEOUT_SECONDS, Lease, LeaseLost
from backfill.ledger import DEFAULT_LEDGER_COLLECTION, Ledger, restore
from backfill.logs import LOG_FILE_NAME, close_run_log, flush_run_log, open_run_log
from backfill.names import check_database, check_id, check_output_dir
from backfill.options import RESUME_LATEST, RunOptions
from backfill.pager import count_documents, id_range
from backfill.plan import RunPlan, given_target_field, plan_run
from backfill.ratelimit import RAMP_START, WriteRateLimiter
from backfill.retry import RetryPolicy, call_with_retry
from backfill.runner import BatchOutcome, Runner, RunSettings
from backfill.shards import (
    MAX_SHARDS,
    Shard,
    compute_boundaries,
    shard_from,
    shard_range,
    split_range,
)
from backfill.stats import RunStats, utc_now
from backfill.target import (
    DEFAULT_COLLECTION,
    DEFAULT_DATABASE,
    ENVIRONMENTS,
    Target,
    make_client,
    resolve_target,
)
from backfill.target_field import (
    DEFAULT_TARGET_FIELD,
    TARGET_FIELD_VARIABLE,
    TargetField,
)
from backfill.throttle import Gate, HealthCheck, HealthWatch
from backfill.validation import coverage
from normalizer import NORMALIZED_VERSION

F = TypeVar("F", bound=Callable[..., Any])


class FiniteFloat(click.FloatRange):
    """A float range that also refuses nan and inf (nan compares false with any bound)."""

    def convert(self, value: Any, param: click.Parameter | None,
                ctx: click.Context | None) -> Any:
        number = super().convert(value, param, ctx)
        if isinstance(number, float) and not math.isfinite(number):
            self.fail(f"{value!r} is not a finite number.", param, ctx)
        return number
CONFIRMATION_PROMPT = "⚠️  You are about to modify PRODUCTION data. Type 'YES' to continue: "


def target_options(command: F) -> F:
    """--environment, --project, --database, --collection: where a tool points."""
    for option in reversed([
        click.option("--environment", type=click.Choice(ENVIRONMENTS), default="development",
                     envvar="BACKFILL_ENVIRONMENT", show_default=True,
                     help="Which environment this is (also BACKFILL_ENVIRONMENT)."),
        click.option("--project",
                     help="Google Cloud project (default: GOOGLE_CLOUD_PROJECT, "
                          "GCLOUD_PROJECT, FIREBASE_PROJECT_ID, FIREBASE_CONFIG, the key's)."),
        click.option("--database", default=DEFAULT_DATABASE, show_default=True,
                     help="Firestore database ID."),
        click.option("--collection", default=DEFAULT_COLLECTION, show_default=True,
                     help="The collection of wardrobe items."),
    ]):
        command = option(command)
    return command


def output_options(command: F) -> F:
    """--batch-size, --output-dir, --quiet, --json, --parallel-reads, --max-retry-seconds."""
    for option in reversed([
        click.option("--batch-size", type=click.IntRange(1, 500), default=500,
                     show_default=True, help="Documents per page read and per batch write."),
        click.option("--output-dir", type=click.Path(path_type=Path),
                     default=Path("."), show_default=True,
                     help="Where the stats file and the log go."),
        click.option("--quiet", is_flag=True, help="No progress bar."),
        click.option("--json", "as_json", is_flag=True,
                     help="Print the final stats as one JSON object on stdout."),
        click.option("--parallel-reads", type=click.IntRange(1, 32), default=4,
                     show_default=True,
                     help="Ranges of the collection read at once, each by a cursor of its "
                          "own (1: one cursor, in ID order)."),
        click.option("--max-retry-seconds", type=FiniteFloat(0), default=120.0,
                     show_default=True,
                     help="How long to keep retrying a transient database error."),
    ]):
        command = option(command)
    return command


target_field_option = click.option(
    "--target-field", envvar=TARGET_FIELD_VARIABLE, metavar="PATH",
    help=f"Where the normalized map lives: a field path such as normalized or "
         f"metadata.normalized (default: {DEFAULT_TARGET_FIELD}; also {TARGET_FIELD_VARIABLE}).")


def shard_options(command: F) -> F:
    """--shard, --shard-count: one part of a collection, for parallel tasks."""
    for option in reversed([
        click.option("--shard", metavar="INDEX/COUNT",
                     help="Process shard INDEX (from 0) of COUNT, COUNT at most "
                          f"{MAX_SHARDS} (default: Cloud Run Jobs' "
                          "CLOUD_RUN_TASK_INDEX/CLOUD_RUN_TASK_COUNT)."),
        click.option("--shard-count", type=click.IntRange(1, MAX_SHARDS),
                     help="COUNT, with a Kubernetes Indexed Job's JOB_COMPLETION_INDEX "
                          f"(at most {MAX_SHARDS})."),
    ]):
        command = option(command)
    return command


def writing_tool_options(command: F) -> F:
    """Every option of a writing tool (backfill, rollback), in --help order."""
    for group in (shard_options, writing_options, output_options, target_field_option,
                  target_options):
        command = group(command)
    return command


class ToolCommand(click.Command):
    """A click command whose usage errors (a bad option or value) are one line and exit 2,
    like every other refusal of the tools."""

    def make_context(self, info_name: str | None, args: list[str],
                     parent: click.Context | None = None, **extra: Any) -> click.Context:
        try:
            return super().make_context(info_name, args, parent, **extra)
        except click.UsageError as error:
            click.echo(f"❌ {error.format_message()} (--help lists the options)", err=True)
            sys.exit(ExitCode.USAGE)


# What every script's click.command and --version say.
COMMAND_SETTINGS: dict[str, Any] = {"help_option_names": ["-h", "--help"]}
version_option = click.version_option(f"{__version__} (normalizer {NORMALIZED_VERSION})")


def run_boundary(body: Callable[..., int]) -> Callable[..., NoReturn]:
    """Turn a command body's return value or typed error into the process's exit code."""

    @wraps(body)
    def wrapper(*args: Any, **kwargs: Any) -> NoReturn:
        # SIGTERM outside a run (at the prompt, during the count) is an interruption like
        # Ctrl-C: exit 130 with a message, not 143 in silence. A run handles both itself.
        previous = signal.signal(signal.SIGTERM, _interrupt)
        try:
            code = body(*args, **kwargs)
        except BackfillError as error:
            click.echo(f"❌ {error}", err=True)
            code = error.exit_code
        except KeyboardInterrupt:
            click.echo("❌ Interrupted.", err=True)
            code = ExitCode.INTERRUPTED
        finally:
            signal.signal(signal.SIGTERM, previous)
        sys.exit(int(code))

    return wrapper


def _interrupt(signum: int, _frame: FrameType | None) -> None:
    raise KeyboardInterrupt


def confirm_production(target: Target, dry_run: bool, yes: bool) -> None:
    """Production writes need a typed YES (or --yes); anything else aborts, writing nothing.
    A closed or unreadable standard input is an answer other than YES."""
    if dry_run or yes or target.environment != "production":
        return
    click.echo(CONFIRMATION_PROMPT, nl=False, err=True)
    try:
        answer = sys.stdin.readline() if sys.stdin is not None else ""
        typed = sys.stdin is not None and sys.stdin.isatty()
    except (OSError, ValueError):  # closed, or not readable
        answer, typed = "", False
    if not typed:
        click.echo(err=True)  # the typed answer did not end the prompt's line
    if answer.rstrip("\r\n") != "YES":
        raise Aborted("Aborted: nothing was written (the answer was not YES).")


def check_options(options: RunOptions) -> None:
    """Every name and ID an operator gave, and the output folder, checked locally before
    anything is read (Firestore's naming rules: backfill.names)."""
    check_id(options.collection, "--collection")
    check_id(options.ledger_collection, "--ledger-collection")
    if options.ledger_collection == options.collection:
        raise ConfigurationError(
            f"--ledger-collection {options.ledger_collection!r} is the collection being "
            "processed: the ledger needs a collection of its own")
    check_database(options.database)
    if options.resume is not None and options.resume != RESUME_LATEST:
        check_id(options.resume, "--resume")
    for value, option in ((options.job_id, "--job-id"), (options.undo_run_id, "--run-id")):
        if value is not None:
            check_id(value, option)
    check_output_dir(options.output_dir)


def connect(options: RunOptions) -> tuple[Target, firestore.Client]:
    """Check the options and resolve the configuration first; only then make a client."""
    check_options(options)
    target = resolve_target(environment=options.environment, project=options.project,
                            database=options.database, collection=options.collection,
                            env=dict(os.environ))
    return target, make_client(target)


def writing_options(command: F) -> F:
    """--dry-run, --yes, --limit, --resume, --ledger-collection: the writing tools' options."""
    for option in reversed([
        click.option("--dry-run", is_flag=True, help="Read everything, write nothing."),
        click.option("--yes", is_flag=True,
                     help="Skip the production confirmation (scheduled jobs)."),
        click.option("--limit", type=click.IntRange(1),
                     help="Stop after N items (a canary run)."),
        click.option("--resume", is_flag=False, flag_value=RESUME_LATEST, default=None,
                     metavar="[RUN_ID]",
                     help="Continue the newest unfinished run of this tool and collection "
                          "from its checkpoint, or the run RUN_ID."),
        click.option("--ledger-collection", default=DEFAULT_LEDGER_COLLECTION,
                     show_default=True, help="Where runs record themselves."),
        click.option("--max-writes-per-second", type=FiniteFloat(0), default=10_000.0,
                     show_default=True,
                     help="Ceiling of the write rate; 0 turns pacing off."),
        click.option("--initial-writes-per-second", type=FiniteFloat(min=1),
                     default=RAMP_START, show_default=True,
                     help="Starting write rate, raised by 50%% every 5 minutes (Firestore's "
                          "500/50/5 ramp-up guidance)."),
        click.option("--parallel-batches", type=click.IntRange(1, 16), default=4,
                     show_default=True, help="Write batches in flight at once."),
        click.option("--throttle-url", "throttle_url", multiple=True, metavar="URL",
                     envvar="BACKFILL_THROTTLE_URL",
                     help="The app backend's health URL (may be repeated; also "
                          "BACKFILL_THROTTLE_URL): while it is unhealthy, nothing new is "
                          "read or written."),
        click.option("--throttle-interval", type=FiniteFloat(0.1, 3600), default=2.0,
                     show_default=True, help="Seconds between health probes."),
        click.option("--throttle-max-latency-ms", type=FiniteFloat(1, 60_000),
                     default=1000.0, show_default=True,
                     help="A health answer slower than this is unhealthy."),
        click.option("--max-throttle-seconds", type=FiniteFloat(0, 7 * 86400),
                     default=1800.0, show_default=True,
                     help="A run throttled longer than this in one spell stops at its "
                          "checkpoint (exit 3, resumable)."),
        click.option("--control-poll-seconds", type=FiniteFloat(0.05, 3600),
                     default=CONTROL_POLL_SECONDS, hidden=True,
                     help="Seconds between reads of the run's control field."),
        click.option("--heartbeat-seconds", type=FiniteFloat(0.05, LEASE_TIMEOUT_SECONDS / 4),
                     default=HEARTBEAT_SECONDS, hidden=True,
                     help="Seconds between renewals of the lease."),
        click.option("--job-id", envvar="CLOUD_RUN_EXECUTION",
                     help="Names this run in the ledger; the tasks of a sharded run share it "
                          "(default: CLOUD_RUN_EXECUTION). A task started again with the same "
                          "ID carries the run on."),
    ]):
        command = option(command)
    return command


@contextmanager
def stop_on_signals(stop: threading.Event | None = None,
                    flush: logging.Logger | None = None) -> Iterator[threading.Event]:
    """SIGINT/SIGTERM ask the run to stop at a clean point; a second one exits at once
    (the run log's buffer written first)."""
    stop = stop or threading.Event()

    def handler(signum: int, _frame: FrameType | None) -> None:
        if stop.is_set():
            if flush is not None:
                flush_run_log(flush)
            os._exit(ExitCode.INTERRUPTED)
        stop.set()
        console.say(f"⏸  {signal.Signals(signum).name}: stopping after the batches in "
                    "flight (press Ctrl-C again to exit at once, without a checkpoint)")

    previous = {sig: signal.signal(sig, handler) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield stop
    finally:
        for sig, old in previous.items():
            signal.signal(sig, old)


def execute_writing_run(tool: str, make_job: Callable[[RunOptions, TargetField], Job],
                        options: RunOptions, labels: console.Labels, stats_prefix: str) -> int:
    """The whole flow of a writing tool (backfill, rollback): the plan (which run this is),
    banner, count, confirmation, lease, ledger, run, summary, stats file, log."""
    options, shard = _check_options(options)
    given_target_field(options)  # a bad --target-field is refused before any read
    target, client = connect(options)
    console.banner(target, labels, options.dry_run, options.batch_size)
    ledger = Ledger(client, options.ledger_collection, options.policy)
    # The count only feeds the banner and the progress bar: it runs while the plan is made.
    with ThreadPoolExecutor(max_workers=1, thread_name_prefix="count") as background:
        counting = background.submit(count_documents, client.collection(options.collection),
                                     options.policy)
        plan = plan_run(tool, options, shard, ledger)
        counted = counting.result()
    if plan.options.collection != options.collection:  # a resume of another collection's run
        counted = count_documents(client.collection(plan.options.collection), options.policy)
    options = plan.options
    target = replace(target, collection=options.collection)
    if plan.resumed is not None:
        console.say(f"↩️  Resuming run {plan.run_id} ({plan.resumed.status}, "
                    f"{plan.mode} of collection {target.collection}) after "
                    f"{plan.resumed.checkpoint or 'the beginning'}")
    if plan.undone is not None:
        console.say(f"⏪ Undoing exactly run {plan.undone.run_id} ({plan.undone.status}, "
                    f"started {plan.undone.data.get('started_at')}) from its journal")
    console.say(f"🏷  Field: {plan.field.path}")
    total = counted
    console.say(f"📊 Items in {target.collection}: {total}")
    if total == 0:
        warn_empty(client, target, options.policy)
        return ExitCode.OK  # nothing to write: nothing to confirm, no run in the ledger
    if options.limit is not None:
        console.say(f"✂️  Limited to {options.limit} items (canary run)")
    confirm_production(target, options.dry_run, options.yes)
    if options.dry_run:
        return _execute(plan, make_job(options, plan.field), client, target, None, total,
                        labels, stats_prefix)
    lease = Lease(client, options.ledger_collection, target.collection, plan.run_id,
                  shard.key if shard else "0", tool, options.policy,
                  heartbeat_seconds=options.heartbeat_seconds)
    takeover = lease.acquire()
    if takeover:
        console.say(f"⚠️  {takeover}")
    stop = threading.Event()
    try:
        with lease.kept(stop):
            return _execute(plan, make_job(options, plan.field), client, target, ledger,
                            total, labels, stats_prefix, stop=stop, takeover=takeover)
    except RunInterrupted:
        if lease.lost:  # the stop came from losing the lease, not from the operator
            raise LeaseLost(lease.lost) from None
        raise


def warn_empty(client: firestore.Client, target: Target, policy: RetryPolicy) -> None:
    """An empty collection is often a typo: say so, with the collections there are."""
    names = call_with_retry(lambda: sorted(c.id for c in client.collections()), policy,
                            "listing the collections")
    console.say(f"⚠️  Collection {target.collection!r} is empty or does not exist in project "
                f"{target.project}, database {target.database}. Collections there: "
                f"{', '.join(names) if names else '(none)'}")


def _execute(plan: RunPlan, job: Job, client: firestore.Client, target: Target,
             ledger: Ledger | None, total: int, labels: console.Labels, stats_prefix: str,
             stop: threading.Event | None = None, takeover: str | None = None) -> int:
    options, shard, resumed = plan.options, plan.shard, plan.resumed
    stats = RunStats(run_id=plan.run_id, tool=plan.tool, environment=target.environment,
                     dry_run=options.dry_run, project=target.project,
                     database=target.database, collection=target.collection, shard=shard,
                     target_field=plan.field.path)
    settings_recorded = options.settings(plan.field.path)
    collection = client.collection(target.collection)
    from_id = before_id = None
    if shard is not None:

        def boundaries_now() -> tuple[list[str], str]:
            return compute_boundaries(client, target.collection, shard.count, options.policy,
                                      warn=lambda text: console.say(f"⚠️  {text}"))

        if ledger is None:
            boundaries, _ = boundaries_now()
        else:
            boundaries, resumed = ledger.join_sharded(stats, options.arguments(),
                                                      settings_recorded, plan.mode,
                                                      boundaries_now)
        from_id, before_id = shard_range(boundaries, shard)
        total = count_documents(id_range(collection, from_id, before_id), options.policy)
        console.say(f"🧩 Shard {shard}: IDs from {from_id or 'the start'} to before "
                    f"{before_id or 'the end'}: {total} items")
    if resumed is not None and resumed.status == "completed":
        console.say(f"✅ {'Shard ' + str(shard) + ' of run' if shard else 'Run'} "
                    f"{plan.run_id} is already completed: nothing to do")
        return ExitCode.OK
    if resumed is not None and ledger is not None:
        restore(stats, resumed)
        ledger.reopen(stats)
        console.say(f"↩️  Continuing after {stats.checkpoint or 'the beginning'}")
    elif ledger is not None and shard is None:
        ledger.start(stats, options.arguments(), settings_recorded, plan.mode)
    log = open_run_log(options.output_dir, plan.tool, stats.run_id)
    if takeover:
        log.warning("%s", takeover)
    log.info("%s %s (%s): %s, settings %s, options %s", "resume" if resumed else "start",
             console.mode_tag(target, options.dry_run), plan.mode, target.describe(),
             settings_recorded, options.arguments())
    settings = _run_settings(job, options, client, target, stats, from_id, before_id,
                             journaled=ledger is not None)
    resume_command = labels.resume_command(options, stats.run_id, shard)
    extra: dict[str, str] = {}
    earlier = (stats.throttled_seconds, stats.throttle_spells, stats.paused_seconds)
    stop = stop or threading.Event()

    def on_gate_change(state: str, why: str | None) -> None:
        stats.state = state
        line = {"throttled": f"⏸  Throttled: {why}: nothing new is read or written until "
                             "it is healthy again",
                "paused": f"⏸  Paused ({why}): nothing new is read or written until "
                          "`continue`",
                "running": "▶️  Going on"}[state]
        console.say(line)
        log.warning("%s", line)
        if ledger is not None:
            with contextlib.suppress(BackfillError):
                ledger.set_state(stats)

    gate = Gate(max_throttle_seconds=options.max_throttle_seconds, limiter=settings.limiter,
                on_change=on_gate_change)
    settings = replace(settings, gate=gate.wait)

    def count_gate_time() -> None:
        throttled, spells, paused = gate.totals()
        stats.throttled_seconds = earlier[0] + throttled
        stats.throttle_spells = earlier[1] + spells
        stats.paused_seconds = earlier[2] + paused

    try:
        with console.progress(total, options.quiet) as bar, \
                stop_on_signals(stop, flush=log) as stopping, \
                _watching(options, gate, ledger, stats.run_id, stopping,
                          obey_at_once=resumed is not None or shard is not None):
            bar.update(stats.processed)

            def on_batch(outcome: BatchOutcome) -> None:
                count_gate_time()
                if ledger is not None:
                    ledger.record(stats, force=False)
                bar.update(outcome.processed)
                _report_batch(outcome, labels, options.dry_run, log,
                              gate.paused_by or gate.throttled_because)

            Runner(client, target.collection, job, settings, stopping).run(stats, on_batch)
        stats.status = "completed"
        if resumed is not None and plan.tool == "backfill" and shard is None:
            extra = _coverage_after_resume(collection, plan, log)
    except RunInterrupted:
        stats.status = "interrupted"
        raise
    except BaseException as error:
        stats.status = "failed"
        stats.stopped_because = str(error)
        log.error("fatal: %s", error)
        raise
    finally:
        stats.finished_at = utc_now()
        stats.state = "running"
        count_gate_time()
        _close_run(stats, ledger, log)
        if ledger is not None and shard is not None and stats.status == "completed":
            with contextlib.suppress(BackfillError):
                if ledger.complete_if_all_shards_are(stats.run_id):
                    console.say(f"✅ Every shard of run {stats.run_id} is completed: the run "
                                "is completed")
        stats_path = stats.write_file(options.output_dir, stats_prefix)
        log.info("finished %s: %s processed, %s written, %s would write, %s skipped, "
                 "%s errors, checkpoint %s; stats in %s", stats.status, stats.processed,
                 stats.updated, stats.would_update, stats.skipped, stats.error_count,
                 stats.checkpoint, stats_path)
        close_run_log(log)
        console.summary(stats, labels, {"Run ID": stats.run_id, **extra,
                                        "Stats file": str(stats_path),
                                        "Log file": str(options.output_dir / LOG_FILE_NAME)},
                        options.as_json)
        if stats.status != "completed" and ledger is not None:
            console.say(f"↩️  To continue from the checkpoint: {resume_command}")
    return ExitCode.ITEM_ERRORS if stats.error_count else ExitCode.OK


@contextmanager
def _watching(options: RunOptions, gate: Gate, ledger: Ledger | None, run_id: str,
              stop: threading.Event, obey_at_once: bool) -> Iterator[None]:
    """The backend's health (--throttle-url) and the run's control field, each probed in a
    thread of its own while the run goes on. `obey_at_once`: the run may have been paused
    or stopped before this task started (a resume, a shard): look before the first write."""
    with contextlib.ExitStack() as stack:
        if options.throttle_url:
            stack.enter_context(HealthWatch(HealthCheck(
                options.throttle_url, options.throttle_interval,
                options.throttle_max_latency_ms), gate))
        if ledger is not None:
            stack.enter_context(RunControl(ledger, run_id, gate, stop, console.say,
                                           poll_seconds=options.control_poll_seconds,
                                           first_look_now=obey_at_once))
        yield


def _coverage_after_resume(collection: Any, plan: RunPlan, log: logging.Logger
                           ) -> dict[str, str]:
    """A resume reads only after its checkpoint: say what that leaves out."""
    cover = coverage(collection, plan.field, plan.options.policy)
    line = f"{cover.normalized}/{cover.total} carry {plan.field.path} ({cover.percent:.1f}%)"
    if cover.normalized < cover.total:
        note = (f"⚠️  {cover.total - cover.normalized} items lack {plan.field.path}: a resumed "
                "run does not re-read the items before its checkpoint (items added or "
                "changed there since). Run the backfill again without --resume to cover "
                "them (items already done are skipped).")
        console.say(note)
        log.warning("%s", note)
    return {"Coverage": line}


def _check_options(options: RunOptions) -> tuple[RunOptions, Shard | None]:
    """Option combinations, checked before anything touches the database."""
    if options.resume is not None and options.dry_run:
        raise ConfigurationError("--resume and --dry-run do not go together "
                                 "(a dry run has no ledger entry to resume)")
    shard = shard_from(options.shard, options.shard_count)
    if shard and options.resume and options.resume != RESUME_LATEST and not options.job_id:
        options = replace(options, job_id=options.resume)  # --resume RUN_ID --shard i/N
    if options.undo_run_id and (shard or options.job_id):
        raise ConfigurationError("an exact rollback (--run-id) takes no --shard or --job-id")
    if shard and not options.dry_run and not options.job_id:
        raise ConfigurationError(
            "a sharded run needs --job-id (Cloud Run Jobs set CLOUD_RUN_EXECUTION), so that "
            "its tasks share one entry in the ledger")
    return options, shard


def _run_settings(job: Job, options: RunOptions, client: firestore.Client, target: Target,
                  stats: RunStats, from_id: str | None, before_id: str | None,
                  journaled: bool) -> RunSettings:
    journal = None
    if journaled and job.journaled:
        journal = Journal(client, options.ledger_collection, stats.run_id, options.policy,
                          stats.shard.key if stats.shard else "0")
    source = None
    if isinstance(job, UndoRunJob):
        undo_job = job  # narrowed, for the closure

        def source(after_key: str | None) -> Iterator[tuple[list[Any], str]]:
            return undo_job.pages(client, target.collection, options.policy, after_key)

    parts = None
    if source is None and options.limit is None:
        if stats.parts is not None:  # a resumed run that read in parallel: as it was
            parts = stats.parts
        elif options.parallel_reads > 1:
            parts = split_range(stats.checkpoint or from_id, before_id,
                                options.parallel_reads)
            parts[0].checkpoint = stats.checkpoint  # a resume reads after it, not at it
            stats.parts = parts
    # Each shard paces itself at its share, so that all tasks together follow the ramp.
    share = stats.shard.count if stats.shard else 1
    initial = min(options.initial_writes_per_second, options.max_writes_per_second or math.inf)
    return RunSettings(
        batch_size=options.batch_size, dry_run=options.dry_run,
        # A resumed canary run: the limit is the whole run's.
        limit=None if options.limit is None else max(0, options.limit - stats.processed),
        after_id=stats.checkpoint, from_id=from_id, before_id=before_id,
        max_in_flight=options.parallel_batches, policy=options.policy, journal=journal,
        source=source, read_ahead=source is None, parts=parts,
        limiter=WriteRateLimiter(initial=initial / share,
                                 ceiling=options.max_writes_per_second / share))


def _report_batch(outcome: BatchOutcome, labels: console.Labels, dry_run: bool,
                  log: logging.Logger, held: str | None = None) -> None:
    written = labels.would if dry_run else labels.done
    line = (f"Batch {outcome.number}: {outcome.processed} processed, "
            f"{outcome.written} {written}, {outcome.skipped} skipped, "
            f"{len(outcome.errors)} errors")
    if outcome.conflicts_retried:
        line += f", {outcome.conflicts_retried} conflicts retried"
    if held:
        line += f" [held: {held}]"
    console.say(line)
    log.info(line)
    for doc_id, message in outcome.errors:
        log.error("item %s: %s", doc_id, message)
    for decision in outcome.decisions.values():
        for dropped in decision.report.dropped if decision.report else []:
            log.info("item %s: dropped %s value %s (%s)", decision.doc_id,
                     dropped.facet, dropped.value, dropped.reason)
    if dry_run and outcome.number <= 2:
        for sample in outcome.samples:
            shown = f": {_printable(sample.fields)}" if labels.show_sample_fields else ""
            console.say(f"  {labels.sample} {sample.doc_id}{shown}")


def _close_run(stats: RunStats, ledger: Ledger | None, log: logging.Logger) -> None:
    """The final ledger record. When the database is what failed, this may fail too: the
    ledger then keeps the last checkpoint, status `running`, and --resume still finds it."""
    if ledger is None:
        return
    try:
        ledger.record(stats)
    except BackfillError as error:
        log.error("could not record the end of the run in the ledger: %s", error)
        console.say(f"⚠️  The ledger could not be updated ({error}); it keeps the last "
                    f"checkpoint, {stats.checkpoint}")


def _printable(fields: dict[str, Any] | None) -> str:
    return json.dumps(fields, ensure_ascii=False, default=str)
