"""The exact undo of one run, from its journal: each path it wrote given back what it
held before (deleted where it was absent, with the parent map the run created when that
holds nothing else), on every document still holding what the run wrote there. A path
changed since is left alone and reported."""

from __future__ import annotations

import copy
from collections.abc import Iterator, Mapping
from dataclasses import replace
from typing import Any

from google.cloud import firestore
from google.cloud.firestore_v1 import DELETE_FIELD

from backfill.batch import Decision, PageSource
from backfill.fields import ABSENT, nanoseconds, stored_value
from backfill.journal import LANDING_WINDOW_SECONDS, Journal, written_at_ns
from backfill.pager import read_documents, snapshot_data
from backfill.retry import RetryPolicy
from backfill.target_field import TargetField
from backfill.values import DELETED, SERVER_TIME, fingerprint, unchanged
from backfill.where import Condition, holds


class UndoRunJob:
    """Give back what one run replaced, batch by batch from its journal, newest first.
    `target`: the field a backfill run wrote (its entries name no path); None for a
    task's run, whose entries each name theirs (and whose items are read whole)."""

    tool = "rollback"
    journaled = False

    def __init__(self, run_id: str, ledger_collection: str, target: TargetField | None,
                 where: tuple[Condition, ...] = ()) -> None:
        self.run_id = run_id
        self.ledger_collection = ledger_collection
        self.target = target
        self.where = where  # only the run's items that meet these now (--where)
        # The whole top-level field: whether a created parent holds anything else.
        self.read_fields: tuple[str, ...] | None = None if target is None else (
            target.top, *(c.field for c in where))
        self.entries: dict[str, list[dict[str, Any]]] = {}  # the batch being undone
        self.seen: set[str] = set()  # the items met in the batches undone so far
        self.repeats: set[str] = set()  # those of the batch being undone met before

    def pages(self, client: firestore.Client, collection: str, policy: RetryPolicy,
              after_key: str | None = None) -> Iterator[tuple[list[Any], str]]:
        """The items of each journal batch, newest batch first, as they are now, with the
        batch's journal key (the undo's checkpoint)."""
        journal = Journal(client, self.ledger_collection, self.run_id, policy)
        for key, entries in journal.entries(after_key):
            ids = list(dict.fromkeys(e["id"] for e in entries))
            refs = [client.collection(collection).document(doc_id) for doc_id in ids]
            snaps = read_documents(client, refs, self.read_fields, policy,
                                   "reading the items a run changed")
            # A deleted item met again (an earlier entry of it) is counted once.
            snaps = [snap for snap in snaps if snap.exists or snap.id not in self.seen]
            if self.where:
                snaps = [snap for snap in snaps
                         if snap.exists and holds(snapshot_data(snap), self.where)]
            # Read only when the batch before is written: entries of one item follow on.
            found = {snap.id: snap for snap in snaps}
            self.entries = {}
            for entry in entries:
                self.entries.setdefault(entry["id"], []).append(
                    self._landing(entry, found.get(entry["id"]), key))
            self.repeats = self.seen & found.keys()
            self.seen |= found.keys()
            yield sorted(snaps, key=lambda snap: snap.id), key

    def _field(self, entry: dict[str, Any]) -> TargetField:
        if "path" in entry:
            return TargetField(entry["path"])
        assert self.target is not None, "a backfill's entries name no path"
        return self.target

    def _landing(self, entry: dict[str, Any], snap: Any, key: str) -> dict[str, Any]:
        """An entry whose outcome was never recorded (a kill between the write and its
        record) landed when the item holds exactly what the run wrote and has not changed
        since the batch was written; `changed_since`: it holds it, but changed later."""
        if entry["landed"] is not None or snap is None or not snap.exists:
            return entry
        if not self._holds_written(entry, snapshot_data(snap)):
            return entry
        written_by = written_at_ns(key) / 1e9 + LANDING_WINDOW_SECONDS
        if snap.update_time.timestamp() <= written_by:
            return {**entry, "landed": True}
        return {**entry, "changed_since": True}

    def _holds_written(self, entry: dict[str, Any], data: Mapping[str, Any]) -> bool:
        """Whether the item holds, at the entry's path, what the run wrote there."""
        current = self._field(entry).value(data)
        if entry["after"] == DELETED:
            return current is ABSENT
        if entry["after"] == SERVER_TIME:  # the time the server set for the run, exactly
            return "committed_ns" in entry and nanoseconds(current) == entry["committed_ns"]
        return current is not ABSENT and fingerprint(current) == entry["after"]

    def page_source(self, client: firestore.Client, collection: str,
                    policy: RetryPolicy) -> PageSource | None:
        """The items the undone run journaled, batch by batch, newest first."""
        return lambda after_key: self.pages(client, collection, policy, after_key)

    def decide(self, doc_id: str, data: dict[str, Any]) -> Decision:
        """Each path's undo, in one write (and one report) for the item."""
        again = doc_id in self.repeats
        decisions = [self._undo_again(entry, data) if again else self._undo(entry, data)
                     for entry in self.entries[doc_id]]
        fields = {path: value for d in decisions for path, value in (d.fields or {}).items()}
        fields = self._with_made_maps(fields, self.entries[doc_id], data)
        problems = [d.problem for d in decisions if d.problem]
        decision = Decision(doc_id, fields or None,
                            problem="; ".join(problems) if problems else None)
        return replace(decision, repeat=True) if again else decision

    def _undo_again(self, entry: dict[str, Any], data: dict[str, Any]) -> Decision:
        """An older entry of an item a newer one already gave back (or reported): it
        matters only when the item holds what this older write put there (the run wrote
        the item twice, the newer write over its own older one)."""
        if entry["landed"] is not False and entry["after"] != DELETED and \
                self._holds_written(entry, data):
            return Decision(entry["id"], self._restore(entry, data))
        return Decision(entry["id"], None)

    def _undo(self, entry: dict[str, Any], data: dict[str, Any]) -> Decision:
        doc_id, field = entry["id"], self._field(entry)
        if entry["landed"] is False:
            return Decision(doc_id, None)  # the run's write did not land: nothing to undo
        ours = self._holds_written(entry, data)
        if ours and entry["landed"]:
            return Decision(doc_id, self._restore(entry, data))
        before = entry.get("before") if entry["had_field"] else DELETE_FIELD
        if unchanged(field.value(data), before):
            return Decision(doc_id, None)  # as before the run already (undone, or unwritten)
        if entry["after"] == SERVER_TIME and "committed_ns" not in entry:
            return Decision(doc_id, None, problem=(
                f"the server's time the run set on {field.path} was never recorded (the run "
                "ended before it could record it); left as is"))
        if entry.get("changed_since") and ours:
            return Decision(doc_id, None, problem=(
                f"the run's write of {field.path} was never recorded as landed; the "
                "item holds the value the run wrote but changed later; left as is"))
        if entry["landed"] is None:
            return Decision(doc_id, None, problem=(
                f"the run's write of {field.path} was never recorded as landed and "
                "the item does not hold the value the run wrote; left as is"))
        return Decision(doc_id, None,
                        problem=f"{field.path} changed after the run; left as is")

    def _restore(self, entry: dict[str, Any], data: dict[str, Any]) -> dict[str, Any]:
        field = self._field(entry)
        if entry["had_field"]:
            return {field.path: entry.get("before")}
        return {field.path: DELETE_FIELD}

    def _with_made_maps(self, fields: dict[str, Any], entries: list[dict[str, Any]],
                        data: dict[str, Any]) -> dict[str, Any]:
        """`fields`, where a map the run made (a parent absent before it) holds, once the
        item's paths are given back, nothing but what the run made in it: that map deleted
        instead, the outermost one (the item's paths taken together)."""
        removed = [self._field(e) for e in entries if e.get("created") is not None
                   and fields.get(self._field(e).path) is DELETE_FIELD]
        if not removed:
            return fields
        after = _applied(data, fields)
        for field in removed:
            created = next(e["created"] for e in entries if self._field(e) == field)
            for depth in range(created, len(field.segments) - 1):
                made = _skeleton([f.segments[depth + 1:] for f in removed
                                  if f.segments[:depth + 1] == field.segments[:depth + 1]])
                if stored_value(after, field.segments[:depth + 1]) == made:
                    prefix = field.prefix(depth)
                    fields = {path: value for path, value in fields.items()
                              if not path.startswith(prefix + ".")}
                    fields[prefix] = DELETE_FIELD
                    after = _applied(data, fields)
                    break
        return fields


def _skeleton(paths: list[tuple[str, ...]]) -> dict[str, Any]:
    """The maps a run made on the way to `paths` (their leaves gone): nested, empty."""
    tree: dict[str, Any] = {}
    for segments in paths:
        node = tree
        for key in segments[:-1]:
            node = node.setdefault(key, {})
    return tree


def _applied(data: Mapping[str, Any], fields: Mapping[str, Any]) -> dict[str, Any]:
    """`data` as it would be after an update of `fields` (DELETE_FIELD deletes)."""
    result = copy.deepcopy(dict(data))
    for path, value in fields.items():
        *parents, leaf = path.split(".")
        node = result
        for key in parents:
            node = node.setdefault(key, {}) if isinstance(node.get(key), dict) or \
                key not in node else {}
        if value is DELETE_FIELD:
            node.pop(leaf, None)
        else:
            node[leaf] = value
    return result
