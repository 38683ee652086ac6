#!/usr/bin/env python3
"""Roll the backfill back: remove the field, or undo exactly one run (--run-id).
Installed, the same command is `wardrobe-rollback`.

A shim for the runbook's command in a checkout: the command itself is
wardrobe.commands.rollback."""

from __future__ import annotations

import sys
from pathlib import Path

# Run by path from a checkout, this folder is on the path, not the checkout's root:
# the checkout's own package comes first (installed, nothing here is needed).
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from wardrobe.commands.rollback import main

__all__ = ["main"]

if __name__ == "__main__":
    main()
