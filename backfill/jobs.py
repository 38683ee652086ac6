"""What each writing tool does to one document: the only tool-specific part of a run."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Protocol

from google.cloud import firestore
from google.cloud.firestore_v1 import DELETE_FIELD

from backfill.journal import Journal, fingerprint
from backfill.pager import read_documents
from backfill.retry import RetryPolicy
from backfill.stats import utc_now
from normalizer import SOURCE_FIELD_PATHS, Report, analyze_item, build_normalized, is_up_to_date

NORMALIZED_FIELD = "normalized"


@dataclass(frozen=True)
class Decision:
    """What to write on one document (None: nothing, it is fine as it is)."""

    doc_id: str
    fields: dict[str, Any] | None
    report: Report | None = None
    problem: str | None = None  # nothing is written, and the item is listed as an error


class Job(Protocol):
    tool: str
    read_fields: tuple[str, ...]  # the field mask for reads: only what decide() needs
    journal_field: str | None  # the field whose previous values a run journals

    def decide(self, doc_id: str, data: dict[str, Any]) -> Decision: ...


class BackfillJob:
    """Write `normalized` where it is missing, null, malformed, stale or of another version."""

    tool = "backfill"
    read_fields = SOURCE_FIELD_PATHS
    journal_field: str | None = NORMALIZED_FIELD

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
    journal_field: str | None = None

    def decide(self, doc_id: str, data: dict[str, Any]) -> Decision:
        if NORMALIZED_FIELD in data:
            return Decision(doc_id, {NORMALIZED_FIELD: DELETE_FIELD})
        return Decision(doc_id, None)


class UndoRunJob:
    """Give back what one backfill run replaced, from its journal: the field deleted where
    it was absent, null where it was null, the old map where there was one. An item whose
    `normalized` changed since the run is left alone and reported."""

    tool = "rollback"
    read_fields: tuple[str, ...] = (NORMALIZED_FIELD,)
    journal_field: str | None = None

    def __init__(self, run_id: str, ledger_collection: str) -> None:
        self.run_id = run_id
        self.ledger_collection = ledger_collection
        self.entries: dict[str, dict[str, Any]] = {}  # the journal batch being undone

    def pages(self, client: firestore.Client, collection: str,
              policy: RetryPolicy) -> Iterator[list[Any]]:
        """The items of each journal batch, newest batch first, as they are now."""
        journal = Journal(client, self.ledger_collection, self.run_id, policy)
        for entries in journal.entries():
            refs = [client.collection(collection).document(e["id"]) for e in entries]
            snaps = read_documents(client, refs, self.read_fields, policy,
                                   "reading the items a run changed")
            # Read only when the batch before is written: entries of one item follow on.
            self.entries = {e["id"]: e for e in entries}
            yield sorted(snaps, key=lambda snap: snap.id)

    def decide(self, doc_id: str, data: dict[str, Any]) -> Decision:
        entry = self.entries[doc_id]
        has_field, current = NORMALIZED_FIELD in data, data.get(NORMALIZED_FIELD)
        if has_field and fingerprint(current) == entry["after"]:
            restored = entry.get("before") if entry["had_field"] else DELETE_FIELD
            return Decision(doc_id, {NORMALIZED_FIELD: restored})
        if has_field == entry["had_field"] and current == entry.get("before"):
            return Decision(doc_id, None)  # as before the run already (undone, or unwritten)
        return Decision(doc_id, None, problem="normalized changed after the run; left as is")
