"""The CLI boundary the scripts share: options, confirmation, the run, exit codes.

Typed errors from the engine become one message and one exit code here, and nowhere else.
"""

from __future__ import annotations

import math
import os
import signal
import sys
from collections.abc import Callable, Iterator, Mapping
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import replace
from functools import wraps
from pathlib import Path
from types import FrameType
from typing import Any, NoReturn, TypeVar

import click
from google.cloud import firestore

from backfill import console
from backfill.errors import (
    Aborted,
    BackfillError,
    ConfigurationError,
    ExitCode,
    RunInterrupted,
)
from backfill.health_url import parse_health_urls, parse_notify_urls
from backfill.lease import engine_task
from backfill.lifecycle import Outcome
from backfill.limits import RESUME_LATEST
from backfill.log_format import set_context, structured_streams, wants_json
from backfill.names import check_database, check_id, check_output_dir, check_run_id
from backfill.option_specs import (
    GROUP_FIELD,
    GROUP_OUTPUT,
    GROUP_SHARD,
    GROUP_TARGET,
    GROUP_WHERE,
    GROUP_WRITING,
    SECTION_OF,
    SECTIONS,
    SPEC,
    BoundaryOptions,
    Folder,
    Kind,
    Number,
    OneOf,
    OptionSpec,
    Rate,
    RunOptionFields,
    Switch,
    Whole,
    option_name,
    specs_of,
)
from backfill.option_specs import (
    MAX_RETRY_SECONDS as MAX_RETRY_SECONDS,  # re-exported: backfill.commands.control's
)
from backfill.options import RunOptions
from backfill.plan import given_target_field
from backfill.ranges import Shard
from backfill.ratelimit import MIN_WRITES_PER_SECOND, workable_rate
from backfill.recovery import recovery_line
from backfill.shards import shard_from
from backfill.stats import ToolExtras
from backfill.status import StopRequest
from backfill.streams import surviving_console
from backfill.target import (
    Target,
    make_client,
    resolve_target,
)
from backfill.version import __version__
from backfill.where import parse_where
from backfill.writing_run import MakeJob, WritingRun

F = TypeVar("F", bound=Callable[..., Any])


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


def click_type(kind: Kind) -> click.ParamType[Any] | None:
    """The click type of an option's values (backfill.option_specs); None: text."""
    if isinstance(kind, Whole):
        unbounded = kind.low is None and kind.high is None
        return click.INT if unbounded else click.IntRange(kind.low, kind.high)
    if isinstance(kind, Number):
        return FiniteFloat(kind.low, kind.high)
    if isinstance(kind, Rate):
        return WriteRate()
    if isinstance(kind, OneOf):
        return click.Choice(kind.choices)
    if isinstance(kind, Folder):
        return click.Path(path_type=Path)
    return None


class ToolOption(click.Option):
    """A click option that knows whether the first --help screen shows it (the rest:
    --help-all)."""

    def __init__(self, *args: Any, first: bool = False, **settings: Any) -> None:
        super().__init__(*args, **settings)
        self.first = first


def click_option(name: str, spec: OptionSpec, default: Any,
                 words: Mapping[str, str] | None = None) -> Callable[[F], F]:
    """The click option `name` as declared in backfill.option_specs; a help that names
    the tool's own things (`{default_field}`) says them in `words`."""
    help_text = spec.help.format_map(words) if words else spec.help
    settings: dict[str, Any] = {"help": help_text, "envvar": spec.envvar,
                                "metavar": spec.metavar, "cls": ToolOption,
                                "first": spec.first}
    if isinstance(spec.kind, Switch):
        settings["is_flag"] = True
    else:
        settings["type"] = click_type(spec.kind)
    if spec.flag_value is not None:
        settings.update(is_flag=False, flag_value=spec.flag_value, default=default)
    if spec.multiple:
        settings["multiple"] = True
    elif default is not None and not isinstance(spec.kind, Switch):
        settings["default"] = default
    if spec.show_default:
        settings["show_default"] = True
    if spec.hidden:
        settings["hidden"] = True
    return click.option(option_name(name), name, **settings)


class OptionGroup:
    """A decorator adding the options a dataclass of backfill.option_specs declares (only
    those of `group`, or the one named `only`, when given), in the order declared."""

    def __init__(self, declared: type, group: str | None = None,
                 only: str | None = None, words: Mapping[str, str] | None = None) -> None:
        self.options = [click_option(name, spec, default, words)
                        for name, spec, default in specs_of(declared)
                        if (group is None or spec.group == group)
                        and (only is None or name == only)]

    def __call__(self, command: F) -> F:
        for option in reversed(self.options):
            command = option(command)
        return command


def options_of(declared: type, group: str | None = None, only: str | None = None,
               words: Mapping[str, str] | None = None) -> Callable[[F], F]:
    return OptionGroup(declared, group, only, words)


def split_params(declared: type, params: dict[str, Any]) -> tuple[dict[str, Any],
                                                                  dict[str, Any]]:
    """A command's parameters: those `declared` declares, and the others."""
    names = {name for name, _, _ in specs_of(declared)}
    return ({name: value for name, value in params.items() if name in names},
            {name: value for name, value in params.items() if name not in names})


# A run's pace, as it starts and as backfill_control.py set changes it: the same limits.
WRITES_PER_SECOND = WriteRate()
# Signals that end a run as Ctrl-C does, at a clean point with its final record:
# SIGTERM (an engine, `kill`) and SIGHUP (the terminal closed, the ssh session dropped:
# its default, exit 129, would leave the ledger `running` and the lease held).
ENDING_SIGNALS = (signal.SIGTERM, signal.SIGHUP)
PARALLEL_BATCHES = click_type(SPEC["parallel_batches"].kind)
CONFIRMATION_PROMPT = "⚠️  You are about to modify PRODUCTION data. Type 'YES' to continue: "

