"""The CLI boundary the scripts share: options, confirmation, the run, exit codes.

Typed errors from the engine become one message and one exit code here, and nowhere else.
"""

from __future__ import annotations

import math
import os
import signal
import sys
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
from backfill.errors import (
    Aborted,
    BackfillError,
    ConfigurationError,
    ExitCode,
    RunInterrupted,
)
from backfill.health_url import parse_health_urls
from backfill.lease import HEARTBEAT_SECONDS, LEASE_TIMEOUT_SECONDS, engine_task
from backfill.ledger import DEFAULT_LEDGER_COLLECTION
from backfill.lifecycle import Outcome
from backfill.limits import CONTROL_POLL_SECONDS, MAX_PARALLEL_BATCHES
from backfill.log_format import LOG_FORMATS, set_context, structured_streams, wants_json
from backfill.names import check_database, check_id, check_output_dir, check_run_id
from backfill.notify import NOTIFY_TIMEOUT_SECONDS, parse_notify_urls
from backfill.options import RESUME_LATEST, RunOptions
from backfill.plan import given_target_field
from backfill.ranges import Shard
from backfill.ratelimit import MIN_WRITES_PER_SECOND, RAMP_START, workable_rate
from backfill.recovery import recovery_line
from backfill.shards import MAX_SHARDS, shard_from
from backfill.status import StopRequest
from backfill.streams import surviving_console
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
)
from backfill.where import parse_where
from backfill.writing_run import MakeJob, WritingRun
from normalizer import NORMALIZED_VERSION

F = TypeVar("F", bound=Callable[..., Any])
# --max-retry-seconds: a day is longer than any outage worth waiting out in one run (and
# 1e300 overflowed the time a resume counts back from).
MAX_RETRY_SECONDS = 86_400.0


class FiniteFloat(click.FloatRange):
    """A float range that also refuses nan and inf (nan compares false with any bound)."""

    def convert(self, value: Any, param: click.Parameter | None,
                ctx: click.Context | None) -> Any:
        number = click.FLOAT.convert(value, param, ctx)
        if isinstance(number, float) and not math.isfinite(number):  # before the range
            self.fail(f"{value!r} is not a finite number.", param, ctx)
        return super().convert(value, param, ctx)


class WriteRate(FiniteFloat):
    """A write rate that can work: 0 (unpaced) or at least MIN_WRITES_PER_SECOND (a rate
    of 1e-300 would make a batch wait longer than any clock can count)."""

    def __init__(self) -> None:
        super().__init__(0)

    def convert(self, value: Any, param: click.Parameter | None,
                ctx: click.Context | None) -> Any:
        rate = super().convert(value, param, ctx)
        if not workable_rate(rate):
            self.fail(f"{value!r} writes/s is too slow to work: 0 (unpaced) or at least "
                      f"{MIN_WRITES_PER_SECOND:g}.", param, ctx)
        return rate


# A run's pace, as it starts and as backfill_control.py set changes it: the same limits.
WRITES_PER_SECOND = WriteRate()
PARALLEL_BATCHES = click.IntRange(1, MAX_PARALLEL_BATCHES)
# Signals that end a run as Ctrl-C does, at a clean point with its final record:
# SIGTERM (an engine, `kill`) and SIGHUP (the terminal closed, the ssh session dropped:
# its default, exit 129, would leave the ledger `running` and the lease held).
ENDING_SIGNALS = (signal.SIGTERM, signal.SIGHUP)
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


log_format_option = click.option(
    "--log-format", type=click.Choice(LOG_FORMATS), default="auto", show_default=True,
    help="json: every output line one JSON object, for a log collector (auto: under "
         "CLOUD_RUN_JOB or KUBERNETES_SERVICE_HOST, never on a terminal); text: the console.")


