"""What each writing tool does to one document: the only tool-specific part of a run."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Protocol

from google.cloud.firestore_v1 import DELETE_FIELD

from backfill.stats import utc_now
from normalizer import SOURCE_FIELD_PATHS, Report, analyze_item, build_normalized, is_up_to_date

NORMALIZED_FIELD = "normalized"


@dataclass(frozen=True)
class Decision:
    """What to write on one document (None: nothing, it is fine as it is)."""

    doc_id: str
    fields: dict[str, Any] | None
    report: Report | None = None


class Job(Protocol):
    tool: str
    read_fields: tuple[str, ...]  # the field mask for reads: only what decide() needs

    def decide(self, doc_id: str, data: dict[str, Any]) -> Decision: ...


class BackfillJob:
    """Write `normalized` where it is missing, null, malformed, stale or of another version."""

    tool = "backfill"
    read_fields = SOURCE_FIELD_PATHS

    def __init__(self, *, force: bool = False, clock: Callable[[], datetime] = utc_now) -> None:
        self.force = force
        self.clock = clock

    def decide(self, doc_id: str, data: dict[str, Any]) -> Decision:
        facets, report = analyze_item(data)
        if not self.force and is_up_to_date(data, facets):
            return Decision(doc_id, None, report)
        return Decision(doc_id, {NORMALIZED_FIELD: build_normalized(facets, self.clock())}, report)


class RollbackJob:
    """Remove `normalized` (the field itself, not a null) wherever it is, null included."""

    tool = "rollback"
    read_fields: tuple[str, ...] = (NORMALIZED_FIELD,)

    def decide(self, doc_id: str, data: dict[str, Any]) -> Decision:
        if NORMALIZED_FIELD in data:
            return Decision(doc_id, {NORMALIZED_FIELD: DELETE_FIELD})
        return Decision(doc_id, None)
