"""What the operator sees. Progress and logs go to stderr; results and --json to stdout."""

from __future__ import annotations

import json
import shlex
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import click
from google.cloud.firestore_v1 import DELETE_FIELD, SERVER_TIMESTAMP
from tqdm import tqdm

from backfill.batch import BatchOutcome
from backfill.health_url import parse_health_urls, shown_urls
from backfill.invocation import typed
from backfill.log_format import fields_for_next_line, record
from backfill.option_specs import RUN_SPECS, option_name
from backfill.options import RunOptions
from backfill.stats import RunStats
from backfill.status import GateState, RunStatus
from backfill.target import Target

RULE = "=" * 60


@dataclass(frozen=True)
class Labels:
    """The words one tool uses for its writes."""

    title: str  # "wardrobe backfill"
    done: str  # "updated"
    would: str  # "would update"
    sample: str  # "Would update"
    script: str  # the runbook's script: "run_backfill_production.py" (backfill.invocation)
    show_sample_fields: bool = True  # a dry run's samples show what would be written
    then: str = ""  # what follows the script in a command (a task's `run MODULE:CLASS`)

    def resume_command(self, options: RunOptions, run_id: str, shard: object = None) -> str:
        """The command that carries this run on, complete: what the run is (collection,
        field, mode, force, ...) comes from the ledger; where the ledger is, from here."""
        words = [typed(self.script), *([self.then] if self.then else []),
                 *retyped_words(options),
                 f"--resume {shlex.quote(run_id)}"]
        if shard:
            words.append(f"--shard {shard}")
        return " ".join(words + health_gate_words(options))


def retyped_words(options: RunOptions) -> list[str]:
    """Where the run is and where its ledger is, as typed: the options declared to be typed
    again always, or when not their default (backfill.option_specs)."""
    return [f"{option_name(name)} {shlex.quote(str(getattr(options, name)))}"
            for name, spec, default in RUN_SPECS
            if spec.retyped == "always" or
            (spec.retyped == "changed" and getattr(options, name) != default)]


def health_gate_words(options: RunOptions) -> list[str]:
    """The health gate of a resume, as typed: URLs given in the environment are there again
    in the same console; a URL with a secret (a query string, credentials) is shown
    without it, and the run says what to add (secret_gate_note)."""
    words: list[str] = []
    if options.no_throttle:
        words.append("--no-throttle")
    elif options.throttle_url and "throttle_url" not in options.from_environment:
        words += [f"--throttle-url {shlex.quote(url.url if not url.has_secret else url.shown)}"
                  for url in parse_health_urls(options.throttle_url)]
    for name, spec, _ in RUN_SPECS:  # the gate's settings given, as typed
        if spec.retyped == "gated" and options.throttle_url and name in options.explicit:
            words.append(f"{option_name(name)} {getattr(options, name):g}")
    return words


def secret_gate_note(options: RunOptions) -> str | None:
    if "throttle_url" in options.from_environment or not any(
            url.has_secret for url in parse_health_urls(options.throttle_url)):
        return None
    return ("   (add the query string or credentials of each --throttle-url that had them: "
            "they are not shown, as they may hold a secret)")


def webhook_note(options: RunOptions) -> str | None:
    """What a resume typed as printed would lack: the webhooks. They are not carried (a
    webhook's URL is its secret) nor recorded whole; a variable is there again in the
    same console."""
    if not options.notify_url or "notify_url" in options.from_environment:
        return None
    hosts = ", ".join(shown_urls(options.notify_url))
    return (f"   (add --notify-url for each webhook this run tells ({hosts}): its URL is not "
            "shown, as it may hold a secret; typed as printed, the resumed run tells no "
            "webhook)")


def resume_notes(options: RunOptions) -> tuple[str, ...]:
    """The lines said under a printed resume command: what to add to it."""
    return tuple(note for note in (secret_gate_note(options), webhook_note(options))
                 if note is not None)


def say(message: str = "") -> None:
    """A progress line, on stderr, without breaking a progress bar."""
    tqdm.write(message, file=sys.stderr)


def mode_tag(target: Target, dry_run: bool) -> str:
    return "[DRY RUN]" if dry_run else f"[{target.environment.upper()}]"


def banner(target: Target, labels: Labels, dry_run: bool) -> None:
    """The first lines, before the run is known (its batch size, from a resumed run's
    record, is said once it is: WritingRun.open)."""
    say(f"🌍 Environment: {target.environment}")
    say(f"🚀 Starting {labels.title} {mode_tag(target, dry_run)}")
    say(f"🎯 Target: {target.describe()}")


@contextmanager
def progress(total: int | None, quiet: bool, done: int = 0) -> Iterator[tqdm[Any]]:
    """A progress bar with total and ETA, on stderr, only when stderr is a terminal.
    `done`: what earlier sessions of the run did, shown as done and left out of the rate."""
    bar: tqdm[Any] = tqdm(total=total, initial=done, unit="item", file=sys.stderr,
                          dynamic_ncols=True, disable=quiet or not sys.stderr.isatty())
    try:
        yield bar
    finally:
        bar.close()


