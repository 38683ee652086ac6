"""Every option of the tools, declared once: a field of a dataclass whose annotation is its
type, whose default is its default, and whose metadata (an OptionSpec) says the rest: its
flag, help, value rule, environment variable, --help section, the tools that take it,
whether a run records it for its resume, whether `backfill_control.py set` changes it,
whether a printed resume command types it again.

Plain data, no click: backfill.cli builds the click options from these fields, RunOptions
(backfill.options) takes its fields and defaults from RunOptionFields, and a printed resume
command (backfill.console) its words. Adding an option is one field here, plus the code that
reads it.
"""

from __future__ import annotations

from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

from backfill.limits import (
    CONTROL_POLL_SECONDS,
    DEFAULT_COLLECTION,
    DEFAULT_DATABASE,
    DEFAULT_LEDGER_COLLECTION,
    DEFAULT_PARALLEL_BATCHES,
    ENVIRONMENTS,
    HEARTBEAT_SECONDS,
    LEASE_TIMEOUT_SECONDS,
    LOG_FORMATS,
    MAX_PARALLEL_BATCHES,
    MAX_SHARDS,
    NOTIFY_TIMEOUT_SECONDS,
    RAMP_START,
    RESUME_LATEST,
    TARGET_FIELD_VARIABLE,
)

HERE = Path(".")
# --max-retry-seconds: a day is longer than any outage worth waiting out in one run (and
# 1e300 overflowed the time a resume counts back from).
MAX_RETRY_SECONDS = 86_400.0

# --help's sections, in the order an operator reads them (click has no option groups).
TARGET, RUN, PACING, HEALTH = "Target", "Run", "Pacing", "Backend health"
SHARDS, OUTPUT = "Shards", "Output and retries"
SECTIONS = (TARGET, RUN, PACING, HEALTH, SHARDS, OUTPUT)
# The sections of the parameters not declared here: click's own, and the pace options of
# `backfill_control.py set` (backfill.commands.control declares them).
OTHER_SECTIONS = {"writes_per_second": PACING, "version": OUTPUT, "help": OUTPUT,
                  "help_all": OUTPUT, "_click_default_help": OUTPUT}

# Groups of options, as the tools take them (backfill.cli.options_of).
GROUP_TARGET, GROUP_OUTPUT, GROUP_WHERE = "target", "output", "where"
GROUP_FIELD, GROUP_SHARD, GROUP_WRITING = "target_field", "shard", "writing"
GROUP_BACKFILL, GROUP_ROLLBACK = "backfill", "rollback"  # one writing tool's own
GROUP_TASK = "task"  # a task run's MODULE:CLASS: an argument, not an option


# The values an option takes, as plain data (backfill.cli makes the click types).
@dataclass(frozen=True)
class Whole:
    """An integer, within low..high when given."""

    low: int | None = None
    high: int | None = None


@dataclass(frozen=True)
class Number:
    """A finite float within low..high."""

    low: float | None = None
    high: float | None = None


@dataclass(frozen=True)
class Rate:
    """A write rate that can work: 0 (unpaced) or at least the slowest workable rate."""


@dataclass(frozen=True)
class OneOf:
    choices: tuple[str, ...]


@dataclass(frozen=True)
class Folder:
    """A path, as a pathlib.Path."""


@dataclass(frozen=True)
class Switch:
    """A flag: on when given."""


Kind = Whole | Number | Rate | OneOf | Folder | Switch | None  # None: any text


@dataclass(frozen=True)
class OptionSpec:
    help: str
    kind: Kind = None
    section: str = RUN
    group: str | None = None  # the group of options it comes in (backfill.cli.options_of)
    flag: str | None = None  # None: --NAME, its underscores as dashes
    envvar: str | None = None
    metavar: str | None = None
    show_default: bool = False
    hidden: bool = False  # an option the tests shorten, an operator has no reason to
    # On the first --help screen: what the runbook needs. The rest are behind --help-all.
    first: bool = False
    multiple: bool = False  # may be repeated: a tuple
    flag_value: str | None = None  # the value when given without one (--resume)
    # Its place among the settings a run records, for a resume to carry on the same run
    # (1, 2, ...: the order they are recorded in); 0: not recorded.
    recorded: int = 0
    pace: bool = False  # a pace `backfill_control.py set` changes on a running run
    # Whether a printed resume command types it again: "always", "changed" (when not
    # the default), "gated" (given, on a run gated by --throttle-url); None: never.
    retyped: str | None = None