def output_options(command: F) -> F:
    """--batch-size, --output-dir, --quiet, --json, --parallel-reads, --max-retry-seconds,
    --log-format."""
    for option in reversed([
        log_format_option,
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
        click.option("--max-retry-seconds", type=FiniteFloat(0, MAX_RETRY_SECONDS),
                     default=120.0,
                     show_default=True,
                     help="How long to keep retrying a transient database error."),
    ]):
        command = option(command)
    return command


where_option = click.option(
    "--where", "where", multiple=True, metavar="FIELD=VALUE",
    help="Only the items whose FIELD (a top-level field, or a dotted path) equals VALUE, a "
         "string; FIELD:=JSON for a typed value (count:=3, active:=true). May be repeated: "
         "all must hold. A canary: --where userId=YOUR_UID.")


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
    for group in (shard_options, writing_options, output_options, where_option,
                  target_field_option, target_options):
        command = group(command)
    return command


# --help in sections, in the order an operator reads them (click has no option groups).
HELP_SECTIONS: tuple[tuple[str, frozenset[str]], ...] = (
    ("Target", frozenset({"environment", "project", "database", "collection", "target_field",
                          "where", "ledger_collection"})),
    ("Run", frozenset({"dry_run", "yes", "limit", "resume", "force", "undo_run_id",
                       "list_runs", "job_id", "sample_size", "check_all", "seed",
                       "exact_sample", "run_id", "top"})),
    ("Pacing", frozenset({"batch_size", "max_writes_per_second", "initial_writes_per_second",
                          "parallel_batches", "parallel_reads", "writes_per_second"})),
    ("Backend health", frozenset({"throttle_url", "no_throttle", "throttle_interval",
                                  "throttle_max_latency_ms", "max_throttle_seconds"})),
    ("Shards", frozenset({"shard", "shard_count"})),
    ("Output and retries", frozenset({"output_dir", "quiet", "as_json", "notify_url",
                                      "log_format", "max_retry_seconds", "version", "help",
                                      "_click_default_help"})),
)


