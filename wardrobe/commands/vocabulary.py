"""Which tags the normalizer's tables do not know yet, counted from the real items.

Read-only. For each facet: the unknown terms with their counts, a few example item IDs
and near misses (known terms one edit away), the most frequent canonical terms, and the
share of items whose facet is empty. A table on the console; CSV and JSON files in
--output-dir. Exit codes: 0 done, 2 usage or configuration (an empty collection or
subset: nothing to report, often a mistyped name), 3 fatal, 130 interrupted.
"""

from __future__ import annotations

import csv
import json
from pathlib import Path
from typing import Any

import click

from backfill import console
from backfill.cli import (
    COMMAND_SETTINGS,
    ToolCommand,
    connect,
    options_of,
    output_options,
    run_boundary,
    target_options,
    where_option,
)
from backfill.clock import file_stamp, utc_now
from backfill.errors import ConfigurationError, ExitCode
from backfill.option_specs import VocabularyChoices
from backfill.options import RunOptions
from backfill.pager import empty_collection_message
from backfill.sampling import describe as describe_sample
from backfill.sampling import draw_sample
from backfill.stats import write_json
from backfill.where import described, empty_subset_message, narrowed
from normalizer import FACETS
from wardrobe.tool import version_option
from wardrobe.validation import fetch_items, scan_items
from wardrobe.vocabulary import VocabularyReport, near_misses


@click.command(cls=ToolCommand, context_settings=COMMAND_SETTINGS)
@target_options
@where_option
@output_options
@options_of(VocabularyChoices)
@version_option
@run_boundary
def main(sample_size: int | None, seed: int | None, exact_sample: bool, top: int,
         **options: Any) -> int:
    """Report the unknown and the most frequent tags, to grow the tables from real data."""
    run = RunOptions(**options)
    target, client = connect(run)
    collection = client.collection(target.collection)
    items_read = narrowed(collection, run.conditions)
    console.say(f"📚 Vocabulary of {target.collection}{described(run.conditions)} "
                f"(read-only): {target.describe()}")
    if sample_size:
        sample = draw_sample(items_read, sample_size, seed, run.policy, exact=exact_sample,
                             page_size=run.batch_size)
        console.say(describe_sample(sample, sample_size))
        items = fetch_items(client, collection, sample.ids, run.policy)
    else:
        items = scan_items(items_read, run.policy, run.batch_size, parallel=run.parallel_reads)
    report = VocabularyReport()
    with console.progress(None, run.quiet) as bar:
        for doc_id, item in items:
            report.add(doc_id, item)
            bar.update(1)
    if not report.items:  # as validation: nothing to report on is often a mistyped name
        empty = (empty_subset_message(run.conditions) if run.where
                 else empty_collection_message(client, target, run.policy))
        raise ConfigurationError(empty + ": nothing to report")

    data = report.to_dict()
    json_path, csv_path = write_files(run, {
        "collection": target.collection, "where": list(run.where), "project": target.project,
        "sample_size": sample_size, "seed": seed, **data})

    lines = [console.RULE, f"Vocabulary of {report.items} items of {target.collection}"]
    for facet in FACETS:
        lines.append(f"\n{facet} (empty on {report.empty_share(facet):.1f}% of items)")
        unknown = report.unknown[facet].most_common(top)
        lines.append(f"  {'unknown term':<28}{'count':>7}  examples / near misses")
        for term, count in unknown:
            close = near_misses(facet, term)
            hint = " ".join(report.examples[facet][term]) + (
                f"  (near: {', '.join(close)})" if close else "")
            lines.append(f"  {term[:27]:<28}{count:>7}  {hint}")
        if not unknown:
            lines.append("  (none)")
        frequent = ", ".join(f"{t} {c}" for t, c in report.canonical[facet].most_common(top))
        lines.append(f"  most frequent: {frequent or '(none)'}")
    lines += [f"\nDropped values: {sum(report.dropped.values())}",
              f"Files: {csv_path}, {json_path}", console.RULE]
    click.echo("\n".join(lines), err=run.as_json)
    if run.as_json:
        click.echo(json.dumps(data, ensure_ascii=False))
    return ExitCode.OK


def write_files(run: RunOptions, data: dict[str, Any]) -> tuple[Path, Path]:
    """The report as JSON and its terms as CSV, in --output-dir."""
    run.output_dir.mkdir(parents=True, exist_ok=True)
    stamp = file_stamp(utc_now())
    json_path = run.output_dir / f"vocabulary_report_{stamp}.json"
    csv_path = run.output_dir / f"vocabulary_report_{stamp}.csv"
    write_json(json_path, data)
    with csv_path.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(["facet", "kind", "term", "count", "examples", "near_misses"])
        for row in data["terms"]:
            writer.writerow([spreadsheet_safe(str(cell)) for cell in (
                row["facet"], row["kind"], row["term"], row["count"],
                " ".join(row["examples"]), "; ".join(row["near_misses"]))])
    return json_path, csv_path


FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")


def spreadsheet_safe(cell: str) -> str:
    """A cell a spreadsheet will not run as a formula (OWASP's advice on CSV injection):
    one that starts with = + - @, a tab or a carriage return gets a leading quote."""
    return "'" + cell if cell.startswith(FORMULA_STARTS) else cell

