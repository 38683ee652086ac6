"""The run log: one file, appended by every tool, timestamped in UTC, errors in full."""

from __future__ import annotations

import logging
import logging.handlers
import time
from pathlib import Path

LOG_FILE_NAME = "backfill_production.log"


def open_run_log(output_dir: Path, tool: str, run_id: str) -> logging.Logger:
    """A logger for one run that appends to LOG_FILE_NAME in output_dir."""
    output_dir.mkdir(parents=True, exist_ok=True)
    logger = logging.getLogger(f"backfill.run.{run_id}")
    logger.setLevel(logging.INFO)
    logger.propagate = False
    file_handler = logging.FileHandler(output_dir / LOG_FILE_NAME, encoding="utf-8")
    formatter = logging.Formatter(
        f"%(asctime)s %(levelname)s {tool} {run_id}: %(message)s", "%Y-%m-%dT%H:%M:%SZ")
    formatter.converter = time.gmtime
    file_handler.setFormatter(formatter)
    # Buffered: a flush per line (every dropped value is logged) was measurable CPU.
    # Warnings and errors, and every 200 lines, go to the file at once.
    logger.addHandler(logging.handlers.MemoryHandler(
        capacity=200, flushLevel=logging.WARNING, target=file_handler))
    return logger


def close_run_log(logger: logging.Logger) -> None:
    for handler in list(logger.handlers):
        target = getattr(handler, "target", None)
        handler.close()  # a MemoryHandler flushes its buffer here, then lets go of target
        if target is not None:
            target.close()
        logger.removeHandler(handler)