class ToolCommand(click.Command):
    """A click command whose usage errors (a bad option or value) are one line and exit 2,
    like every other refusal of the tools, and whose --help comes in sections."""

    def format_options(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        # Arguments are in the usage line.
        records = [(param.name, record) for param in self.get_params(ctx)
                   if isinstance(param, click.Option)
                   and (record := param.get_help_record(ctx)) is not None]
        shown: set[str | None] = set()
        for title, names in HELP_SECTIONS:
            rows = [record for name, record in records if name in names]
            shown.update(name for name, _ in records if name in names)
            if rows:
                with formatter.section(title):
                    formatter.write_dl(rows)
        rest = [record for name, record in records if name not in shown]
        if rest:
            with formatter.section("Other options"):
                formatter.write_dl(rest)

    def make_context(self, info_name: str | None, args: list[str],
                     parent: click.Context | None = None, **extra: Any) -> click.Context:
        try:
            return super().make_context(info_name, args, parent, **extra)
        except click.UsageError as error:
            # Before the options are read: structured as the environment says (auto).
            with structured_streams(_structured("auto")):
                click.echo(f"❌ {error.format_message()} (--help lists the options)",
                           err=True)
            sys.exit(ExitCode.USAGE)


# What every script's click.command and --version say.
COMMAND_SETTINGS: dict[str, Any] = {"help_option_names": ["-h", "--help"]}
version_option = click.version_option(f"{__version__} (normalizer {NORMALIZED_VERSION})")


def run_boundary(body: Callable[..., int]) -> Callable[..., NoReturn]:
    """Turn a command body's return value or typed error into the process's exit code."""

    @wraps(body)
    def wrapper(*args: Any, **kwargs: Any) -> NoReturn:
        # SIGTERM and SIGHUP outside a run (at the prompt, during the count) are an
        # interruption like Ctrl-C: exit 130 with a message, not 143 or 129 in silence.
        # A run handles them itself (stop_on_signals).
        previous = {sig: signal.signal(sig, _interrupt) for sig in ENDING_SIGNALS}
        try:
            with surviving_console(), \
                    structured_streams(_structured(kwargs.pop("log_format", "auto"))):
                set_context(tool=body.__module__.rsplit(".", 1)[-1])
                try:
                    code = body(*args, **kwargs)
                except RunInterrupted as error:
                    if not error.said:
                        click.echo(f"❌ {error}", err=True)
                    code = error.exit_code
                except BackfillError as error:
                    click.echo(f"❌ {error}", err=True)
                    code = error.exit_code
                except KeyboardInterrupt:
                    click.echo("❌ Interrupted.", err=True)
                    code = ExitCode.INTERRUPTED
        finally:
            for sig, old in previous.items():
                signal.signal(sig, old)
        sys.exit(int(code))

    return wrapper


def _structured(log_format: str) -> bool:
    """Whether this process's output is JSON lines (backfill.log_format)."""
    return wants_json(log_format, os.environ, sys.stderr.isatty())


def _interrupt(signum: int, _frame: FrameType | None) -> None:
    raise KeyboardInterrupt


def asks_confirmation(target: Target, dry_run: bool, yes: bool) -> bool:
    return not (dry_run or yes or target.environment != "production")


def confirm_production(target: Target, dry_run: bool, yes: bool) -> None:
    """Production writes need a typed YES (or --yes); anything else aborts, writing nothing.
    A closed or unreadable standard input is an answer other than YES."""
    if not asks_confirmation(target, dry_run, yes):
        return
    click.echo(CONFIRMATION_PROMPT, nl=False, err=True)
    try:
        answer = sys.stdin.readline() if sys.stdin is not None else ""
        typed = sys.stdin is not None and sys.stdin.isatty()
    except (OSError, ValueError):  # closed, or not readable
        answer, typed = "", False
    except KeyboardInterrupt:  # Ctrl-C or SIGTERM: its line goes under the prompt's
        click.echo(err=True)
        raise
    if not typed or not answer.endswith("\n"):
        # The answer did not end the prompt's line: it was not typed, or the input ended
        # (Ctrl-D) without a newline.
        click.echo(err=True)
    if answer.rstrip("\r\n") != "YES":
        raise Aborted("Aborted: nothing was written (the answer was not YES).")


def check_options(options: RunOptions) -> None:
    """Every name and ID an operator gave, and the output folder, checked locally before
    anything is read (Firestore's naming rules: backfill.names)."""
    check_target_names(options.collection, options.database)
    check_id(options.ledger_collection, "--ledger-collection")
    if options.ledger_collection == options.collection:
        raise ConfigurationError(
            f"--ledger-collection {options.ledger_collection!r} is the collection being "
            "processed: the ledger needs a collection of its own")
    if options.resume is not None and options.resume != RESUME_LATEST:
        check_run_id(options.resume, "--resume")
    for value, option in ((options.job_id, "--job-id"), (options.undo_run_id, "--run-id")):
        if value is not None:
            check_run_id(value, option)
    parse_health_urls(options.throttle_url)
    parse_notify_urls(options.notify_url)
    parse_where(options.where)
    check_output_dir(options.output_dir)


def connect(options: RunOptions) -> tuple[Target, firestore.Client]:
    """Check the options and resolve the configuration first; only then make a client."""
    check_options(options)
    return _client_for(environment=options.environment, project=options.project,
                       database=options.database, collection=options.collection)


def check_target_names(collection: str, database: str) -> None:
    check_id(collection, "--collection")
    check_database(database)


def connect_target(*, environment: str, project: str | None, database: str,
                   collection: str) -> tuple[Target, firestore.Client]:
    """The target options alone (what a tool that only reads the ledger needs), checked
    and resolved before a client is made."""
    check_target_names(collection, database)
    return _client_for(environment=environment, project=project, database=database,
                       collection=collection)


def _client_for(*, environment: str, project: str | None, database: str,
                collection: str) -> tuple[Target, firestore.Client]:
    target = resolve_target(environment=environment, project=project, database=database,
                            collection=collection, env=dict(os.environ))
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
        click.option("--max-writes-per-second", type=WRITES_PER_SECOND, default=10_000.0,
                     envvar="BACKFILL_MAX_WRITES_PER_SECOND", show_default=True,
                     help="Ceiling of the write rate; 0 turns pacing off (also "
                          "BACKFILL_MAX_WRITES_PER_SECOND)."),
        click.option("--initial-writes-per-second", type=FiniteFloat(min=1),
                     default=RAMP_START, show_default=True,
                     help="Starting write rate, raised by 50% every 5 minutes (Firestore's "
                          "500/50/5 ramp-up guidance)."),
        click.option("--parallel-batches", type=PARALLEL_BATCHES, default=4,
                     show_default=True, help="Write batches in flight at once."),
        click.option("--throttle-url", "throttle_url", multiple=True, metavar="URL",
                     envvar="BACKFILL_THROTTLE_URL",
                     help="The app backend's health URL (may be repeated; also "
                          "BACKFILL_THROTTLE_URL): while it is unhealthy, nothing new is "
                          "read or written."),
        click.option("--no-throttle", is_flag=True,
                     help="Resume a run that was gated by --throttle-url without the gate."),
        click.option("--throttle-interval", type=FiniteFloat(0.1, 3600), default=2.0,
                     show_default=True, help="Seconds between health probes."),
        click.option("--throttle-max-latency-ms", type=FiniteFloat(1, 60_000),
                     default=1000.0, show_default=True,
                     help="A health answer slower than this is unhealthy."),
        click.option("--max-throttle-seconds", type=FiniteFloat(0, 7 * 86400),
                     default=1800.0, show_default=True,
                     help="A run throttled longer than this in one spell stops at its "
                          "checkpoint (exit 3, resumable)."),
        click.option("--notify-url", "notify_url", multiple=True, metavar="URL",
                     envvar="BACKFILL_NOTIFY_URL",
                     help="A webhook (Slack's, or any that reads `text`) told with one JSON "
                          "POST when the run ends, however it ends (may be repeated; also "
                          "BACKFILL_NOTIFY_URL). Shown by its host only."),
        click.option("--notify-timeout-seconds", type=FiniteFloat(0.1, 60),
                     default=NOTIFY_TIMEOUT_SECONDS, hidden=True,
                     help="Seconds each try of a notification may take."),
        click.option("--control-poll-seconds", type=FiniteFloat(0.05, 3600),
                     default=CONTROL_POLL_SECONDS, hidden=True,
                     help="Seconds between reads of the run's control field."),
        click.option("--heartbeat-seconds", type=FiniteFloat(0.05, LEASE_TIMEOUT_SECONDS / 4),
                     default=HEARTBEAT_SECONDS, hidden=True,
                     help="Seconds between renewals of the lease."),
        click.option("--lease-timeout-seconds", type=FiniteFloat(0.2, 3600),
                     default=LEASE_TIMEOUT_SECONDS, hidden=True,
                     help="Heartbeat age past which this run's lease may be taken over."),
        click.option("--job-id", envvar="CLOUD_RUN_EXECUTION",
                     help="Names this run in the ledger; the tasks of a sharded run share it "
                          "(default: CLOUD_RUN_EXECUTION). A task started again with the same "
                          "ID carries the run on."),
    ]):
        command = option(command)
    return command


