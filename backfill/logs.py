"""The run log: one file, appended by every tool, timestamped in UTC, errors in full; a
line per batch, not per item (an item's detail is DEBUG, below its level). A log over
LOG_ROTATE_BYTES is rotated when a run opens it (LOG_FILE_NAME.1, .2, ... up to
LOG_BACKUPS): the log a run writes to always has the same name."""

from __future__ import annotations

import logging
import time
import warnings
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TextIO

from backfill.streams import when_gone

LOG_FILE_NAME = "backfill_production.log"
LOG_ROTATE_BYTES = 5 * 1024 * 1024
LOG_BACKUPS = 5
_deferred_warnings: list[str] = []
_forget_console: dict[str, Callable[[], None]] = {}  # by logger name: streams.when_gone's


def _keep_warning(message: Warning | str, category: type[Warning], filename: str, lineno: int,
                  file: TextIO | None = None, line: str | None = None) -> None:
    _deferred_warnings.append(" ".join(str(message).split()) +
                              f" ({category.__name__}, {filename}:{lineno})")


def defer_warnings() -> None:
    """Python warnings are kept for the next run log instead of being printed."""
    warnings.showwarning = _keep_warning


def _write_deferred_warnings(logger: logging.Logger) -> None:
    while _deferred_warnings:
        logger.warning("python warning: %s", _deferred_warnings.pop(0))


def rotate(path: Path) -> None:
    """`path` moved to .1 (.1 to .2, ...; the oldest dropped) when it is over
    LOG_ROTATE_BYTES. At a run's start only: never under a run writing to it (a tool that
    opened it just before keeps appending to the moved file, and loses nothing)."""
    try:
        if path.stat().st_size < LOG_ROTATE_BYTES:
            return
        for number in range(LOG_BACKUPS - 1, 0, -1):
            older = path.with_name(f"{path.name}.{number}")
            if older.exists():
                older.replace(path.with_name(f"{path.name}.{number + 1}"))
        path.replace(path.with_name(f"{path.name}.1"))
    except OSError:  # not there yet, or another tool rotated it just now
        return


def open_run_log(output_dir: Path, tool: str, run_id: str) -> logging.Logger:
    """A logger for one run that appends to LOG_FILE_NAME in output_dir (rotated first
    when it is over LOG_ROTATE_BYTES)."""
    output_dir.mkdir(parents=True, exist_ok=True)
    rotate(output_dir / LOG_FILE_NAME)
    logger = logging.getLogger(f"backfill.run.{run_id}")
    logger.setLevel(logging.INFO)
    logger.propagate = False
    file_handler = logging.FileHandler(output_dir / LOG_FILE_NAME, encoding="utf-8")
    formatter = logging.Formatter(
        f"%(asctime)s %(levelname)s {tool} {run_id}: %(message)s", "%Y-%m-%dT%H:%M:%SZ")
    formatter.converter = time.gmtime
    file_handler.setFormatter(formatter)
    # Unbuffered: each line is in the file when it is logged (FileHandler flushes per
    # record), for `tail -f` and for a run killed with -9. Lines are per batch, not per
    # item (an item's detail is DEBUG, never formatted at INFO), so a flush costs nothing
    # per item.
    logger.addHandler(file_handler)
    _write_deferred_warnings(logger)
    # A console gone (a closed pipe, a terminal gone) is said here, where the rest goes.
    _forget_console[logger.name] = when_gone(lambda why: logger.warning("%s", why))
    return logger


def flush_run_log(logger: logging.Logger) -> None:
    """Everything logged is in the file now (before an exit that skips the usual
    closing). Each line is flushed as it is logged already: this only makes sure."""
    for handler in logger.handlers:
        handler.flush()


def close_run_log(logger: logging.Logger) -> None:
    forget = _forget_console.pop(logger.name, None)
    if forget is not None:
        forget()
    for handler in list(logger.handlers):
        handler.close()
        logger.removeHandler(handler)


@contextmanager
def run_log(output_dir: Path, tool: str, run_id: str) -> Iterator[logging.Logger]:
    """A run's log, open for as long as the run: closed however the run ends."""
    logger = open_run_log(output_dir, tool, run_id)
    try:
        yield logger
    finally:
        close_run_log(logger)
