"""What each writing tool does to one document (the Job of `batch.py`): the only
tool-specific part of a run."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from datetime import datetime
from typing import Any

from google.cloud import firestore
from google.cloud.firestore_v1 import DELETE_FIELD

from backfill.batch import Decision, PageSource
from backfill.clock import utc_now
from backfill.fields import ABSENT
from backfill.retry import RetryPolicy
from backfill.target_field import TargetField
from normalizer import (
    SOURCE_FIELD_PATHS,
    analyze_item,
    build_normalized,
    is_up_to_date,
)


def hostile_parent(target: TargetField, data: Mapping[str, Any]) -> str | None:
    """Why the target cannot be written on this document, if it cannot."""
    blocked = target.blocked_by(data)
    return None if blocked is None else (f"{blocked}: {target.path} not written (the "
                                         "app's value is left as it is)")


class BackfillJob:
    """Write the normalized map where it is missing, null, malformed, stale or of another
    version."""

    tool = "backfill"
    journaled = True

    def __init__(self, target: TargetField, *, force: bool = False,
                 clock: Callable[[], datetime] = utc_now) -> None:
        self.target = target
        self.read_fields: tuple[str, ...] = (*SOURCE_FIELD_PATHS, target.path)
        self.force = force
        self.clock = clock

    def decide(self, doc_id: str, data: dict[str, Any]) -> Decision:
        facets, report = analyze_item(data)
        problem = hostile_parent(self.target, data)
        if problem is not None:
            return Decision(doc_id, None, report, problem=problem)
        if not self.force and is_up_to_date(data, facets, self.target.segments):
            return Decision(doc_id, None, report)
        return Decision(doc_id, {self.target.path: build_normalized(facets, self.clock())},
                        report)

    def page_source(self, client: firestore.Client, collection: str,
                    policy: RetryPolicy) -> PageSource | None:
        return None  # every item of the collection


class RollbackJob:
    """Remove the target field (the field itself, not a null) wherever it is, null included.
    Nothing else: a parent map stays, whatever else it holds."""

    tool = "rollback"
    journaled = False

    def __init__(self, target: TargetField) -> None:
        self.target = target
        self.read_fields: tuple[str, ...] = (target.path,)

    def decide(self, doc_id: str, data: dict[str, Any]) -> Decision:
        if self.target.value(data) is not ABSENT:
            return Decision(doc_id, {self.target.path: DELETE_FIELD})
        return Decision(doc_id, None)

    def page_source(self, client: firestore.Client, collection: str,
                    policy: RetryPolicy) -> PageSource | None:
        return None  # every item of the collection
