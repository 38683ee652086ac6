"""Prove the backfill on a random sample (or every item): read-only, never prompts.

Exit codes: 0 every checked item valid, 1 some invalid, 2 usage or configuration (an
empty or missing collection among them: nothing to validate), 3 fatal during the run,
130 interrupted.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

import click
from google.cloud import firestore

from backfill import console
from backfill.cli import (
    COMMAND_SETTINGS,
    ToolCommand,
    connect,
    options_of,
    output_options,
    run_boundary,
    run_options,
    shard_options,
    split_params,
    target_field_option,
    target_options,
    where_option,
)
from backfill.clock import file_stamp, iso, utc_now
from backfill.coverage import Coverage, coverage
from backfill.errors import ConfigurationError, ExitCode
from backfill.estimate import Estimate
from backfill.ledger import Ledger
from backfill.logs import close_run_log, open_run_log
from backfill.names import check_run_id
from backfill.option_specs import RunOptionFields, ValidationChoices
from backfill.options import RunOptions
from backfill.pager import empty_collection_message
from backfill.plan import given_target_field, new_run_id, recorded_target_field
from backfill.ranges import Shard
from backfill.run_view import headline, progress_line
from backfill.sampling import Sample, draw_sample
from backfill.sampling import describe as describe_sample
from backfill.shards import compute_boundaries, shard_from, shard_range
from backfill.stats import write_json
from backfill.target import Target
from backfill.target_field import TargetField
from backfill.where import described, empty_subset_message, narrowed
from normalizer import NORMALIZED_VERSION
from wardrobe.tool import FIELD_WORDS, RULES, WARDROBE_FIELD, version_option, wardrobe_options
from wardrobe.validation import ValidationResult, fetch_items, scan_items

SHOWN_INVALID = 20
ItemsRead = Iterator[tuple[str, dict[str, Any]]]


@dataclass
class Validation:
    """One validation as it goes: what it reads, what it found."""

    run: RunOptions
    choices: ValidationChoices
    target: Target
    client: firestore.Client
    field: TargetField
    started: datetime
    environment: str | None = None
    recorded: dict[str, Any] | None = None  # the run --run-id names, as the ledger has it
    cover: Coverage | None = None
    result: ValidationResult | None = None
    sample: Sample | None = None
    mode: str = "sample"
    estimate: Estimate | None = None  # what a sample shows of the whole collection
    estimate_line: str | None = None

    @property
    def subset(self) -> str:
        return described(self.run.conditions)


@click.command(cls=ToolCommand, context_settings=COMMAND_SETTINGS)
@target_options
@target_field_option(FIELD_WORDS)
@where_option
@output_options
@options_of(ValidationChoices)
@options_of(RunOptionFields, only="ledger_collection")
@shard_options
@version_option
@run_boundary
def main(**params: Any) -> int:
    """Check that items carry a valid, current normalized map (the field `normalized`, or
    --target-field; with --run-id, the field that run wrote)."""
    own, rest = split_params(ValidationChoices, params)
    choices, run = ValidationChoices(**own), wardrobe_options(run_options(rest))
    part = checked_part(run, choices)
    given_field = given_target_field(run)
    if choices.run_id is not None:
        check_run_id(choices.run_id, "--run-id")
    target, client = connect(run)
    validation = Validation(run, choices, target, client,
                            given_field or TargetField(WARDROBE_FIELD), utc_now())
    ledger = Ledger(client, run.ledger_collection, run.policy)
    validation.environment, shown_environment = environment_read(
        run, ledger, choices.run_id, target.collection)
    console.say(f"🔎 Validating {target.collection}{validation.subset} [{shown_environment}] "
                "(read-only)")
    console.say(f"🎯 Target: {target.describe()}")
    if choices.run_id is not None:
        read_recorded_run(validation, ledger, choices.run_id, given_field)
    console.say(f"🏷  Field: {validation.field.path}")
    validation.cover = measured_coverage(validation)
    check(validation, part)
    report = report_of(validation, new_run_id("validation"))
    path = write_report(validation, report)
    say_summary(validation, report, path)
    return ExitCode.ITEM_ERRORS if validation.result and validation.result.invalid \
        else ExitCode.OK


def checked_part(run: RunOptions, choices: ValidationChoices) -> Shard | None:
    """The option combinations of a validation, checked before anything is read."""
    if choices.check_all and click.get_current_context().get_parameter_source(
            "sample_size") is click.core.ParameterSource.COMMANDLINE:
        raise ConfigurationError("--all and --sample-size do not go together")
    part = shard_from(run.shard, run.shard_count)
    if part is not None and not choices.check_all:
        raise ConfigurationError("--shard goes with --all (a sample is drawn from everything)")
    return part


def read_recorded_run(validation: Validation, ledger: Ledger, run_id: str,
                      given_field: TargetField | None) -> None:
    """The run --run-id names, as the ledger has it, shown; a backfill's field checked."""
    entry = ledger.get(run_id)
    if entry is None:
        raise ConfigurationError(
            f"no run {run_id!r} in the ledger {validation.run.ledger_collection!r}")
    if entry.tool == "backfill":
        validation.field = recorded_target_field(given_field, entry, RULES)
    console.say(f"📒 {headline(entry)}")
    parts = ledger.shards(run_id) if entry.sharded else [entry]
    for progress in parts:
        console.say(f"   {progress_line(progress, entry)}")
    validation.recorded = {**entry.recorded(),
                           "shards": [p.recorded() for p in parts] if entry.sharded else None}


