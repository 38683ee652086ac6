#!/usr/bin/env python3
"""Write the canonical `normalized` tags onto every wardrobe item in Firestore.

Runbook: --dry-run first; then the real run, which asks for a typed YES in production.
Exit codes: 0 clean, 1 item errors or aborted, 2 usage or configuration, 3 fatal during
the run, 130 interrupted. Installed, the same command is `wardrobe-backfill`.

A shim for the runbook's command in a checkout: the command itself is
wardrobe.commands.backfill."""

from __future__ import annotations

from wardrobe.commands.backfill import main

__all__ = ["main"]

if __name__ == "__main__":
    main()