@contextmanager
def stop_on_signals(stop: StopRequest,
                    flush: Callable[[], None] | None = None) -> Iterator[StopRequest]:
    """SIGINT, SIGTERM and SIGHUP ask the run to stop at a clean point, with the signal's
    name as the reason. A Ctrl-C after a signal (what the first one's line offers) exits
    at once (the run log flushed first); SIGTERM and SIGHUP never do: an engine, `kill`
    or a closing terminal sends them to a run that may be stopping already (a control's
    stop, a Ctrl-C), and the run still ends with its final record, its lease given back
    and its resume command."""
    signalled: list[str] = []

    def handler(signum: int, _frame: FrameType | None) -> None:
        name = signal.Signals(signum).name
        if signum == signal.SIGINT and signalled:
            if flush is not None:
                flush()
            os._exit(ExitCode.INTERRUPTED)
        signalled.append(name)
        if stop.is_set():
            console.say(f"⏸  {name}: the run is stopping already ({stop.reason}), after "
                        "the batches in flight (press Ctrl-C to exit at once, without a "
                        "checkpoint)")
            return
        stop.request(name)
        console.say(f"⏸  {name}: stopping after the batches in flight (press Ctrl-C again "
                    "to exit at once, without a checkpoint)")

    previous = {sig: signal.signal(sig, handler) for sig in (signal.SIGINT, *ENDING_SIGNALS)}
    try:
        yield stop
    finally:
        for sig, old in previous.items():
            signal.signal(sig, old)