def measured_coverage(validation: Validation) -> Coverage:
    """How many items carry the field; none at all is refused (often a mistyped name)."""
    run, target = validation.run, validation.target
    items_read = narrowed(validation.client.collection(target.collection), run.conditions)
    cover = coverage(items_read, validation.field, run.policy, subset=bool(run.where),
                     page_size=run.batch_size)
    console.say(f"📊 Coverage: {cover.carrying} of {cover.total} items{validation.subset} "
                f"carry a `{validation.field.path}` map ({cover.percent:.1f}%)")
    if cover.total == 0:  # nothing to validate is not valid: often a mistyped name
        empty = (empty_subset_message(run.conditions) if run.where
                 else empty_collection_message(validation.client, target, run.policy))
        raise ConfigurationError(empty + ": nothing to validate")
    return cover


def check(validation: Validation, part: Shard | None) -> None:
    """Every item of the sample, or of the collection (or shard), checked."""
    assert validation.cover is not None
    items = (every_item(validation, part) if validation.choices.check_all
             else sampled_items(validation))
    validation.result = ValidationResult(validation.field)
    total = (validation.cover.total if validation.sample is None
             else len(validation.sample.ids))
    with console.progress(total, validation.run.quiet) as bar:
        for doc_id, item in items:
            validation.result.add(doc_id, item)
            bar.update(1)
    if validation.sample is not None:
        validation.estimate, validation.estimate_line = what_the_sample_shows(
            validation.result, validation.cover.total)


def every_item(validation: Validation, part: Shard | None) -> ItemsRead:
    """Every item, or every item of the shard (its range as the run recorded it)."""
    run, target, recorded = validation.run, validation.target, validation.recorded
    from_id = before_id = None
    if part is not None:
        if recorded is not None and "boundaries" in recorded:
            boundaries = list(recorded["boundaries"])
        else:
            boundaries, _ = compute_boundaries(validation.client, target.collection,
                                               part.count, run.policy, warn=console.say)
        from_id, before_id = shard_range(boundaries, part)
    validation.mode = "all" if part is None else f"shard {part}"
    items_read = narrowed(validation.client.collection(target.collection), run.conditions)
    return scan_items(items_read, run.policy, run.batch_size, from_id, before_id,
                      validation.field, parallel=run.parallel_reads)


