"""How the operator types a tool here, for the commands the tools print (a resume, a
status): the installed console script when this process is one (`pip install .`),
else the runbook's `python3 PATH` in a checkout."""

from __future__ import annotations

import sys
from pathlib import Path

# The runbook's script in a checkout, and the same command installed.
INSTALLED = {
    "run_backfill_production.py": "wardrobe-backfill",
    "scripts/backfill_validation.py": "wardrobe-validate",
    "scripts/backfill_rollback.py": "wardrobe-rollback",
    "scripts/backfill_control.py": "wardrobe-control",
    "scripts/vocabulary_report.py": "wardrobe-vocabulary",
    "-m backfill": "firestore-backfill",  # any task (backfill.commands.task)
}


def typed(script: str) -> str:
    """`script` (a key of INSTALLED) as the operator types it in this console."""
    if Path(sys.argv[0]).name in INSTALLED.values():
        return INSTALLED[script]
    return f"python3 {script}"
