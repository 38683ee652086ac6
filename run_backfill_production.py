#!/usr/bin/env python3
"""Write the canonical `normalized` tags onto every wardrobe item in Firestore.

Runbook: --dry-run first; then the real run, which asks for a typed YES in production.
Exit codes: 0 clean, 1 item errors or aborted, 2 usage or configuration, 3 fatal during
the run, 130 interrupted.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

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
from backfill.jobs import BackfillJob
from normalizer import NORMALIZED_VERSION

LABELS = console.Labels(title="wardrobe backfill", done="updated", would="would update",
                        sample="Would update",
                        script="run_backfill_production.py")


@click.command(context_settings={"help_option_names": ["-h", "--help"]})
@target_options
@output_options
@writing_options
@shard_options
@click.option("--force", is_flag=True, help="Rewrite items that are already up to date.")
@click.version_option(f"{__version__} (normalizer {NORMALIZED_VERSION})")
@run_boundary
def main(force: bool, **options: Any) -> int:
    """Backfill `normalized` onto every item of the wardrobe collection."""
    return execute_writing_run(BackfillJob(force=force), RunOptions(**options), LABELS,
                               stats_prefix="backfill_stats")


if __name__ == "__main__":
    main()
