"""Structured output where a log collector reads the streams: under a Cloud Run Job
(`CLOUD_RUN_JOB`) or in a Kubernetes pod (`KUBERNETES_SERVICE_HOST`), or with
`--log-format json`, every line a tool prints on stdout and stderr is one JSON object,
as Cloud Logging's structured logging reads them: `severity`, `message`, the run's ID,
`logging.googleapis.com/labels` (tool, shard), and fields a line carries (a batch's
counts). A terminal never gets JSON unasked; `--log-format text` forces the console.

The console code prints as it always does: the streams are wrapped, here, at the CLI
boundary, and a line becomes an object when its newline comes.
"""

from __future__ import annotations

import io
import json
import sys
import threading
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from typing import Any, TextIO

from backfill.limits import LOG_FORMATS as LOG_FORMATS

COLLECTOR_VARIABLES = ("CLOUD_RUN_JOB", "KUBERNETES_SERVICE_HOST")
LABELS = "logging.googleapis.com/labels"
# A line's severity, from how the console starts it.
_SEVERITY_BY_START = (("❌", "ERROR"), ("⚠️", "WARNING"), ("⏸", "NOTICE"), ("⏹", "NOTICE"))

_lock = threading.Lock()
_context: dict[str, Any] = {}  # run_id, and the labels: tool, shard
_pending = threading.local()  # fields for the next line this thread completes
_active = False


def wants_json(choice: str, env: Mapping[str, str], terminal: bool) -> bool:
    """JSON when asked, or (`auto`) under a log collector, never on a terminal unasked."""
    if choice != "auto":
        return choice == "json"
    return not terminal and any(env.get(name) for name in COLLECTOR_VARIABLES)


def set_context(run_id: str | None = None, **labels: str | None) -> None:
    """What every line carries from now on: the run's ID, and labels (tool, shard)."""
    with _lock:
        if run_id is not None:
            _context["run_id"] = run_id
        for name, value in labels.items():
            if value is not None:
                _context.setdefault(LABELS, {})[name] = str(value)


def fields_for_next_line(**fields: Any) -> None:
    """Fields the next line this thread prints carries (a batch line's counts)."""
    if _active:
        _pending.fields = fields


def severity_of(line: str) -> str:
    for start, severity in _SEVERITY_BY_START:
        if line.startswith(start):
            return severity
    return "INFO"


def record(message: str, severity: str = "INFO", **fields: Any) -> bool:
    """One object on stdout when output is structured (a summary); False when it is not
    (the caller prints its text)."""
    if not _active:
        return False
    out = sys.stdout
    target = out.raw if isinstance(out, JsonLines) else out
    target.write(_encode(message, severity, fields) + "\n")
    target.flush()
    return True


def _encode(message: str, severity: str, fields: Mapping[str, Any]) -> str:
    with _lock:
        context = {key: (dict(value) if isinstance(value, dict) else value)
                   for key, value in _context.items()}
    return json.dumps({"severity": severity, "message": message, **context, **fields},
                      ensure_ascii=False, default=str)


class JsonLines(io.TextIOBase):
    """A text stream whose every complete line is written to `raw` as one JSON object."""

    def __init__(self, raw: TextIO) -> None:
        super().__init__()
        self.raw = raw
        self._partial = ""
        self._write_lock = threading.Lock()

    def write(self, text: str) -> int:
        with self._write_lock:
            self._partial += text
            while "\n" in self._partial:
                line, self._partial = self._partial.split("\n", 1)
                self._emit(line)
        return len(text)

    def _emit(self, line: str) -> None:
        fields = getattr(_pending, "fields", None) or {}
        _pending.fields = None
        if not line.strip() and not fields:
            return  # a blank line says nothing to a collector
        self.raw.write(_encode(line, severity_of(line.strip()), fields) + "\n")

    def flush(self) -> None:
        self.raw.flush()

    def close_partial(self) -> None:
        with self._write_lock:
            if self._partial:
                self._emit(self._partial)
                self._partial = ""
        self.raw.flush()

    def isatty(self) -> bool:
        return False

    def writable(self) -> bool:
        return True

    @property
    def encoding(self) -> str:  # type: ignore[override]
        return "utf-8"


@contextmanager
def structured_streams(enabled: bool) -> Iterator[None]:
    """stdout and stderr as JSON lines while the block runs, when `enabled`."""
    global _active
    if not enabled:
        yield
        return
    with _lock:
        _context.clear()  # nothing of an earlier command in this process
    saved = sys.stdout, sys.stderr
    wrapped = JsonLines(sys.stdout), JsonLines(sys.stderr)
    sys.stdout, sys.stderr = wrapped
    _active = True
    try:
        yield
    finally:
        for stream in wrapped:
            stream.close_partial()
        sys.stdout, sys.stderr = saved
        _active = False
        with _lock:
            _context.clear()
