"""Any backfill written as a Task (backfill.task), with every guarantee the wardrobe
backfill has:

    python3 -m backfill run MODULE:CLASS --dry-run --environment production
    python3 -m backfill run MODULE:CLASS --environment production
    python3 -m backfill validate MODULE:CLASS --sample-size 100
    python3 -m backfill rollback --run-id RUN_ID --environment production
    python3 -m backfill control status [RUN_ID]

MODULE is imported from the current directory (as `uvicorn main:app` finds its app).
Exit codes: 0 clean, 1 item errors (validate: items that still need work) or aborted,
2 usage or configuration (a task that cannot be loaded among them), 3 fatal during the
run, 130 interrupted.
"""

from __future__ import annotations

import json
from dataclasses import replace
from typing import Any

import click
from google.cloud import firestore

from backfill import console
from backfill.batch import Job
from backfill.cli import (
    COMMAND_SETTINGS,
    ToolCommand,
    check_combinations,
    connect,
    execute_writing_run,
    options_of,
    output_options,
    run_boundary,
    run_options,
    split_params,
    target_options,
    version_option,
    where_option,
    writing_tool_options,
)
from backfill.errors import ConfigurationError, ExitCode, RunInterrupted
from backfill.estimate import Estimate
from backfill.ledger import Ledger
from backfill.option_specs import (
    GROUP_ROLLBACK,
    RollbackChoices,
    RunOptionFields,
    ValidationChoices,
    option_name,
)
from backfill.options import RunOptions
from backfill.pager import (
    count_documents,
    empty_collection_message,
    read_documents,
    snapshot_data,
)
from backfill.run_view import runs_table
from backfill.sampling import describe as describe_sample
from backfill.sampling import draw_sample
from backfill.stats import RunStats, ToolExtras
from backfill.target_field import TargetField
from backfill.task import Task, TaskJob, load_task, task_name
from backfill.undo import UndoRunJob
from backfill.values import without_unchanged
from backfill.where import empty_subset_message, narrowed
from backfill.writing_run import WritingRun

SCRIPT = "-m backfill"  # as backfill.invocation types it


@click.group(context_settings=COMMAND_SETTINGS)
@version_option
def main() -> None:
    """Run any backfill written as a backfill.Task, with a dry run, a precondition on
    every write, a journal and its exact undo, resume, control and shards."""


@main.command("run", cls=ToolCommand, context_settings=COMMAND_SETTINGS)
@click.argument("task")
@writing_tool_options(None)
@run_boundary
def run(task: str, **options: Any) -> int:
    """Run the task MODULE:CLASS over its collection (--dry-run first)."""
    found = load_task(task)
    return execute_writing_run("task", TaskMaker(found),
                               for_task(found, task, run_options(options)),
                               task_labels(found, task), stats_prefix="task_stats",
                               extras=task_extras(found, task))


def for_task(found: type[Task], spec: str, options: RunOptions) -> RunOptions:
    """The run's options, its collection the task's (a --collection must say the same)."""
    if "collection" in options.explicit and options.collection != found.collection:
        raise ConfigurationError(f"task {spec} writes collection {found.collection!r}, not "
                                 f"{options.collection!r} (leave --collection out)")
    # Typed each time: a resume with another task contradicts the run's (exit 2).
    return replace(options, collection=found.collection, task=spec,
                   task_version=str(found.version) or None,
                   explicit=options.explicit | {"task"})


def run_task(task: type[Task] | str, **options: Any) -> RunStats:
    """Run a task from Python (a scheduled job, a test) as `python3 -m backfill run`
    runs it with --yes and --quiet, and return its stats. `options`: the run's options by
    their names (dry_run=True, environment="production", limit=100, output_dir=...); the
    rest as the command reads them, from the same variables (BACKFILL_THROTTLE_URL, ...).
    Raises the engine's typed errors: ConfigurationError before anything is read,
    RunInterrupted, DatabaseError, LeaseLost, ... after the run's end is recorded."""
    found = load_task(task) if isinstance(task, str) else task
    spec = task if isinstance(task, str) else f"{found.__module__}:{found.__qualname__}"
    arguments = [spec, "--yes", "--quiet", *(word for name, value in options.items()
                                             for word in typed_option(name, value))]
    try:  # click's own parsing: types, defaults, variables, as the command has them
        context = click.Command.make_context(run, "run", arguments)
    except click.UsageError as error:
        raise ConfigurationError(error.format_message()) from error
    with context:
        params = {k: v for k, v in context.params.items() if k not in ("task", "log_format")}
        chosen, shard = check_combinations(for_task(found, spec, run_options(params)))
    target, client = connect(chosen)
    labels = task_labels(found, spec)
    writing = WritingRun("task", TaskMaker(found), chosen, shard, target, client,
                         console.ConsoleReporter(labels, quiet=True, as_json=False),
                         labels.resume_command, "task_stats",
                         extras=task_extras(found, spec))
    writing.open()
    outcome = writing.execute()
    if writing.stats is None:  # a stop stands on the run: it did not begin
        raise RunInterrupted(outcome.reason or "the run did not begin")
    return writing.stats


def typed_option(name: str, value: Any) -> list[str]:
    """An option of `run` by its name, as it is typed on a command line."""
    flag = option_name(name)
    if value is True:
        return [flag]
    if value is False or value is None:
        return []
    if isinstance(value, list | tuple):
        return [word for item in value for word in (flag, str(item))]
    return [flag, str(value)]


