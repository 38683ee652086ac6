"""Prove the backfill on a random sample (or every item): read-only, never prompts.

Exit codes: 0 every checked item valid, 1 some invalid, 2 usage or configuration (an
empty or missing collection among them: nothing to validate), 3 fatal during the run,
130 interrupted.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from dataclasses import replace
from typing import Any

import click

from backfill import console
from backfill.cli import (
    COMMAND_SETTINGS,
    ToolCommand,
    connect,
    output_options,
    run_boundary,
    shard_options,
    target_field_option,
    target_options,
    version_option,
    where_option,
)
from backfill.errors import ConfigurationError, ExitCode
from backfill.estimate import Estimate
from backfill.ledger import DEFAULT_LEDGER_COLLECTION, Ledger, RunEntry
from backfill.logs import close_run_log, open_run_log
from backfill.names import check_run_id
from backfill.options import RunOptions
from backfill.pager import empty_collection_message
from backfill.plan import given_target_field, new_run_id, recorded_target_field
from backfill.run_view import headline, progress_line
from backfill.sampling import describe as describe_sample
from backfill.sampling import draw_sample
from backfill.shards import Shard, compute_boundaries, shard_from, shard_range
from backfill.stats import file_stamp, iso, utc_now, write_json
from backfill.target_field import DEFAULT_TARGET_FIELD, TargetField
from backfill.validation import (
    ValidationResult,
    coverage,
    fetch_items,
    scan_items,
)
from backfill.where import described, empty_subset_message, narrowed
from normalizer import NORMALIZED_VERSION

SHOWN_INVALID = 20


@click.command(cls=ToolCommand, context_settings=COMMAND_SETTINGS)
@target_options
@target_field_option
@where_option
@output_options
@click.option("--sample-size", type=click.IntRange(1), default=100, show_default=True,
              help="How many items to check, drawn at random from the whole collection "
                   "(or from the --where subset).")
@click.option("--all", "check_all", is_flag=True, help="Check every item instead of a sample.")
@click.option("--seed", type=int, help="Seed of the random sample, to repeat it.")
@click.option("--exact-sample", is_flag=True,
              help="Draw the sample by scanning every key (one read per item), whatever "
                   "the collection's size.")
@click.option("--run-id", help="Also report what this run recorded in the ledger.")
@click.option("--ledger-collection", default=DEFAULT_LEDGER_COLLECTION, show_default=True,
              help="Where runs record themselves.")
@shard_options
@version_option
@run_boundary
def main(sample_size: int, check_all: bool, seed: int | None, exact_sample: bool,
         run_id: str | None,
         ledger_collection: str, shard: str | None, shard_count: int | None,
         **options: Any) -> int:
    """Check that items carry a valid, current normalized map (the field `normalized`, or
    --target-field; with --run-id, the field that run wrote)."""
    run = RunOptions.from_click(options)
    if check_all and click.get_current_context().get_parameter_source(
            "sample_size") is click.core.ParameterSource.COMMANDLINE:
        raise ConfigurationError("--all and --sample-size do not go together")
    part = shard_from(shard, shard_count)
    if part is not None and not check_all:
        raise ConfigurationError("--shard goes with --all (a sample is drawn from everything)")
    given_field = given_target_field(run)
    if run_id is not None:
        check_run_id(run_id, "--run-id")
    run = replace(run, ledger_collection=ledger_collection)
    target, client = connect(run)
    collection = client.collection(target.collection)
    items_read = narrowed(collection, run.conditions)
    subset = described(run.conditions)
    started = utc_now()
    ledger = Ledger(client, ledger_collection, run.policy)
    environment, shown_environment = environment_read(run, ledger, run_id, target.collection)
    console.say(f"🔎 Validating {target.collection}{subset} [{shown_environment}] "
                "(read-only)")
    console.say(f"🎯 Target: {target.describe()}")
    entry, recorded, field = recorded_run(ledger, run_id, given_field)
    console.say(f"🏷  Field: {field.path}")
    cover = coverage(items_read, field, run.policy, subset=bool(run.where),
                     page_size=run.batch_size)
    console.say(f"📊 Coverage: {cover.normalized} of {cover.total} items{subset} carry a "
                f"`{field.path}` map ({cover.percent:.1f}%)")
    if cover.total == 0:  # nothing to validate is not valid: often a mistyped name
        empty = (empty_subset_message(run.conditions) if run.where
                 else empty_collection_message(client, target, run.policy))
        raise ConfigurationError(empty + ": nothing to validate")
    result = ValidationResult(field)
    sample = None
    if check_all:
        boundaries = None if entry is None else entry.boundaries
        items, mode = items_of_all(client, target.collection, items_read, run, field, part,
                                   boundaries)
    else:
        sample = draw_sample(items_read, sample_size, seed, run.policy, exact=exact_sample,
                             page_size=run.batch_size, total=cover.total)
        console.say(describe_sample(sample, sample_size))
        items = fetch_items(client, collection, sample.ids, run.policy, field)
        mode = "sample"
    with console.progress(cover.total if sample is None else len(sample.ids),
                          run.quiet) as bar:
        for doc_id, item in items:
            result.add(doc_id, item)
            bar.update(1)
    return told(run, target.collection, subset, result, cover, mode, sample, {
        "recorded_run": recorded, "environment": environment,
        "project": target.project, "database": target.database,
        "collection": target.collection, "where": list(run.where), "target_field": field.path,
        "normalized_version": NORMALIZED_VERSION, "started_at": iso(started),
        "sample_size": None if check_all else sample_size, "seed": seed})


def recorded_run(ledger: Ledger, run_id: str | None, given_field: TargetField | None,
                 ) -> tuple[RunEntry | None, dict[str, Any] | None, TargetField]:
    """--run-id: the run as recorded (for the report, its shards' entries among it), said;
    and the field it wrote, which this validation checks."""
    field = given_field or TargetField(DEFAULT_TARGET_FIELD)
    if run_id is None:
        return None, None, field
    entry = ledger.get(run_id)
    if entry is None:
        raise ConfigurationError(f"no run {run_id!r} in the ledger {ledger.collection.id!r}")
    if entry.tool == "backfill":
        field = recorded_target_field(given_field, entry)
    console.say(f"📒 {headline(entry)}")
    parts = ledger.shards(run_id) if entry.sharded else [entry]
    recorded = {**entry.recorded(),
                "shards": [p.recorded() for p in parts] if entry.sharded else None}
    for progress in parts:
        console.say(f"   {progress_line(progress, entry)}")
    return entry, recorded, field


def items_of_all(client: Any, collection: str, items_read: Any, run: RunOptions,
                 field: TargetField, part: Shard | None,
                 boundaries: Sequence[str] | None) -> tuple[Iterable[Any], str]:
    """--all: every item (of the shard, by the boundaries its run recorded if any)."""
    from_id = before_id = None
    if part is not None:
        if boundaries is None:
            boundaries, _ = compute_boundaries(client, collection, part.count, run.policy,
                                               warn=console.say)
        from_id, before_id = shard_range(list(boundaries), part)
    items = scan_items(items_read, run.policy, run.batch_size, from_id, before_id, field,
                       parallel=run.parallel_reads)
    return items, "all" if part is None else f"shard {part}"


def told(run: RunOptions, collection: str, subset: str, result: ValidationResult,
         cover: Any, mode: str, sample: Any, given: dict[str, Any]) -> int:
    """The report written, the log, the summary said; the exit code."""
    estimate, estimate_line = None, None
    if sample is not None:
        estimate, estimate_line = what_the_sample_shows(result, cover.total)
    report_id = new_run_id("validation")
    report = {
        "run_id": report_id, "recorded_run": given["recorded_run"], "tool": "validation",
        **{name: value for name, value in given.items()
           if name not in ("recorded_run", "sample_size", "seed")},
        "finished_at": iso(utc_now()), "mode": mode,
        "sample_size": given["sample_size"], "seed": given["seed"],
        "sample_method": sample.method if sample else None,
        "sample_reads": sample.reads if sample else None,
        "coverage": {"total": cover.total, "normalized": cover.normalized,
                     "percent": cover.percent},
        "checked": result.checked, "valid": result.valid,
        "invalid": len(result.invalid), "invalid_by_reason": dict(result.reasons),
        "invalid_items": result.invalid,
        "estimate": estimate.to_dict() if estimate is not None else None,
    }
    run.output_dir.mkdir(parents=True, exist_ok=True)
    path = run.output_dir / f"validation_report_{file_stamp(utc_now())}.json"
    write_json(path, report)
    log = open_run_log(run.output_dir, "validation", report_id)
    log.info("%s items checked (%s), %s valid, %s invalid %s; coverage %s/%s; report %s",
             result.checked, mode, result.valid, len(result.invalid), dict(result.reasons),
             cover.normalized, cover.total, path)
    for invalid_item in result.invalid:
        log.warning("item %s invalid: %s", invalid_item["id"], ", ".join(invalid_item["reasons"]))
    close_run_log(log)
    lines = summary(collection, subset, result, cover, mode)
    if estimate_line is not None:
        lines.append(f"{'Estimate:':<20}{estimate_line}")
    lines += [f"{'Report:':<20}{path}", console.RULE]
    click.echo("\n".join(lines), err=run.as_json)
    if run.as_json:
        click.echo(json.dumps(report, ensure_ascii=False, default=str))
    return ExitCode.ITEM_ERRORS if result.invalid else ExitCode.OK


def summary(collection: str, subset: str, result: ValidationResult, cover: Any,
            mode: str) -> list[str]:
    lines = [console.RULE,
             f"{'✅' if not result.invalid else '❌'} Validation of {collection}{subset}",
             f"{'Coverage:':<20}{cover.normalized}/{cover.total} ({cover.percent:.1f}%)",
             f"{'Checked:':<20}{result.checked} ({mode})",
             f"{'Valid:':<20}{result.valid}",
             f"{'Invalid:':<20}{len(result.invalid)}"]
    lines += [f"  {reason}: {count}" for reason, count in result.reasons.most_common()]
    lines += [f"  ✗ {e['id']}: {', '.join(e['reasons'])}" for e in result.invalid[:SHOWN_INVALID]]
    if len(result.invalid) > SHOWN_INVALID:
        lines.append(f"  … and {len(result.invalid) - SHOWN_INVALID} more in the report")
    return lines


def environment_read(run: RunOptions, ledger: Ledger, run_id: str | None,
                     collection: str) -> tuple[str | None, str]:
    """The environment this validation read, and how it is shown: the one given
    (--environment, BACKFILL_ENVIRONMENT), else the one the ledger recorded for the run
    (--run-id) or for the collection's latest run; never the option's default, which says
    nothing of the database read."""
    if "environment" in run.explicit:
        return run.environment, run.environment
    entries = ([ledger.get(run_id)] if run_id is not None else
               [entry for entry in ledger.runs() if entry.collection == collection])
    for entry in entries:
        if entry is not None and entry.environment:
            found = entry.environment
            return found, f"{found}, as run {entry.run_id} recorded it"
    return None, "environment not given (--environment)"


def what_the_sample_shows(result: ValidationResult, total: int) -> tuple[Estimate | None, str]:
    """The sample's result as a statement about the whole collection: an exact bound
    (every method draws each item with the same chance); the exact count when the sample
    is everything."""
    if result.checked >= total:
        return None, f"every item was checked: {len(result.invalid)} invalid of {total:,}"
    estimate = Estimate(invalid=len(result.invalid), sampled=result.checked, total=total)
    return estimate, estimate.sentence()

