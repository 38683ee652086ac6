"""A console that can no longer be written to does not end a run.

stdout or stderr fails with EPIPE when what read them is gone (`| head -7` has its lines,
a pager quit, a `tee` was killed), and with EIO when the terminal they were is gone. The
console is only a view of a run: the run log, the ledger and `backfill_control.py
status` keep everything it would have said. A careful operator who piped a production
run into `head` to see it start expects the run to go on, not to end `failed` halfway
with a traceback for an unexpected BrokenPipeError, so the run goes on and says so in
its log. (A terminal that closes also sends SIGHUP, which stops the run cleanly, as
SIGTERM does: the session that started it is over.)

The stream's descriptor is then pointed at /dev/null, so that nothing written later
(by tqdm, click, a thread, or Python's own flush at exit) fails on it.
"""

from __future__ import annotations

import contextlib
import errno
import os
import sys
import threading
from collections.abc import Callable, Iterator
from typing import Any, TextIO, cast

CONSOLE_GONE = frozenset({errno.EPIPE, errno.EIO})
_listeners: list[Callable[[str], None]] = []
_lock = threading.Lock()


def when_gone(listener: Callable[[str], None]) -> Callable[[], None]:
    """`listener(why)` is called once for each stream found gone from now on; the
    returned function forgets it."""
    with _lock:
        _listeners.append(listener)

    def forget() -> None:
        with _lock, contextlib.suppress(ValueError):
            _listeners.remove(listener)

    return forget


class SurvivingStream:
    """A text stream whose writes go on (to nowhere) once the console is gone; every
    other attribute is the stream's own."""

    def __init__(self, stream: TextIO, name: str) -> None:
        self.stream, self.name, self.gone = stream, name, False

    def write(self, text: str) -> int:
        try:
            return self.stream.write(text)
        except OSError as error:
            self._lost(error)
            return len(text)

    def flush(self) -> None:
        try:
            self.stream.flush()
        except OSError as error:
            self._lost(error)

    def _lost(self, error: OSError) -> None:
        if error.errno not in CONSOLE_GONE:
            raise error
        with _lock:
            if self.gone:
                return
            self.gone = True
            listeners = list(_listeners)
        with contextlib.suppress(OSError, ValueError):  # no descriptor (a test's stream)
            nowhere = os.open(os.devnull, os.O_WRONLY)
            os.dup2(nowhere, self.stream.fileno())
            os.close(nowhere)
        why = (f"the console's {self.name} can no longer be written to "
               f"({os.strerror(error.errno or 0)}): the run goes on; from here on, only "
               "this log says what it does")
        for listener in listeners:
            listener(why)

    def __getattr__(self, name: str) -> Any:
        return getattr(self.stream, name)


@contextlib.contextmanager
def surviving_console() -> Iterator[None]:
    """stdout and stderr as SurvivingStreams while the block runs."""
    saved = sys.stdout, sys.stderr
    if saved[0] is None or saved[1] is None or isinstance(saved[0], SurvivingStream):
        yield  # no console at all, or guarded already (a command run from another)
        return
    guarded = SurvivingStream(saved[0], "stdout"), SurvivingStream(saved[1], "stderr")
    sys.stdout, sys.stderr = cast(TextIO, guarded[0]), cast(TextIO, guarded[1])
    try:
        yield
    finally:
        for stream in guarded:
            stream.flush()  # what is still buffered, before the plain stream is back
        sys.stdout, sys.stderr = saved