def option(default: Any, help: str, **spec: Any) -> Any:
    """A dataclass field that is an option (its name, the field's)."""
    return field(default=default, metadata={"option": OptionSpec(help, **spec)})


@dataclass(frozen=True)
class RunOptionFields:
    """The options a run is made of (backfill.options.RunOptions adds what it does)."""

    environment: str = option(
        "development", "Which environment this is (also BACKFILL_ENVIRONMENT).",
        kind=OneOf(ENVIRONMENTS), envvar="BACKFILL_ENVIRONMENT", show_default=True,
        section=TARGET, group=GROUP_TARGET, retyped="always", first=True)
    project: str | None = option(
        None, "Google Cloud project (default: GOOGLE_CLOUD_PROJECT, GCLOUD_PROJECT, "
              "FIREBASE_PROJECT_ID, FIREBASE_CONFIG, the key's).",
        section=TARGET, group=GROUP_TARGET, retyped="changed")
    database: str = option(DEFAULT_DATABASE, "Firestore database ID.", show_default=True,
                           section=TARGET, group=GROUP_TARGET, retyped="changed")
    collection: str = option(DEFAULT_COLLECTION, "The collection the tool goes through.",
                             show_default=True, section=TARGET, group=GROUP_TARGET,
                             recorded=1)
    batch_size: int = option(500, "Documents per page read and per batch write.",
                             kind=Whole(1, 500), show_default=True, section=PACING,
                             group=GROUP_OUTPUT, recorded=4, first=True, metavar="N")
    # option() is a dataclasses.field, the default a constant
    output_dir: Path = option(HERE, "Where the stats file and the log go.",  # noqa: RUF009
                              kind=Folder(), show_default=True, section=OUTPUT,
                              group=GROUP_OUTPUT)
    quiet: bool = option(False, "No progress bar.", kind=Switch(), section=OUTPUT,
                         group=GROUP_OUTPUT)
    as_json: bool = option(False, "The final stats as one JSON object on stdout.",
                           kind=Switch(), flag="--json", section=OUTPUT, group=GROUP_OUTPUT,
                           first=True)
    max_retry_seconds: float = option(
        120.0, "How long to keep retrying a transient database error.",
        kind=Number(0, MAX_RETRY_SECONDS), show_default=True, section=OUTPUT,
        group=GROUP_OUTPUT)
    parallel_reads: int = option(
        4, "Ranges of the collection read at once, each by a cursor of its own (1: one "
           "cursor, in ID order).",
        kind=Whole(1, 32), show_default=True, section=PACING, group=GROUP_OUTPUT)
    dry_run: bool = option(False, "Read everything, write nothing.", kind=Switch(),
                           group=GROUP_WRITING, first=True)
    yes: bool = option(False, "Skip production's typed YES (scheduled jobs).",
                       kind=Switch(), group=GROUP_WRITING, first=True)
    limit: int | None = option(None, "Stop after N items (a canary run).", kind=Whole(1),
                               group=GROUP_WRITING, recorded=5, first=True, metavar="N")
    resume: str | None = option(
        None, "Continue the newest unfinished run of this tool and collection (or RUN_ID) "
              "from its checkpoint.",
        flag_value=RESUME_LATEST, metavar="[RUN_ID]", group=GROUP_WRITING, first=True)
    ledger_collection: str = option(
        DEFAULT_LEDGER_COLLECTION, "Where runs record themselves.", show_default=True,
        section=TARGET, group=GROUP_WRITING, retyped="changed")
    max_writes_per_second: float = option(
        10_000.0, "Write rate ceiling, 0: unpaced (also BACKFILL_MAX_WRITES_PER_SECOND).",
        kind=Rate(), envvar="BACKFILL_MAX_WRITES_PER_SECOND", show_default=True, metavar="N",
        section=PACING, group=GROUP_WRITING, recorded=7, pace=True, first=True)
    initial_writes_per_second: float = option(
        RAMP_START, "Starting write rate, raised by 50% every 5 minutes (Firestore's "
                    "500/50/5 ramp-up guidance).",
        kind=Number(1), show_default=True, section=PACING, group=GROUP_WRITING, recorded=8,
        pace=True)
    parallel_batches: int = option(DEFAULT_PARALLEL_BATCHES, "Write batches in flight at once.",
                                   kind=Whole(1, MAX_PARALLEL_BATCHES), show_default=True,
                                   section=PACING, group=GROUP_WRITING, recorded=9, pace=True)
    shard: str | None = option(
        None, f"Process shard INDEX (from 0) of COUNT, COUNT at most {MAX_SHARDS} (default: "
              "Cloud Run Jobs' CLOUD_RUN_TASK_INDEX/CLOUD_RUN_TASK_COUNT).",
        metavar="INDEX/COUNT", section=SHARDS, group=GROUP_SHARD)
    shard_count: int | None = option(
        None, "COUNT, with a Kubernetes Indexed Job's JOB_COMPLETION_INDEX (at most "
              f"{MAX_SHARDS}).",
        kind=Whole(1, MAX_SHARDS), section=SHARDS, group=GROUP_SHARD)
    job_id: str | None = option(
        None, "Names this run in the ledger; the tasks of a sharded run share it (default: "
              "CLOUD_RUN_EXECUTION). A task started again with the same ID carries the run on.",
        envvar="CLOUD_RUN_EXECUTION", group=GROUP_WRITING)
    # rollback: the backfill run to undo exactly
    undo_run_id: str | None = option(
        None, "Undo exactly this backfill run: each item it changed gets its previous value "
              "back.",
        flag="--run-id", metavar="RUN_ID", group=GROUP_ROLLBACK, recorded=6, first=True)
    # None: not given (the default, or what a run recorded)
    target_field: str | None = option(
        None, "Where the field lives: {app_field} is what the app reads (default: "
              "{default_field}; also " f"{TARGET_FIELD_VARIABLE}).",
        envvar=TARGET_FIELD_VARIABLE, metavar="PATH", section=TARGET, group=GROUP_FIELD,
        recorded=2, first=True)
    force: bool = option(False, "Rewrite items that are already up to date.", kind=Switch(),
                         group=GROUP_BACKFILL, recorded=3)
    throttle_url: tuple[str, ...] = option(
        (), "The app backend's health URL (may be repeated; also BACKFILL_THROTTLE_URL): "
            "while it is unhealthy, nothing new is read or written.",
        multiple=True, metavar="URL", envvar="BACKFILL_THROTTLE_URL", section=HEALTH,
        group=GROUP_WRITING)
    # a resume of a gated run, knowingly without its gate
    no_throttle: bool = option(
        False, "Resume a run that was gated by --throttle-url without the gate.",
        kind=Switch(), section=HEALTH, group=GROUP_WRITING)
    throttle_interval: float = option(
        2.0, "Seconds between health probes.", kind=Number(0.1, 3600), show_default=True,
        section=HEALTH, group=GROUP_WRITING, retyped="gated")
    throttle_max_latency_ms: float = option(
        1000.0, "A health answer slower than this is unhealthy.", kind=Number(1, 60_000),
        show_default=True, section=HEALTH, group=GROUP_WRITING, retyped="gated")
    max_throttle_seconds: float = option(
        1800.0, "A run throttled longer than this in one spell stops at its checkpoint "
                "(exit 3, resumable).",
        kind=Number(0, 7 * 86400), show_default=True, section=HEALTH, group=GROUP_WRITING,
        retyped="gated")
    where: tuple[str, ...] = option(
        (), "Only the items whose FIELD (or dotted path) equals VALUE (FIELD:=JSON: a typed "
            "value); repeatable. A canary: --where userId=YOUR_UID.",
        multiple=True, metavar="FIELD=VALUE", section=TARGET, group=GROUP_WHERE, recorded=10,
        first=True)
    task: str | None = option(
        None, "The task a task run runs: MODULE:CLASS (python3 -m backfill run's argument).",
        flag="MODULE:CLASS", group=GROUP_TASK, hidden=True, recorded=11)
    task_version: str | None = option(
        None, "The task's version, as its class says (recorded; a resume may run a newer one).",
        group=GROUP_TASK, hidden=True)
    notify_url: tuple[str, ...] = option(
        (), "A webhook (Slack's, or any that reads `text`) told with one JSON POST when the "
            "run ends, however it ends (may be repeated; also BACKFILL_NOTIFY_URL). Shown by "
            "its host only.",
        multiple=True, metavar="URL", envvar="BACKFILL_NOTIFY_URL", section=OUTPUT,
        group=GROUP_WRITING)
    notify_timeout_seconds: float = option(
        NOTIFY_TIMEOUT_SECONDS, "Seconds each try of a notification may take.",
        kind=Number(0.1, 60), hidden=True, group=GROUP_WRITING)
    control_poll_seconds: float = option(
        CONTROL_POLL_SECONDS, "Seconds between reads of the run's control field.",
        kind=Number(0.05, 3600), hidden=True, group=GROUP_WRITING)
    heartbeat_seconds: float = option(
        HEARTBEAT_SECONDS, "Seconds between renewals of the lease.",
        kind=Number(0.05, LEASE_TIMEOUT_SECONDS / 4), hidden=True, group=GROUP_WRITING)
    lease_timeout_seconds: float = option(
        LEASE_TIMEOUT_SECONDS, "Heartbeat age past which this run's lease may be taken over.",
        kind=Number(0.2, 3600), hidden=True, group=GROUP_WRITING)


