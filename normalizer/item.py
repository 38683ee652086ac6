"""Rules 1, 7 and 8 and the `normalized` map, for one wardrobe item."""

from __future__ import annotations

import reprlib
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from normalizer.terms import KEPT, Status, pieces_of

NORMALIZED_VERSION = "1.0"
FACETS: tuple[str, ...] = ("style", "occasion", "mood", "season")
ALL_SEASONS = "all"
FOUR_SEASONS = frozenset({"spring", "summer", "fall", "winter"})
# Rule 1: where a facet looks when its own field yields no terms.
FALLBACK_FIELDS: Mapping[str, str] = {"style": "styleTags", "occasion": "occasionTags"}
# The fields the rules read: a backfill reads these and the normalized map's own path.
SOURCE_FIELD_PATHS: tuple[str, ...] = (
    *FACETS,
    *(f"metadata.{name}" for name in FALLBACK_FIELDS.values()),
)

Facets = dict[str, list[str]]

_short_repr = reprlib.Repr()
_short_repr.maxlevel = 2
_short_repr.maxstring = 60
_short_repr.maxother = 60


def describe(value: Any) -> str:
    """A short, never-raising description of a value, for reports and logs."""
    try:
        return _short_repr.repr(value)
    except Exception:  # a foreign object whose repr fails must not stop a run
        return f"<{type(value).__name__}>"


@dataclass(frozen=True)
class Dropped:
    """A value that contributed nothing, and why."""

    facet: str
    value: str  # a short description, never the full value
    reason: str


@dataclass
class Report:
    """What the caller may want to know beyond the result: unknown and dropped values."""

    unknown: list[tuple[str, str]] = field(default_factory=list)  # (facet, term)
    dropped: list[Dropped] = field(default_factory=list)


def _terms(facet: str, value: Any, report: Report | None) -> list[str]:
    """Rules 2 to 7 for one source field's value."""
    if value is None:  # a null field is a missing field, as the spec lists them
        return []
    if isinstance(value, str):
        strings: list[str] = [value]
    elif isinstance(value, (list, tuple)):
        strings = []
        for element in value:
            if isinstance(element, str):
                strings.append(element)
            elif report is not None:
                report.dropped.append(Dropped(facet, describe(element), "not a string"))
    else:
        if report is not None:
            report.dropped.append(Dropped(facet, describe(value), "not a string or list"))
        return []
    terms: list[str] = []
    seen: set[str] = set()  # rule 7 in linear time: an item may hold 50,000 tags
    for text in strings:
        for term, status in pieces_of(facet, text):
            if status in KEPT:
                if term not in seen:
                    seen.add(term)
                    terms.append(term)
                    if report is not None and status is Status.UNKNOWN:
                        report.unknown.append((facet, term))
            elif report is not None:
                reason = "too long for a tag" if status is Status.TOO_LONG else "not a season"
                report.dropped.append(Dropped(facet, describe(term), reason))
    return terms


def _normalize(item: Mapping[str, Any], report: Report | None) -> Facets:
    if not isinstance(item, Mapping):
        return {"style": [], "occasion": [], "mood": [], "season": [ALL_SEASONS]}
    metadata = item.get("metadata")
    result: Facets = {}
    for facet in FACETS:
        terms = _terms(facet, item.get(facet), report)
        fallback = FALLBACK_FIELDS.get(facet)
        if not terms and fallback is not None and isinstance(metadata, Mapping):
            terms = _terms(facet, metadata.get(fallback), report)
        result[facet] = terms
    seasons = result["season"]
    if not seasons or ALL_SEASONS in seasons or FOUR_SEASONS.issubset(seasons):
        result["season"] = [ALL_SEASONS]
    return result


def normalize_item(item: Mapping[str, Any]) -> Facets:
    """The four canonical facets of an item. Never raises on a Firestore document."""
    return _normalize(item, None)


def analyze_item(item: Mapping[str, Any]) -> tuple[Facets, Report]:
    """normalize_item, plus the unknown terms and dropped values it met on the way."""
    report = Report()
    return _normalize(item, report), report


def format_timestamp(moment: datetime) -> str:
    """ISO 8601 UTC, whole seconds, trailing Z. A naive datetime is refused."""
    if moment.tzinfo is None:
        raise ValueError("normalized_at needs a timezone-aware datetime")
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def build_normalized(facets: Mapping[str, list[str]], normalized_at: datetime) -> dict[str, Any]:
    """The full `normalized` map to store on an item."""
    normalized: dict[str, Any] = {facet: list(facets[facet]) for facet in FACETS}
    normalized["normalized_at"] = format_timestamp(normalized_at)
    normalized["normalized_version"] = NORMALIZED_VERSION
    return normalized
