"""Run a Python script as __main__ and write a timeline of what it did to a file: each
line it printed on stderr and each database call (its method, thread, start and end),
in seconds since this process started.

`make bench` uses it to show where a run's time goes (the README's timeline). The calls
are caught where every generated client method passes (api_core's _GapicCallable), so
nothing in the tool itself knows it is traced.
"""

from __future__ import annotations

import json
import os
import runpy
import sys
import threading
import time
from collections.abc import Iterator
from typing import Any, TextIO

from google.api_core.gapic_v1 import method as gapic_method

STARTED = time.perf_counter()
_events: list[dict[str, Any]] = []
_lock = threading.Lock()


def _now() -> float:
    return round(time.perf_counter() - STARTED, 4)


def _note(event: dict[str, Any]) -> None:
    with _lock:
        _events.append(event)


def _method_name(target: Any) -> str:
    name = getattr(target, "_method", None) or getattr(target, "__name__", "call")
    if isinstance(name, bytes):
        name = name.decode()
    return str(name).rsplit("/", 1)[-1]


class _TimedStream:
    """A streaming call's answer: it ends when the stream is read to its end."""

    def __init__(self, stream: Any, event: dict[str, Any]) -> None:
        self._stream, self._event = stream, event

    def __iter__(self) -> Iterator[Any]:
        return self

    def __next__(self) -> Any:
        try:
            return next(self._stream)
        except BaseException:
            self._event["end"] = _now()
            raise

    def __getattr__(self, name: str) -> Any:
        return getattr(self._stream, name)


def _install() -> None:
    original = gapic_method._GapicCallable.__call__

    def traced(self: Any, *args: Any, **kwargs: Any) -> Any:
        event = {"call": _method_name(self._target), "thread": threading.current_thread().name,
                 "start": _now()}
        _note(event)
        answer = original(self, *args, **kwargs)
        if hasattr(answer, "__next__") or type(answer).__name__.endswith("Rendezvous") or \
                hasattr(answer, "_iterator"):
            return _TimedStream(answer, event)
        event["end"] = _now()
        return answer

    gapic_method._GapicCallable.__call__ = traced  # type: ignore[method-assign]


class _TimedStderr:
    """stderr, with each line it is given noted with its time."""

    def __init__(self, stream: TextIO) -> None:
        self._stream = stream

    def write(self, text: str) -> int:
        for line in text.splitlines():
            if line.strip():
                _note({"line": line.strip()[:160], "start": _now()})
        return self._stream.write(text)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._stream, name)


def main() -> None:
    output, script, *args = sys.argv[1:]
    sys.argv = [script, *args]
    _install()
    sys.stderr = _TimedStderr(sys.stderr)  # type: ignore[assignment]
    code: Any = 0
    try:
        runpy.run_path(script, run_name="__main__")
    except SystemExit as done:
        code = done.code
    finally:
        with open(output, "w", encoding="utf-8") as file:
            json.dump({"exit": _now(), "events": _events}, file)
    sys.stdout.flush()
    os._exit(int(code or 0))


if __name__ == "__main__":
    main()