# --environment, --project, --database, --collection: where a tool points.
target_options = options_of(RunOptionFields, GROUP_TARGET)
log_format_option = options_of(BoundaryOptions)
where_option = options_of(RunOptionFields, GROUP_WHERE)


def target_field_option(words: Mapping[str, str]) -> Callable[[F], F]:
    """--target-field, its help in the tool's words (`default_field`, `app_field`)."""
    return options_of(RunOptionFields, GROUP_FIELD, words=words)

# --shard, --shard-count: one part of a collection, for parallel tasks.
shard_options = options_of(RunOptionFields, GROUP_SHARD)
# --dry-run, --yes, --limit, --resume, --ledger-collection, the pace, the health gate,
# the webhooks, --job-id: the writing tools' options.
writing_options = options_of(RunOptionFields, GROUP_WRITING)


def output_options(command: F) -> F:
    """--log-format, --batch-size, --output-dir, --quiet, --json, --max-retry-seconds,
    --parallel-reads."""
    return log_format_option(options_of(RunOptionFields, GROUP_OUTPUT)(command))


def writing_tool_options(field_words: Mapping[str, str] | None) -> Callable[[F], F]:
    """Every option of a writing tool (backfill, rollback, a task), in --help order; with
    `field_words`, a tool that writes one field: its --target-field too."""
    def add(command: F) -> F:
        groups = [shard_options, writing_options, output_options, where_option]
        if field_words is not None:
            groups.append(target_field_option(field_words))
        for group in (*groups, target_options):
            command = group(command)
        return command
    return add


def _show_all_help(ctx: click.Context, _param: click.Parameter, value: bool) -> None:
    if not value or ctx.resilient_parsing:
        return
    ctx.meta[HELP_ALL] = True
    click.echo(ctx.get_help(), color=ctx.color)
    ctx.exit()


HELP_ALL = "help_all"
# The first screen's option column: as wide as `--max-writes-per-second N`, no wider, so
# that the help beside it wraps less (click's default is 30).
FIRST_SCREEN_COLUMN = 25
HELP_ALL_OPTION = click.Option(
    ["--help-all"], is_flag=True, expose_value=False, is_eager=True, callback=_show_all_help,
    help="Show every option, in sections, and exit.")


class ToolCommand(click.Command):
    """A click command whose usage errors (a bad option or value) are one line and exit 2,
    like every other refusal of the tools, and whose --help fits a screen: the options
    declared `first`, then --help-all, which shows every option in sections."""

    def __init__(self, *args: Any, **settings: Any) -> None:
        super().__init__(*args, **settings)
        self.params.append(HELP_ALL_OPTION)

    def format_options(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        # Arguments are in the usage line.
        records = [(param.name, record) for param in self.get_params(ctx)
                   if isinstance(param, click.Option)
                   and (record := param.get_help_record(ctx)) is not None]
        if not ctx.meta.get(HELP_ALL, False):
            self.format_first_screen(ctx, formatter)
            return
        for title in SECTIONS:
            rows = [record for name, record in records if SECTION_OF.get(str(name)) == title]
            if rows:
                with formatter.section(title):
                    formatter.write_dl(rows)
        rest = [record for name, record in records if str(name) not in SECTION_OF]
        if rest:
            with formatter.section("Other options"):
                formatter.write_dl(rest)

    def format_first_screen(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        """The options declared `first`, in the sections' order but under one heading (a
        heading each would not fit a screen), and the ways to more help."""
        ways = (HELP_ALL, self.get_help_option(ctx))
        shown = [param for param in self.get_params(ctx) if isinstance(param, click.Option)
                 and (getattr(param, "first", False) or param.name in ways or param in ways)]
        order = {title: place for place, title in enumerate(SECTIONS)}
        shown.sort(key=lambda param: order.get(SECTION_OF.get(str(param.name), ""), 99))
        with formatter.section("Options (the ones a run needs first; every option: --help-all)"):
            formatter.write_dl([record for param in shown
                                if (record := param.get_help_record(ctx)) is not None],
                               col_max=FIRST_SCREEN_COLUMN)

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
version_option = click.version_option(__version__)


def version_option_with(more: str) -> Callable[[F], F]:
    """--version, with what a tool adds (the version of its rules)."""
    return click.version_option(f"{__version__} ({more})")


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


def run_options(params: dict[str, Any]) -> RunOptions:
    """The run options of the running click command, knowing which were given."""
    context = click.get_current_context()
    sources = {name: context.get_parameter_source(name) for name in params}
    given = frozenset(name for name, source in sources.items()
                      if source in (click.core.ParameterSource.COMMANDLINE,
                                    click.core.ParameterSource.ENVIRONMENT))
    environment = frozenset(name for name, source in sources.items()
                            if source == click.core.ParameterSource.ENVIRONMENT)
    return RunOptions(**params, explicit=given, from_environment=environment)


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
                        labels: console.Labels, stats_prefix: str,
                        extras: ToolExtras | None = None) -> int:
    """A writing tool (backfill, rollback): options checked, the banner, the run opened
    (which run, how many items), the confirmation, then the run, stopped by signals."""
    options, shard = check_combinations(options)
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
                     recovery=recovery, extras=extras)
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


def check_combinations(options: RunOptions) -> tuple[RunOptions, Shard | None]:
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


