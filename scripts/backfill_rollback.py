#!/usr/bin/env python3
"""Remove the `normalized` field from every item that has it (null included).

Runbook: --dry-run first; then the real run, which asks for a typed YES in production.
Exit codes: 0 clean, 1 item errors or aborted, 2 usage or configuration, 3 fatal during
the run, 130 interrupted.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import click

from backfill import __version__, console
from backfill.cli import (
    RunOptions,
    execute_writing_run,
    output_options,
    run_boundary,
    shard_options,
    target_options,
    writing_options,
)
from backfill.jobs import RollbackJob
from normalizer import NORMALIZED_VERSION

LABELS = console.Labels(title="wardrobe rollback", done="rolled back",
                        would="would roll back", sample="Would roll back",
                        show_sample_fields=False,
                        script="scripts/backfill_rollback.py")


@click.command(context_settings={"help_option_names": ["-h", "--help"]})
@target_options
@output_options
@writing_options
@shard_options
@click.version_option(f"{__version__} (normalizer {NORMALIZED_VERSION})")
@run_boundary
def main(**options: Any) -> int:
    """Roll the backfill back: delete `normalized` from every item that has it."""
    return execute_writing_run(RollbackJob(), RunOptions(**options), LABELS,
                               stats_prefix="rollback_stats")


if __name__ == "__main__":
    main()
