"""Which run this is, decided before anything is written: a new run, a resume (of the
newest unfinished run or of a given one), a run named by --job-id that may exist already,
a shard of a sharded run, an exact undo. Each start mode is a function of its own; the
run (backfill.writing_run.WritingRun) then carries the plan out.
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass, replace

from backfill.clock import utc_now
from backfill.errors import ConfigurationError
from backfill.ledger import Ledger, RunEntry
from backfill.limits import RESUME_LATEST, TASK_TOOL
from backfill.options import RunOptions
from backfill.ranges import Shard
from backfill.target_field import (
    TARGET_FIELD_VARIABLE,
    FieldRules,
    TargetField,
    parse_target_field,
)

UNDOABLE = ("backfill", TASK_TOOL)  # the runs an exact undo undoes (they journal)


def new_run_id(tool: str) -> str:
    return f"{tool}-{utc_now().strftime('%Y%m%dT%H%M%SZ')}-{secrets.token_hex(3)}"


@dataclass(frozen=True)
class RunPlan:
    tool: str
    run_id: str
    options: RunOptions  # with a resumed run's recorded settings
    field: TargetField | None  # the field a backfill writes; None: a task's run
    shard: Shard | None = None
    resumed: RunEntry | None = None  # the run carried on (a shard's: found on joining)
    undone: RunEntry | None = None  # the backfill run an exact undo undoes

    @property
    def field_path(self) -> str | None:
        return None if self.field is None else self.field.path

    @property
    def mode(self) -> str:
        if self.options.task is not None:
            return f"task {self.options.task}"
        if self.tool == "backfill":
            return "backfill (forced)" if self.options.force else "backfill"
        if self.options.undo_run_id:
            return f"exact undo of run {self.options.undo_run_id}"
        return "remove everywhere"


def given_target_field(options: RunOptions) -> TargetField | None:
    """--target-field (or BACKFILL_TARGET_FIELD), checked; None when not given (or when
    the tool writes no one field: a task)."""
    rules = options.field_rules
    if options.target_field is None or rules is None:
        return None
    return parse_target_field(options.target_field, rules)


def tool_field(options: RunOptions) -> TargetField | None:
    """The field a one-field tool writes: the one given, else its default; None: a task."""
    if options.field_rules is None:
        return None
    return given_target_field(options) or TargetField(options.field_rules.default)


def recorded_target_field(given: TargetField | None, entry: RunEntry,
                          rules: FieldRules | None) -> TargetField:
    """The field a run wrote (an entry older than --target-field: the tool's default); an
    explicit --target-field must say the same."""
    path = entry.target_field or (rules.default if rules is not None else None)
    if path is None:
        raise ConfigurationError(f"run {entry.run_id} recorded no field it wrote")
    recorded = TargetField(path)
    if given is not None and given != recorded:
        raise ConfigurationError(f"run {entry.run_id} wrote {recorded.path}, not "
                                 f"{given.path} (--target-field or {TARGET_FIELD_VARIABLE})")
    return recorded


def plan_run(tool: str, options: RunOptions, shard: Shard | None, ledger: Ledger) -> RunPlan:
    """Decide which run this is, from the options and the ledger (only read here)."""
    if options.dry_run:
        plan = _new(tool, options, shard, options.job_id or new_run_id(tool))
    elif shard is not None:
        plan = _shard_of(tool, options, shard)
    elif options.resume is not None:
        plan = _resume(tool, options, ledger)
    elif options.job_id is not None:
        plan = _named(tool, options, ledger)
    else:
        plan = _new(tool, options, None, new_run_id(tool))
    if plan.options.undo_run_id is not None:
        plan = _undoing(plan, ledger)
    return plan


def _new(tool: str, options: RunOptions, shard: Shard | None, run_id: str) -> RunPlan:
    return RunPlan(tool, run_id, options, tool_field(options), shard)


def _carry_on(tool: str, options: RunOptions, entry: RunEntry) -> RunPlan:
    """The run `entry` again, with its recorded settings (its target field among them;
    an option that contradicts one is refused there)."""
    carried = options.carrying_on(entry.run_id, entry.settings_recorded(), entry.pace_changed)
    return RunPlan(tool, entry.run_id, carried, tool_field(carried), resumed=entry)


def _resume(tool: str, options: RunOptions, ledger: Ledger) -> RunPlan:
    """--resume [RUN_ID]: the given run, or the newest unfinished one of this tool and
    collection, with the settings it recorded."""
    wanted = None if options.resume == RESUME_LATEST else options.resume
    entry = ledger.find_resumable(tool, options.collection, wanted, task=options.task)
    if entry.sharded:
        raise ConfigurationError(f"run {entry.run_id} is sharded: resume each unfinished "
                                 "shard with --resume RUN_ID --shard INDEX/COUNT")
    return _carry_on(tool, options, entry)


def _named(tool: str, options: RunOptions, ledger: Ledger) -> RunPlan:
    """--job-id ID: a new run of that ID, or the same run again (a retried task)."""
    assert options.job_id is not None
    entry = ledger.find_resumable(tool, options.collection, options.job_id, named=True)
    if entry is None:
        return _new(tool, options, None, options.job_id)
    if entry.sharded:
        raise ConfigurationError(
            f"run {entry.run_id} is sharded ({entry.shard_count} shards): give its "
            "shard with --shard INDEX/COUNT")
    return _carry_on(tool, options, entry)


def _shard_of(tool: str, options: RunOptions, shard: Shard) -> RunPlan:
    """A shard of a sharded run: the run's entry is joined (or made) when the run starts,
    after the confirmation; the shard's own progress decides whether it resumes."""
    assert options.job_id is not None
    return _new(tool, options, shard, options.job_id)


def _undoing(plan: RunPlan, ledger: Ledger) -> RunPlan:
    undo_run_id = plan.options.undo_run_id
    assert undo_run_id is not None
    undone = ledger.get(undo_run_id)
    if undone is not None and "collection" not in plan.options.explicit and \
            undone.tool == TASK_TOOL and undone.collection:
        # A task's run is of its task's collection: the ledger says which.
        plan = replace(plan, options=replace(plan.options, collection=undone.collection))
    if undone is None or undone.tool not in UNDOABLE or \
            undone.collection != plan.options.collection:
        raise ConfigurationError(f"no backfill run {undo_run_id!r} of collection "
                                 f"{plan.options.collection!r} in the ledger (--list-runs)")
    field = None if undone.tool == TASK_TOOL else recorded_target_field(
        given_target_field(plan.options), undone, plan.options.field_rules)
    return replace(plan, field=field, undone=undone)
