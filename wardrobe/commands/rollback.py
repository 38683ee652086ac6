"""Remove the `normalized` field from every item that has it (null included).

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
from backfill.commands.task import print_runs
from backfill.option_specs import GROUP_ROLLBACK, RollbackChoices, RunOptionFields
from backfill.options import RunOptions
from backfill.target_field import TargetField
from backfill.undo import UndoRunJob
from wardrobe.jobs import RollbackJob
from wardrobe.tally import WARDROBE_EXTRAS
from wardrobe.tool import FIELD_WORDS, version_option, wardrobe_options

LABELS = console.Labels(title="wardrobe rollback", done="rolled back",
                        would="would roll back", sample="Would roll back",
                        show_sample_fields=False,
                        script="scripts/backfill_rollback.py")


@click.command(cls=ToolCommand, context_settings=COMMAND_SETTINGS)
@writing_tool_options(FIELD_WORDS)
@options_of(RunOptionFields, GROUP_ROLLBACK)
@options_of(RollbackChoices)
@version_option
@run_boundary
def main(list_runs: bool, **options: Any) -> int:
    """Roll the backfill back: delete `normalized` from every item that has it, or with
    --run-id undo exactly one backfill run."""
    run = wardrobe_options(run_options(options))
    if list_runs:
        return print_runs(run)
    return execute_writing_run("rollback", make_job, run, LABELS, stats_prefix="rollback_stats",
                               extras=WARDROBE_EXTRAS)


def make_job(options: RunOptions, field: TargetField | None, client: Any = None) -> Job:
    """An exact undo of one run (--run-id, or as a resumed run recorded it), else removal."""
    if options.undo_run_id is not None:
        return UndoRunJob(options.undo_run_id, options.ledger_collection, field,
                          where=options.conditions)
    assert field is not None, "the wardrobe's tools write a field"
    return RollbackJob(field)
