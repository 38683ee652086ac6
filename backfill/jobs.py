"""What each writing tool does to one document (the Job of `batch.py`): the only
tool-specific part of a run."""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping
from dataclasses import replace
from datetime import datetime
from typing import Any

from google.cloud import firestore
from google.cloud.firestore_v1 import DELETE_FIELD

from backfill.batch import Decision, PageSource
from backfill.clock import utc_now
from backfill.journal import LANDING_WINDOW_SECONDS, Journal, fingerprint, written_at_ns
from backfill.pager import read_documents, snapshot_data
from backfill.retry import RetryPolicy
from backfill.target_field import Parent, TargetField
from backfill.where import Condition, holds
from normalizer import (
    ABSENT,
    SOURCE_FIELD_PATHS,
    analyze_item,
    build_normalized,
    describe,
    is_up_to_date,
    stored_value,
)


def hostile_parent(target: TargetField, data: Mapping[str, Any]) -> str | None:
    """Why the target cannot be written on this document, if it cannot."""
    state, depth = target.parent(data, masked=False)
    if state is not Parent.HOSTILE:
        return None
    prefix = target.prefix(depth)
    value = stored_value(data, target.segments[:depth + 1])
    return (f"{prefix} holds {describe(value)}, not a map: {target.path} not written "
            "(the app's value is left as it is)")


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


class UndoRunJob:
    """Give back what one backfill run replaced, from its journal: the field deleted where
    it was absent (with the parent map the run created, when it holds nothing else), null
    where it was null, the old map where there was one. An item whose target changed since
    the run is left alone and reported."""

    tool = "rollback"
    journaled = False

    def __init__(self, run_id: str, ledger_collection: str, target: TargetField,
                 where: tuple[Condition, ...] = ()) -> None:
        self.run_id = run_id
        self.ledger_collection = ledger_collection
        self.target = target
        self.where = where  # only the run's items that meet these now (--where)
        # The whole top-level field: whether a created parent holds anything else.
        self.read_fields: tuple[str, ...] = (target.top, *(c.field for c in where))
        self.entries: dict[str, dict[str, Any]] = {}  # the journal batch being undone
        self.seen: set[str] = set()  # the items met in the batches undone so far
        self.repeats: set[str] = set()  # those of the batch being undone met before

    def pages(self, client: firestore.Client, collection: str, policy: RetryPolicy,
              after_key: str | None = None) -> Iterator[tuple[list[Any], str]]:
        """The items of each journal batch, newest batch first, as they are now, with the
        batch's journal key (the undo's checkpoint)."""
        journal = Journal(client, self.ledger_collection, self.run_id, policy)
        for key, entries in journal.entries(after_key):
            refs = [client.collection(collection).document(e["id"]) for e in entries]
            snaps = read_documents(client, refs, self.read_fields, policy,
                                   "reading the items a run changed")
            # A deleted item met again (an earlier entry of it) is counted once.
            snaps = [snap for snap in snaps if snap.exists or snap.id not in self.seen]
            if self.where:
                snaps = [snap for snap in snaps
                         if snap.exists and holds(snapshot_data(snap), self.where)]
            # Read only when the batch before is written: entries of one item follow on.
            found = {snap.id: snap for snap in snaps}
            self.entries = {e["id"]: self._landing(e, found.get(e["id"]), key)
                            for e in entries}
            self.repeats = self.seen & found.keys()
            self.seen |= found.keys()
            yield sorted(snaps, key=lambda snap: snap.id), key

    def _landing(self, entry: dict[str, Any], snap: Any, key: str) -> dict[str, Any]:
        """An entry whose outcome was never recorded (a kill between the write and its
        record) landed when the item holds exactly what the run wrote and has not changed
        since the batch was written; `changed_since`: it holds it, but changed later."""
        if entry["landed"] is not None or snap is None or not snap.exists:
            return entry
        current = self.target.value(snapshot_data(snap))
        if current is ABSENT or fingerprint(current) != entry["after"]:
            return entry
        written_by = written_at_ns(key) / 1e9 + LANDING_WINDOW_SECONDS
        if snap.update_time.timestamp() <= written_by:
            return {**entry, "landed": True}
        return {**entry, "changed_since": True}

    def page_source(self, client: firestore.Client, collection: str,
                    policy: RetryPolicy) -> PageSource | None:
        """The items the undone run journaled, batch by batch, newest first."""
        return lambda after_key: self.pages(client, collection, policy, after_key)

    def decide(self, doc_id: str, data: dict[str, Any]) -> Decision:
        entry = self.entries[doc_id]
        if doc_id in self.repeats:
            return replace(self._undo_again(entry, data), repeat=True)
        return self._undo(entry, data)

    def _undo_again(self, entry: dict[str, Any], data: dict[str, Any]) -> Decision:
        """An older entry of an item a newer one already gave back (or reported): it
        matters only when the item holds what this older write put there (the run wrote
        the item twice, the newer write over its own older one)."""
        current = self.target.value(data)
        if entry["landed"] is not False and current is not ABSENT and \
                fingerprint(current) == entry["after"]:
            return Decision(entry["id"], self._restore(entry, data))
        return Decision(entry["id"], None)

    def _undo(self, entry: dict[str, Any], data: dict[str, Any]) -> Decision:
        doc_id = entry["id"]
        if entry["landed"] is False:
            return Decision(doc_id, None)  # the run's write did not land: nothing to undo
        current = self.target.value(data)
        has_field = current is not ABSENT
        ours = has_field and fingerprint(current) == entry["after"]
        if ours and entry["landed"]:
            return Decision(doc_id, self._restore(entry, data))
        if has_field == entry["had_field"] and (
                not has_field or fingerprint(current) == fingerprint(entry.get("before"))):
            return Decision(doc_id, None)  # as before the run already (undone, or unwritten)
        if entry.get("changed_since") and ours:
            return Decision(doc_id, None, problem=(
                f"the run's write of {self.target.path} was never recorded as landed; the "
                "item holds the value the run wrote but changed later; left as is"))
        if entry["landed"] is None:
            return Decision(doc_id, None, problem=(
                f"the run's write of {self.target.path} was never recorded as landed and "
                "the item does not hold the value the run wrote; left as is"))
        return Decision(doc_id, None,
                        problem=f"{self.target.path} changed after the run; left as is")

    def _restore(self, entry: dict[str, Any], data: dict[str, Any]) -> dict[str, Any]:
        if entry["had_field"]:
            return {self.target.path: entry.get("before")}
        created = entry.get("created")
        if created is not None and _holds_only(
                stored_value(data, self.target.segments[:created + 1]),
                self.target.segments[created + 1:]):
            return {self.target.prefix(created): DELETE_FIELD}  # the parent the run made
        return {self.target.path: DELETE_FIELD}


def _holds_only(value: Any, path: tuple[str, ...]) -> bool:
    """Whether `value` is a chain of one-key maps down `path` and nothing else."""
    for key in path:
        if not isinstance(value, Mapping) or list(value) != [key]:
            return False
        value = value[key]
    return True
