"""The field a one-field tool writes (--target-field): a top-level field, or a nested
path such as `metadata.tags`; and what a job sees of the maps on the way to it.

A write touches that path only. Firestore's update of `a.b` replaces a non-map `a` with
a map, so a parent holding anything else (null, a string, a list) must never be written
through; and a field mask cannot tell such a parent from an absent one (both come back
without it), so documents where the mask leaves the parent unseen are read once more,
for their top-level parent only (see `with_parents`).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from enum import Enum
from typing import Any

from backfill.errors import ConfigurationError
from backfill.fields import MAX_DEPTH, PLAIN_SEGMENT, describe, stored_value
from backfill.limits import TARGET_FIELD_VARIABLE as TARGET_FIELD_VARIABLE


class Parent(Enum):
    MAP = "map"  # the parent is a map (or the document itself): the target can be written
    ABSENT = "absent"  # a map on the way is missing: writing creates it, holding the target
    HOSTILE = "hostile"  # something other than a map is on the way: never written through
    UNSEEN = "unseen"  # a field mask cannot tell ABSENT from HOSTILE: read the parent


@dataclass(frozen=True)
class TargetField:
    path: str

    @property
    def segments(self) -> tuple[str, ...]:
        return tuple(self.path.split("."))

    @property
    def top(self) -> str:
        return self.segments[0]

    @property
    def nested(self) -> bool:
        return len(self.segments) > 1

    def value(self, data: Mapping[str, Any]) -> Any:
        """The stored value, or backfill.fields.ABSENT."""
        return stored_value(data, self.segments)

    def parent(self, data: Mapping[str, Any], *, masked: bool = True) -> tuple[Parent, int]:
        """The state of the maps on the way to the target, and the depth of the first one
        missing (ABSENT) or not a map (HOSTILE). `masked`: data came through a field mask,
        so a missing key may hide a non-map value."""
        value: Any = data
        for depth, key in enumerate(self.segments[:-1]):
            if key not in value:
                return (Parent.UNSEEN if masked else Parent.ABSENT), depth
            value = value[key]
            if not isinstance(value, Mapping):
                return Parent.HOSTILE, depth
        return Parent.MAP, len(self.segments) - 1

    def prefix(self, depth: int) -> str:
        return ".".join(self.segments[:depth + 1])

    def blocked_by(self, data: Mapping[str, Any]) -> str | None:
        """What on the way to the field is not a map (a write there would replace it), as
        said: `metadata holds 'legacy', not a map`; None when nothing is."""
        state, depth = self.parent(data, masked=False)
        if state is not Parent.HOSTILE:
            return None
        value = stored_value(data, self.segments[:depth + 1])
        return f"{self.prefix(depth)} holds {describe(value)}, not a map"


@dataclass(frozen=True)
class FieldRules:
    """A one-field tool's field: its default, the examples its messages give, and the
    fields its job reads from (never written over: that would replace what the app
    wrote)."""

    default: str
    examples: str
    sources: tuple[str, ...] = ()


def parse_target_field(text: str, rules: FieldRules) -> TargetField:
    """Check a --target-field against the rules: plain segments, and nowhere the job reads
    from (writing there would replace what the app wrote)."""
    segments = text.split(".")
    bad = [s for s in segments if not PLAIN_SEGMENT.fullmatch(s) or
           (s.startswith("__") and s.endswith("__"))]
    if not text or bad or len(segments) > MAX_DEPTH:
        raise ConfigurationError(
            f"--target-field {text!r} is not a field path of plain names joined by dots "
            f"(letters, digits and _, not starting with a digit, at most {MAX_DEPTH} "
            f"deep), such as {rules.examples}")
    for source in rules.sources:
        if text == source or text.startswith(source + ".") or source.startswith(text + "."):
            raise ConfigurationError(
                f"--target-field {text!r} overlaps the source field {source!r}: writing "
                "there would replace what the app wrote")
    return TargetField(text)