@dataclass(frozen=True)
class BoundaryOptions:
    """What the CLI boundary takes itself (backfill.cli.run_boundary)."""

    log_format: str = option(
        "auto", "json: every output line one JSON object, for a log collector (auto: under "
                "CLOUD_RUN_JOB or KUBERNETES_SERVICE_HOST, never on a terminal); text: the "
                "console.",
        kind=OneOf(LOG_FORMATS), show_default=True, section=OUTPUT, group=GROUP_OUTPUT)


@dataclass(frozen=True)
class RollbackChoices:
    """wardrobe-rollback's own."""

    list_runs: bool = option(False, "List recent runs from the ledger, and exit.",
                             kind=Switch(), first=True)


@dataclass(frozen=True)
class ValidationChoices:
    """wardrobe-validate's own: what it checks."""

    sample_size: int = option(
        100, "How many items to check, drawn at random from the whole collection (or from "
             "the --where subset).",
        kind=Whole(1), show_default=True, first=True, metavar="N")
    check_all: bool = option(False, "Check every item instead of a sample.", kind=Switch(),
                             flag="--all", first=True)
    seed: int | None = option(None, "Seed of the random sample, to repeat it.", kind=Whole())
    exact_sample: bool = option(
        False, "Draw the sample by scanning every key (one read per item), whatever the "
               "collection's size.",
        kind=Switch())
    run_id: str | None = option(None, "Also report what this run recorded in the ledger.",
                                first=True)


