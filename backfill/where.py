"""--where: a run, a validation or a report on a subset of the collection, such as one
user's items for a canary (`--where userId=u1`).

`FIELD=VALUE` takes the items whose field (top-level, or a dotted path into maps) equals
VALUE as a string; `FIELD:=JSON` equals a typed value (`count:=3`, `active:=true`,
`owner:=null`). Several conditions must all hold. They become equality filters of every
query the tool makes (pages, counts, samples), which Firestore serves from its automatic
single-field indexes with the document-ID order and cursors the tools use (several
equalities by merging those indexes): no composite index is needed. Checked before
anything is read, a value as a Firestore value too: an integer within 64 bits, text
that is valid Unicode (a byte that is not UTF-8 comes from the command line as a lone
surrogate), no array in an array, at most MAX_VALUE_DEPTH deep, no map key of the form
__...__ (reserved), and small enough for a query: at most MAX_INDEXED_BYTES as the index
stores it (indexed_size).
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, TypeVar

from google.cloud.firestore_v1.base_query import FieldFilter

from backfill.errors import ConfigurationError
from backfill.fields import ABSENT, MAX_DEPTH, PLAIN_SEGMENT, stored_value

Q = TypeVar("Q")
INT64_MIN, INT64_MAX = -(2**63), 2**63 - 1
MAX_VALUE_DEPTH = 20  # Firestore's limit on maps and arrays within each other
# Firestore's limit on an indexed value: a larger one "is too large to be used in a
# query". Sizes as Firestore documents them (Storage size calculations): indexed_size.
MAX_INDEXED_BYTES = 1500
RESERVED_KEY = re.compile(r"__.*__", re.DOTALL)  # field names Firestore keeps for itself


@dataclass(frozen=True)
class Condition:
    field: str  # a field path: plain names joined by dots
    value: Any
    given: str  # as typed: what the ledger records, and a resume compares

    @property
    def shown(self) -> str:
        value = self.value if isinstance(self.value, str) else json.dumps(self.value)
        return f"{self.field} = {value}"


def parse_where(texts: Sequence[str]) -> tuple[Condition, ...]:
    """Each --where checked; ConfigurationError (exit 2) says which and why."""
    return tuple(_parse(text) for text in texts)


def _parse(text: str) -> Condition:
    def refuse(problem: str) -> ConfigurationError:
        return ConfigurationError(f"--where {text!r}: {problem} (FIELD=VALUE, or FIELD:=JSON "
                                  "for a typed value)")

    field, equals, value = text.partition("=")
    if not equals:
        raise refuse("there is no `=`")
    typed = field.endswith(":")
    field = field.removesuffix(":")
    if not field:
        raise refuse("the field is empty")
    segments = field.split(".")
    if len(segments) > MAX_DEPTH or not all(PLAIN_SEGMENT.fullmatch(s) for s in segments):
        raise refuse(f"{field!r} is not a field path of plain names (letters, digits, _) "
                     f"joined by dots, at most {MAX_DEPTH} deep")
    if segments[0].startswith("__"):
        raise refuse(f"{field!r} is reserved by Firestore")
    parsed: Any = value
    if typed:
        try:
            parsed = json.loads(value)
        except RecursionError:
            raise refuse(f"it is nested more than {MAX_VALUE_DEPTH} deep") from None
        except ValueError:
            raise refuse(f"{value!r} is not JSON (a string is FIELD=VALUE, or "
                         "FIELD:='\"text\"')") from None
        if isinstance(parsed, float) and parsed != parsed:
            raise refuse("NaN equals nothing")
    problem = _not_storable(parsed)
    if problem is not None:
        raise refuse(problem)
    size = indexed_size(parsed)
    if size > MAX_INDEXED_BYTES:
        raise refuse(f"the value is too large to be used in a query ({size:,} bytes as "
                     f"Firestore's index stores it; at most {MAX_INDEXED_BYTES:,})")
    return Condition(field, parsed, text)


def _not_storable(value: Any, depth: int = 0) -> str | None:
    """Why `value` is no Firestore value (which a query would find only while it is
    encoded, after the tool began to read), or None."""
    if isinstance(value, bool) or value is None or isinstance(value, float):
        return None
    if isinstance(value, int):
        if not INT64_MIN <= value <= INT64_MAX:
            return (f"{value} is out of Firestore's integer range (a 64-bit integer, "
                    f"{INT64_MIN} to {INT64_MAX})")
        return None
    if isinstance(value, str):
        try:
            value.encode("utf-8")
        except UnicodeEncodeError:
            return ("it holds text that is not valid Unicode (a lone surrogate such as "
                    "\\ud800, or a byte that is not UTF-8)")
        return None
    if depth >= MAX_VALUE_DEPTH:
        return f"it is nested more than {MAX_VALUE_DEPTH} deep"
    if isinstance(value, list):
        if any(isinstance(item, list) for item in value):
            return "an array in an array is no Firestore value"
        items: list[Any] = value
    else:  # a dict, as JSON gives it
        reserved = next((key for key in value if RESERVED_KEY.fullmatch(key)), None)
        if reserved is not None:
            return f"the map key {reserved!r} is reserved by Firestore (keys of the form __...__)"
        items = [*value.keys(), *value.values()]
    return next((problem for item in items
                 if (problem := _not_storable(item, depth + 1)) is not None), None)


def indexed_size(value: Any) -> int:
    """A value's size as Firestore documents it: a string its UTF-8 bytes plus 1, a
    number 8, a boolean or null 1, an array the sum of its values, a map the sum of its
    keys (as strings) and values."""
    if isinstance(value, str):
        return len(value.encode("utf-8")) + 1
    if isinstance(value, bool) or value is None:
        return 1
    if isinstance(value, int | float):
        return 8
    if isinstance(value, list):
        return sum(indexed_size(item) for item in value)
    return sum(indexed_size(key) + indexed_size(item) for key, item in value.items())


def narrowed(query: Q, conditions: Sequence[Condition]) -> Q:
    """`query` (a collection or a query of it) with the conditions as equality filters."""
    for condition in conditions:
        query = query.where(filter=FieldFilter(condition.field, "==",  # type: ignore[attr-defined]
                                               condition.value))
    return query


def holds(data: Mapping[str, Any], conditions: Sequence[Condition]) -> bool:
    """Whether an item as read (with the conditions' fields) meets them all, as the query
    would have: where a field is absent, no condition on it holds."""
    for condition in conditions:
        value = stored_value(data, tuple(condition.field.split(".")))
        if value is ABSENT or not _equal(value, condition.value):
            return False
    return True


def _equal(stored: Any, wanted: Any) -> bool:
    """Firestore's equality: 3 equals 3.0, but true is not 1 and "3" is not 3."""
    def number(value: Any) -> bool:
        return isinstance(value, int | float) and not isinstance(value, bool)

    if number(stored) and number(wanted):
        return bool(stored == wanted)
    return type(stored) is type(wanted) and bool(stored == wanted)


def described(conditions: Sequence[Condition]) -> str:
    """' where userId = u1 and count = 3', or '' for the whole collection."""
    if not conditions:
        return ""
    return " where " + " and ".join(condition.shown for condition in conditions)


def empty_subset_message(conditions: Sequence[Condition]) -> str:
    return (f"No item{described(conditions)}. A value is compared as a string with "
            "FIELD=VALUE; a number or a boolean needs FIELD:=JSON (count:=3, active:=true)")