def summary(stats: RunStats, labels: Labels, extra: dict[str, str], as_json: bool) -> None:
    """The final block; with --json, the stats as one JSON object on stdout instead."""
    if stats.status == RunStatus.COMPLETED:
        headline = "✅ Complete" if not stats.error_count else "⚠️  Finished with errors"
    else:
        headline = f"❌ Stopped: {stats.status}"
    written = (labels.would if stats.dry_run else labels.done).capitalize()
    rows = [
        ("Duration", f"{stats.duration_seconds:.1f}s"),
        ("Processed", str(stats.processed)),
        (written, str(stats.would_update if stats.dry_run else stats.updated)),
        ("Skipped", str(stats.skipped)),
        ("Errors", str(stats.error_count)),
        ("Success rate", f"{stats.success_rate:.1f}%"),
        ("Throughput", f"{stats.items_per_second:,.1f} items/s"),
    ]
    if stats.conflicts_retried:
        rows.append(("Conflicts retried", str(stats.conflicts_retried)))
    if stats.vanished:
        rows.append(("Deleted meanwhile", str(stats.vanished)))
    if stats.left_subset:
        rows.append(("Left the subset", str(stats.left_subset)))
    rows += stats.tally.rows()
    if stats.throttle_spells:
        rows.append(("Throttled", f"{stats.throttled_seconds:.1f}s in "
                                  f"{stats.throttle_spells} spell(s)"))
    if stats.paused_seconds:
        rows.append(("Paused", f"{stats.paused_seconds:.1f}s"))
    if stats.stopped_because:
        rows.append(("Stopped because", stats.stopped_because))
    rows += list(extra.items())
    lines = [RULE, f"{headline}: {labels.title} [{'DRY RUN' if stats.dry_run else 'WRITES'}]"]
    lines += [f"{name + ':':<20}{value}" for name, value in rows]
    for error in stats.errors[:10]:
        lines.append(f"  ✗ {error['id']}: {error['error']}")
    if stats.error_count > 10:
        lines.append(f"  … and {stats.error_count - 10} more (in the stats file and the log)")
    lines.append(RULE)
    shown = dict(rows)
    if record(lines[1], "NOTICE" if stats.status == RunStatus.COMPLETED else "ERROR",
              summary=shown, errors=stats.errors[:10],
              **({"stats": stats.to_dict()} if as_json else {})):
        return  # one object, for a log collector (backfill.log_format)
    text = "\n".join(lines)
    if as_json:
        click.echo(text, err=True)
        click.echo(json.dumps(stats.to_dict(), ensure_ascii=False, default=str))
    else:
        click.echo(text)


SAMPLE_CHARACTERS = 300  # of a sample's values: a line, not a megabyte


def _cut(text: str) -> str:
    return text if len(text) <= SAMPLE_CHARACTERS else text[:SAMPLE_CHARACTERS] + " …"


def shown_value(value: Any) -> str:
    """A value JSON has no form for, in a dry run's sample: what a write would do."""
    if value is DELETE_FIELD:
        return "<deleted>"
    if value is SERVER_TIMESTAMP:
        return "<the write's time>"
    return str(value)


class ConsoleReporter:
    """What a writing run tells the operator, on this console (backfill.writing_run's
    Reporter)."""

    def __init__(self, labels: Labels, quiet: bool, as_json: bool,
                 resume_notes: tuple[str, ...] = ()) -> None:
        self.labels, self.quiet, self.as_json = labels, quiet, as_json
        self.resume_notes = resume_notes  # said under a resume command (resume_notes)

    def said(self, line: str) -> None:
        say(line)

    @contextmanager
    def progress(self, total: int, done: int) -> Iterator[Callable[[int], None]]:
        with progress(total, self.quiet, done) as bar:
            yield bar.update

    def batch_done(self, outcome: BatchOutcome, dry_run: bool, held: str | None) -> str:
        labels = self.labels
        line = (f"Batch {outcome.number}: {outcome.processed} processed, "
                f"{outcome.written} {labels.would if dry_run else labels.done}, "
                f"{outcome.skipped} skipped, {len(outcome.errors)} errors")
        if outcome.conflicts_retried:
            line += f", {outcome.conflicts_retried} conflicts retried"
        if held:
            line += f" [held: {held}]"
        fields_for_next_line(batch=outcome.number, processed=outcome.processed,
                             written=outcome.written, skipped=outcome.skipped,
                             errors=len(outcome.errors), dry_run=dry_run)
        say(line)
        if dry_run and outcome.number <= 2:
            for sample in outcome.samples:
                written = json.dumps(sample.fields, ensure_ascii=False, default=shown_value)
                shown = f": {_cut(written)}" if labels.show_sample_fields else ""
                say(f"  {labels.sample} {sample.doc_id}{shown}")
        return line

    def gate_changed(self, state: GateState, why: str | None) -> str:
        line = {GateState.THROTTLED: f"⏸  Throttled: {why}: nothing new is read or written "
                                     "until it is healthy again",
                GateState.PAUSED: f"⏸  Paused ({why}): nothing new is read or written until "
                                  "`continue`",
                GateState.RUNNING: "▶️  Going on"}[state]
        say(line)
        return line

    def finished(self, stats: RunStats, extra: dict[str, str],
                 resume_command: str | None) -> None:
        summary(stats, self.labels, extra, self.as_json)
        if resume_command is not None:
            say(f"↩️  To continue from the checkpoint: {resume_command}")
            for note in self.resume_notes:
                say(note)