def execute_writing_run(tool: str, make_job: MakeJob, options: RunOptions,
                        labels: console.Labels, stats_prefix: str) -> int:
    """A writing tool (backfill, rollback): options checked, the banner, the run opened
    (which run, how many items), the confirmation, then the run, stopped by signals."""
    options, shard = _check_options(options)
    given_target_field(options)  # a bad --target-field is refused before any read
    target, client = connect(options)
    console.banner(target, labels, options.dry_run)
    recovery = None
    if target.environment == "production":  # a way back, checked while the run opens
        checking = ThreadPoolExecutor(max_workers=1, thread_name_prefix="recovery")
        recovery = checking.submit(recovery_line, target)
        checking.shutdown(wait=False)
    run = WritingRun(tool, make_job, options, shard, target, client,
                     console.ConsoleReporter(labels, options.quiet, options.as_json,
                                             console.resume_notes(options)),
                     labels.resume_command, stats_prefix, engine=engine_task(os.environ),
                     recovery=recovery)
    run.open(wait_for_count=False)  # without a prompt, the count goes on while it reads
    assert run.plan is not None
    set_context(run_id=run.plan.run_id, shard=str(shard) if shard else None)
    if asks_confirmation(run.target, run.options.dry_run, run.options.yes):
        if not run.counted():
            return ExitCode.OK  # nothing to write: nothing to confirm, no run in the ledger
        if run.recovery is not None:
            console.say(run.recovery.result())
        confirm_production(run.target, run.options.dry_run, run.options.yes)
    with stop_on_signals(run.stop, flush=run.flush_log):
        return exit_code(run.execute())


def exit_code(outcome: Outcome) -> ExitCode:
    """A run that returned: 0 when clean (or not begun), 1 with item errors. A run that
    ended early raised its typed error, which run_boundary maps."""
    return ExitCode.OK if outcome.clean else ExitCode.ITEM_ERRORS


def _check_options(options: RunOptions) -> tuple[RunOptions, Shard | None]:
    """Option combinations, checked before anything touches the database."""
    if options.resume is not None and options.dry_run:
        raise ConfigurationError("--resume and --dry-run do not go together "
                                 "(a dry run has no ledger entry to resume)")
    shard = shard_from(options.shard, options.shard_count)
    if shard and options.resume and options.resume != RESUME_LATEST and not options.job_id:
        options = replace(options, job_id=options.resume)  # --resume RUN_ID --shard i/N
    if options.no_throttle and options.throttle_url:
        raise ConfigurationError("--no-throttle and --throttle-url (or BACKFILL_THROTTLE_URL) "
                                 "do not go together")
    if options.heartbeat_seconds > options.lease_timeout_seconds / 4:
        raise ConfigurationError("--heartbeat-seconds is at most a quarter of "
                                 "--lease-timeout-seconds")
    if options.undo_run_id and (shard or options.job_id):
        raise ConfigurationError("an exact rollback (--run-id) takes no --shard or --job-id")
    if shard and not options.dry_run and not options.job_id:
        raise ConfigurationError(
            "a sharded run needs --job-id (Cloud Run Jobs set CLOUD_RUN_EXECUTION), so that "
            "its tasks share one entry in the ledger")
    return options, shard


