#!/usr/bin/env python3
"""Prove the backfill on a random sample (or every item): read-only, never prompts.
Installed, the same command is `wardrobe-validate`.

A shim for the runbook's command in a checkout: the command itself is
wardrobe.commands.validate."""

from __future__ import annotations

import sys
from pathlib import Path

# Run by path from a checkout, this folder is on the path, not the checkout's root:
# the checkout's own package comes first (installed, nothing here is needed).
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from wardrobe.commands.validate import main

__all__ = ["main"]

if __name__ == "__main__":
    main()
