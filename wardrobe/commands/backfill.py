"""Write the canonical `normalized` tags onto every wardrobe item in Firestore.

Runbook: --dry-run first; then the real run, which asks for a typed YES in production.
Exit codes: 0 clean, 1 item errors or aborted, 2 usage or configuration, 3 fatal during
the run, 130 interrupted.
"""

from __future__ import annotations

from typing import Any

import click

from backfill import console
from backfill.batch import Job
from backfill.cli import (
    COMMAND_SETTINGS,
    ToolCommand,
    execute_writing_run,
    options_of,
    run_boundary,
    run_options,
    writing_tool_options,
)
from backfill.option_specs import GROUP_BACKFILL, RunOptionFields
from backfill.options import RunOptions
from backfill.target_field import TargetField
from wardrobe.jobs import BackfillJob
from wardrobe.tally import WARDROBE_EXTRAS
from wardrobe.tool import FIELD_WORDS, version_option, wardrobe_options

LABELS = console.Labels(title="wardrobe backfill", done="updated", would="would update",
                        sample="Would update",
                        script="run_backfill_production.py")


@click.command(cls=ToolCommand, context_settings=COMMAND_SETTINGS)
@writing_tool_options(FIELD_WORDS)
@options_of(RunOptionFields, GROUP_BACKFILL)
@version_option
@run_boundary
def main(**options: Any) -> int:
    """Backfill the normalized tags onto every item of the wardrobe collection (the field
    `normalized`, or --target-field)."""
    return execute_writing_run("backfill", make_job, wardrobe_options(run_options(options)),
                               LABELS, stats_prefix="backfill_stats", extras=WARDROBE_EXTRAS)


def make_job(options: RunOptions, field: TargetField | None, client: Any = None) -> Job:
    """A backfill, as its own options (--force, ...) say."""
    assert field is not None, "the wardrobe's tools write a field"
    return BackfillJob(field, **options.of_group(GROUP_BACKFILL))

