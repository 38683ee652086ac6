"""The run log: one file, appended by every tool, timestamped in UTC, errors in full."""

from __future__ import annotations

import logging
import time
from pathlib import Path

LOG_FILE_NAME = "backfill_production.log"


def open_run_log(output_dir: Path, tool: str, run_id: str) -> logging.Logger:
    """A logger for one run that appends to LOG_FILE_NAME in output_dir."""
    output_dir.mkdir(parents=True, exist_ok=True)
    logger = logging.getLogger(f"backfill.run.{run_id}")
    logger.setLevel(logging.INFO)
    logger.propagate = False
    handler = logging.FileHandler(output_dir / LOG_FILE_NAME, encoding="utf-8")
    formatter = logging.Formatter(
        f"%(asctime)s %(levelname)s {tool} {run_id}: %(message)s", "%Y-%m-%dT%H:%M:%SZ")
    formatter.converter = time.gmtime
    handler.setFormatter(formatter)
    logger.addHandler(handler)
    return logger


def close_run_log(logger: logging.Logger) -> None:
    for handler in list(logger.handlers):
        handler.close()
        logger.removeHandler(handler)