def task_extras(found: type[Task], spec: str) -> ToolExtras:
    """What a task's runs record of it in their stats file and ledger entry."""
    return ToolExtras(recorded={"task": spec, "task_version": str(found.version) or None})


def task_labels(found: type[Task], spec: str) -> console.Labels:
    return console.Labels(title=f"task {task_name(found)}", done="updated",
                          would="would update", sample="Would update", script=SCRIPT,
                          then=f"run {spec}")


class TaskMaker:
    """The job of a task run: the task, given the run's client before its first call."""

    def __init__(self, task: type[Task]) -> None:
        self.task = task

    def __call__(self, options: RunOptions, field: TargetField | None,
                 client: firestore.Client) -> Job:
        instance = self.task()
        instance.client = client
        return TaskJob(instance)


@main.command("rollback", cls=ToolCommand, context_settings=COMMAND_SETTINGS)
@writing_tool_options(None)
@options_of(RunOptionFields, GROUP_ROLLBACK)
@options_of(RollbackChoices)
@run_boundary
def rollback(list_runs: bool, **options: Any) -> int:
    """Undo exactly one run (--run-id RUN_ID): each path it wrote gets back what it held
    before, where it still holds what the run wrote."""
    run = run_options(options)
    if list_runs:
        return print_runs(run)
    if run.undo_run_id is None:
        raise ConfigurationError("rollback undoes exactly one run: give --run-id RUN_ID "
                                 "(--list-runs lists the runs)")
    labels = console.Labels(title="undo", done="rolled back", would="would roll back",
                            sample="Would roll back", show_sample_fields=False,
                            script=SCRIPT, then="rollback")
    return execute_writing_run("rollback", make_undo, run, labels, stats_prefix="rollback_stats")


def make_undo(options: RunOptions, field: TargetField | None, client: firestore.Client) -> Job:
    """The exact undo of the run --run-id names (`field`: a one-field tool's run's)."""
    assert options.undo_run_id is not None
    return UndoRunJob(options.undo_run_id, options.ledger_collection, field,
                      where=options.conditions)


@main.command("validate", cls=ToolCommand, context_settings=COMMAND_SETTINGS)
@click.argument("task")
@options_of(ValidationChoices, only="sample_size")
@options_of(ValidationChoices, only="seed")
@output_options
@where_option
@target_options
@run_boundary
def validate(task: str, **params: Any) -> int:
    """Check a uniform random sample: an item is fine when the task's changes() has
    nothing to write on it. Exit 0 when every sampled item is fine, 1 otherwise."""
    found = load_task(task)
    given, rest = split_params(RunOptionFields, params)
    options = for_task(found, task, run_options(given))
    target, client = connect(options)
    console.say(f"🔍 Validating task {task_name(found)} on {target.describe()}")
    collection = client.collection(options.collection)
    total = count_documents(narrowed(collection, options.conditions), options.policy)
    if total == 0:  # nothing checked is nothing proven
        raise ConfigurationError(
            empty_subset_message(options.conditions) if options.where
            else empty_collection_message(client, target, options.policy))
    sample = draw_sample(narrowed(collection, options.conditions), rest["sample_size"],
                         rest["seed"], options.policy, total=total)
    console.say(describe_sample(sample, rest["sample_size"]))
    needing = still_needing_work(TaskMaker(found)(options, None, client), client,
                                 collection, sample.ids, options)
    for doc_id, why in needing[:10]:
        console.say(f"   ❌ {doc_id}: {why}")
    estimate = Estimate(invalid=len(needing), sampled=len(sample.ids), total=total)
    if options.as_json:
        click.echo(json.dumps({"task": task, "collection": options.collection,
                               "sampled": len(sample.ids), "need_work": len(needing),
                               "items": [{"id": i, "why": why} for i, why in needing],
                               "estimate": estimate.to_dict()}, ensure_ascii=False))
    else:
        click.echo(f"{len(needing)} of {len(sample.ids):,} sampled items still need work: "
                   f"at most {100 * estimate.upper_share:.1f}% of the {total:,} items do "
                   f"({100 * estimate.confidence:.0f}% confidence)")
    return ExitCode.ITEM_ERRORS if needing else ExitCode.OK


def still_needing_work(job: Job, client: firestore.Client, collection: Any, ids: list[str],
                       options: RunOptions) -> list[tuple[str, str]]:
    """The sampled items the task would still write (or cannot decide on), with why."""
    needing: list[tuple[str, str]] = []
    for start in range(0, len(ids), options.batch_size):
        refs = [collection.document(doc_id) for doc_id in ids[start:start + options.batch_size]]
        for snap in read_documents(client, refs, None, options.policy, "reading the sample"):
            if not snap.exists:
                continue
            data = snapshot_data(snap)
            decision = job.decide(snap.id, data)
            changing = without_unchanged(decision.fields or {}, data)
            if decision.problem:
                needing.append((snap.id, decision.problem))
            elif changing:
                needing.append((snap.id, "would write " + ", ".join(sorted(changing))))
    return needing


def print_runs(run: RunOptions, shown: int = 20) -> int:
    """The newest runs in the ledger, any tool's (--list-runs)."""
    target, client = connect(run)
    runs = Ledger(client, run.ledger_collection, run.policy).runs()
    click.echo(f"Runs in {run.ledger_collection} of project {target.project}, newest first:")
    for line in runs_table(runs[:shown]):
        click.echo(line)
    if not runs:
        click.echo("(none)")
    return 0
