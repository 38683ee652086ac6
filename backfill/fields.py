"""Field paths and the values at them, as the engine reads them: pure, a leaf.

`ABSENT` is what a document holds at a path it does not have (None is a stored null).
"""

from __future__ import annotations

import calendar
import re
import reprlib
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from typing import Any, Final


class _Absent:
    def __repr__(self) -> str:
        return "ABSENT"


ABSENT: Final = _Absent()

# A plain field name: no quoting needed in a field path, nothing Firestore reserves; and
# how deep a field path (--target-field, --where, a task's) may go.
PLAIN_SEGMENT = re.compile(r"[A-Za-z_][A-Za-z0-9_]{0,99}")
MAX_DEPTH = 8

_short_repr = reprlib.Repr()
_short_repr.maxlevel = 2
_short_repr.maxstring = 60
_short_repr.maxother = 60


def stored_value(item: Any, path: Sequence[str]) -> Any:
    """What the item holds at `path` (a tuple of map keys), or ABSENT."""
    value = item
    for key in path:
        if not isinstance(value, Mapping) or key not in value:
            return ABSENT
        value = value[key]
    return value


def describe(value: Any) -> str:
    """A short, never-raising description of a value, for reports and logs."""
    try:
        return _short_repr.repr(value)
    except Exception:  # a foreign object whose repr fails must not stop a run
        return f"<{type(value).__name__}>"


def field_path_problem(path: str) -> str | None:
    """Why `path` is not a field path the engine writes (plain names joined by dots, at
    most MAX_DEPTH deep, none reserved by Firestore), or None."""
    segments = path.split(".")
    bad = [s for s in segments if not PLAIN_SEGMENT.fullmatch(s) or
           (s.startswith("__") and s.endswith("__"))]
    if not path or bad or len(segments) > MAX_DEPTH:
        return (f"{describe(path)} is not a field path of plain names joined by dots "
                f"(letters, digits and _, not starting with a digit, at most {MAX_DEPTH} "
                "deep)")
    return None


def nanoseconds(moment: Any) -> int | None:
    """A time read back from Firestore (a DatetimeWithNanoseconds), in ns since the epoch,
    exact; None for none."""
    if not isinstance(moment, datetime):
        return None
    whole = calendar.timegm(moment.astimezone(UTC).utctimetuple())
    # A DatetimeWithNanoseconds made from microseconds says 0 nanoseconds.
    return whole * 10**9 + max(getattr(moment, "nanosecond", 0), moment.microsecond * 1000)