@dataclass(frozen=True)
class VocabularyChoices:
    """wardrobe-vocabulary's own: what it reads and shows."""

    sample_size: int | None = option(
        None, "Look at a uniform random sample instead of every item.", kind=Whole(1),
        first=True, metavar="N")
    seed: int | None = option(None, "Seed of the random sample, to repeat it.", kind=Whole())
    exact_sample: bool = option(False, "Draw the sample by scanning every key (one read per "
                                       "item).", kind=Switch())
    top: int = option(15, "How many terms per facet the console table shows.",
                      kind=Whole(1), show_default=True)


DECLARED = (RunOptionFields, BoundaryOptions, RollbackChoices, ValidationChoices, VocabularyChoices)


def specs_of(declared: type) -> tuple[tuple[str, OptionSpec, Any], ...]:
    """The options of one declaring dataclass, in order: (name, spec, default)."""
    return tuple((each.name, each.metadata["option"], each.default)
                 for each in fields(declared) if "option" in each.metadata)


RUN_SPECS = specs_of(RunOptionFields)
SPEC = {name: spec for declared in DECLARED for name, spec, _ in specs_of(declared)}
# What makes a run the run it is: recorded when it starts, taken over by --resume.
RECORDED_SETTINGS = tuple(name for name, spec, _ in
                          sorted(RUN_SPECS, key=lambda row: row[1].recorded) if spec.recorded)
# What backfill_control.py set changes on a running run (backfill.pace).
PACE_SETTINGS = tuple(name for name, spec, _ in RUN_SPECS if spec.pace)
SECTION_OF = {**OTHER_SECTIONS, **{name: spec.section for name, spec in SPEC.items()}}


def option_name(name: str) -> str:
    """The option's flag, as an operator types it."""
    spec = SPEC.get(name)
    return spec.flag if spec is not None and spec.flag else "--" + name.replace("_", "-")
