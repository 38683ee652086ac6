"""The skip rule and validation: one predicate over the stored `normalized` map.

An item whose stored map has no problem is up to date (the backfill skips it) and valid
(validation passes it); any problem makes it both rewritten and invalid. Keeping this in
one function is what keeps the two tools from disagreeing.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any, Final

from normalizer.item import FACETS, NORMALIZED_VERSION, Facets, normalize_item

DEFAULT_PATH: tuple[str, ...] = ("normalized",)

# Why a stored map is not valid. An item can have several.
MISSING = "missing"  # no map at the path
NULL = "null"  # null at the path (left by an older rollback)
NOT_A_MAP = "not_a_map"
MALFORMED_FACETS = "malformed_facets"  # a facet that is not a list of canonical-looking terms
BAD_TIMESTAMP = "bad_timestamp"  # normalized_at absent or not ISO 8601
WRONG_VERSION = "wrong_version"
STALE = "stale"  # well-formed, but not what the rules give for the item as it is now


class _Absent:
    def __repr__(self) -> str:
        return "ABSENT"


ABSENT: Final = _Absent()

# ISO 8601 date and time, with or without fraction and zone. A naive time means UTC: the
# previous script wrote datetime.utcnow().isoformat() (spec, "Output").
_TIMESTAMP = re.compile(
    r"(\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2})(?:\.(\d{1,9}))?(Z|[+-]\d{2}:\d{2})?")


def stored_value(item: Any, path: Sequence[str] = DEFAULT_PATH) -> Any:
    """What the item holds at `path` (a tuple of map keys), or ABSENT."""
    value = item
    for key in path:
        if not isinstance(value, Mapping) or key not in value:
            return ABSENT
        value = value[key]
    return value


def is_valid_timestamp(value: Any) -> bool:
    """An ISO 8601 string (zone and fraction optional) or a Firestore timestamp."""
    if isinstance(value, datetime):  # Firestore timestamps come back as datetimes
        return True
    if not isinstance(value, str):
        return False
    match = _TIMESTAMP.fullmatch(value)
    if match is None:
        return False
    try:  # the calendar itself: no 13th month, no 25th hour
        datetime.fromisoformat(match.group(1))
    except ValueError:
        return False
    return True


def _is_clean_term(term: Any) -> bool:
    if not isinstance(term, str) or not term or term != term.lower() or " " in term:
        return False
    if term.isascii():  # the usual case: only the ASCII controls are Cc, none is Cf
        return term.isprintable()
    return not any(unicodedata.category(c) in ("Cc", "Cf") for c in term)


def is_term_list(value: Any) -> bool:
    """A list of distinct, non-empty, lowercase strings without spaces, controls or
    invisible (format) characters."""
    return (isinstance(value, list) and len(value) == len(set(map(repr, value)))
            and all(_is_clean_term(t) for t in value))


def problems(item: Mapping[str, Any], path: Sequence[str] = DEFAULT_PATH,
             facets: Facets | None = None) -> list[str]:
    """Why the map stored at `path` is not what the rules give now; empty when it is.

    Pass `facets` when already computed for this item, to save the work."""
    stored = stored_value(item, path)
    if stored is ABSENT:
        return [MISSING]
    if stored is None:
        return [NULL]
    if not isinstance(stored, Mapping):
        return [NOT_A_MAP]
    reasons = []
    well_formed = all(is_term_list(stored.get(facet)) for facet in FACETS)
    if not well_formed:
        reasons.append(MALFORMED_FACETS)
    if not is_valid_timestamp(stored.get("normalized_at")):
        reasons.append(BAD_TIMESTAMP)
    if stored.get("normalized_version") != NORMALIZED_VERSION:
        reasons.append(WRONG_VERSION)
    if well_formed:
        expected = facets if facets is not None else normalize_item(item)
        if any(stored[facet] != expected[facet] for facet in FACETS):
            reasons.append(STALE)
    return reasons


def is_up_to_date(item: Mapping[str, Any], facets: Facets | None = None,
                  path: Sequence[str] = DEFAULT_PATH) -> bool:
    """The skip rule: the stored map has no problem at all."""
    if not isinstance(item, Mapping):
        return False
    return not problems(item, path, facets)