def sampled_items(validation: Validation) -> ItemsRead:
    """The items of a random sample, drawn from the collection (or the subset)."""
    assert validation.cover is not None
    run, choices = validation.run, validation.choices
    collection = validation.client.collection(validation.target.collection)
    sample = draw_sample(narrowed(collection, run.conditions), choices.sample_size,
                         choices.seed, run.policy, exact=choices.exact_sample,
                         page_size=run.batch_size, total=validation.cover.total)
    console.say(describe_sample(sample, choices.sample_size))
    validation.sample, validation.mode = sample, "sample"
    return fetch_items(validation.client, collection, sample.ids, run.policy, validation.field)


def write_report(validation: Validation, report: dict[str, Any]) -> Path:
    """The report file, and the run log's lines of it."""
    assert validation.cover is not None and validation.result is not None
    result, cover, output_dir = validation.result, validation.cover, validation.run.output_dir
    output_dir.mkdir(parents=True, exist_ok=True)
    path = output_dir / f"validation_report_{file_stamp(utc_now())}.json"
    write_json(path, report)
    log = open_run_log(output_dir, "validation", report["run_id"])
    log.info("%s items checked (%s), %s valid, %s invalid %s; coverage %s/%s; report %s",
             result.checked, validation.mode, result.valid, len(result.invalid),
             dict(result.reasons), cover.carrying, cover.total, path)
    for invalid_item in result.invalid:
        log.warning("item %s invalid: %s", invalid_item["id"], ", ".join(invalid_item["reasons"]))
    close_run_log(log)
    return path


def report_of(validation: Validation, report_id: str) -> dict[str, Any]:
    """The report of a validation, as its file and --json have it."""
    assert validation.cover is not None and validation.result is not None
    run, target, choices = validation.run, validation.target, validation.choices
    result, cover, sample = validation.result, validation.cover, validation.sample
    estimate = validation.estimate
    return {
        "run_id": report_id, "recorded_run": validation.recorded, "tool": "validation",
        "environment": validation.environment,
        "project": target.project, "database": target.database,
        "collection": target.collection, "where": list(run.where),
        "target_field": validation.field.path,
        "normalized_version": NORMALIZED_VERSION,
        "started_at": iso(validation.started), "finished_at": iso(utc_now()),
        "mode": validation.mode,
        "sample_size": None if choices.check_all else choices.sample_size,
        "seed": choices.seed,
        "sample_method": sample.method if sample else None,
        "sample_reads": sample.reads if sample else None,
        "coverage": {"total": cover.total, "normalized": cover.carrying,
                     "percent": cover.percent},
        "checked": result.checked, "valid": result.valid,
        "invalid": len(result.invalid), "invalid_by_reason": dict(result.reasons),
        "invalid_items": result.invalid,
        "estimate": estimate.to_dict() if estimate is not None else None,
    }


def say_summary(validation: Validation, report: dict[str, Any], path: Path) -> None:
    """The final block; with --json, the report as one JSON object on stdout as well."""
    assert validation.cover is not None and validation.result is not None
    result, cover = validation.result, validation.cover
    lines = [console.RULE,
             f"{'✅' if not result.invalid else '❌'} Validation of "
             f"{validation.target.collection}{validation.subset}",
             f"{'Coverage:':<20}{cover.carrying}/{cover.total} ({cover.percent:.1f}%)",
             f"{'Checked:':<20}{result.checked} ({validation.mode})",
             f"{'Valid:':<20}{result.valid}",
             f"{'Invalid:':<20}{len(result.invalid)}"]
    lines += [f"  {reason}: {count}" for reason, count in result.reasons.most_common()]
    lines += [f"  ✗ {e['id']}: {', '.join(e['reasons'])}" for e in result.invalid[:SHOWN_INVALID]]
    if len(result.invalid) > SHOWN_INVALID:
        lines.append(f"  … and {len(result.invalid) - SHOWN_INVALID} more in the report")
    if validation.estimate_line is not None:
        lines.append(f"{'Estimate:':<20}{validation.estimate_line}")
    lines += [f"{'Report:':<20}{path}", console.RULE]
    click.echo("\n".join(lines), err=validation.run.as_json)
    if validation.run.as_json:
        click.echo(json.dumps(report, ensure_ascii=False, default=str))


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

