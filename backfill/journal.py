"""The journal of a backfill run: what the target field was before the run changed it.

Kept in the database beside the run's ledger entry (`_backfill_runs/RUN_ID/journal`), so
that `scripts/backfill_rollback.py --run-id RUN_ID` can undo exactly that run, even after
the container that ran it is gone. One journal document per batch (one extra write per
batch), written before the batch itself, so no change is ever unjournaled. An entry
whose write then failed (a conflict, a deleted item) is harmless: undoing finds the item
still as it was before, and leaves it.
"""

from __future__ import annotations

import json
import secrets
import threading
import time
from collections.abc import Callable, Iterator
from functools import partial
from itertools import groupby
from typing import Any

from google.cloud import firestore
from google.cloud.firestore_v1 import _helpers
from google.cloud.firestore_v1.batch import WriteBatch
from google.cloud.firestore_v1.types import document

from backfill.fence import Fence
from backfill.fields import ABSENT
from backfill.pager import iter_pages
from backfill.retry import (
    CALL_SECONDS,
    NO_LIBRARY_RETRY,
    RetryPolicy,
    call_timeout,
    call_with_retry,
)
from backfill.sizes import within_budget
from backfill.target_field import Parent, TargetField
from backfill.values import written_as

JOURNAL = "journal"
FORMAT = 2  # previous values encoded (see encode)
# A journal document stays under Firestore's 1 MiB limit with room to spare; a previous
# value larger than MAX_JOURNALED_BYTES cannot be journaled, so it is never overwritten.
JOURNAL_DOCUMENT_BUDGET = 800_000
MAX_JOURNALED_BYTES = 700_000
# Each entry's earlier value, and its server time, is a field of the document's maps: a
# document has at most 40,000 index entries (a task's batch has one entry per path).
MAX_ENTRIES_PER_DOCUMENT = 10_000
MAX_PATHS_PER_ITEM = 500  # what one write of a task may change, journaled
_ENTRY_OVERHEAD = 80  # its ID's quotes, the fingerprint, the position key


def longest_in_flight(max_retry_seconds: float) -> float:
    """How long after its journal document a batch's write may still land: its commit's
    retries (two budgets) and a minute more."""
    return 2 * max_retry_seconds + 60


# What an undo assumes of a run it cannot ask: the default retry budget.
LANDING_WINDOW_SECONDS = longest_in_flight(RetryPolicy().max_total_wait)


def encode(value: Any) -> bytes:
    """A Firestore value as the bytes of its protobuf: every type survives (timestamps,
    bytes, NaN, references), and the journal stores one opaque value per item instead of
    one index entry per nested field (a document holds at most 40,000 index entries)."""
    return bytes(document.Value.serialize(_helpers.encode_value(value)))


def decode(data: bytes, client: firestore.Client) -> Any:
    return _helpers.decode_value(document.Value.deserialize(data), client)


def journal_entry(doc_id: str, target: TargetField, data: dict[str, Any],
                  new: Any, recorded_path: bool = False) -> dict[str, Any]:
    """What to keep of one item before the write: its previous value at the target, and
    the depth of the parent map the write will create, if it creates one.
    `recorded_path`: the entry names its path (a task's; a backfill's is its run's)."""
    before = target.value(data)
    entry: dict[str, Any] = {"id": doc_id, "had_field": before is not ABSENT,
                             "after": written_as(new)}
    if recorded_path:
        entry["path"] = target.path
    if before is not ABSENT:  # nothing to keep for an absent field but the fact
        entry["before"] = before
        entry["encoded"] = encode(before)
    state, depth = target.parent(data, masked=False)
    if state is Parent.ABSENT:
        entry["created"] = depth
    return entry


def entry_bytes(entry: dict[str, Any]) -> int:
    return (len(entry["id"].encode()) + len(entry.get("path", "").encode()) + _ENTRY_OVERHEAD
            + len(entry.get("encoded", b"")))


def too_large_to_journal(entries: list[dict[str, Any]]) -> bool:
    """Whether one write's earlier values (a task's: of every path) are too large to keep
    in one journal document beside others."""
    return len(entries) > MAX_PATHS_PER_ITEM or \
        sum(len(e.get("encoded", b"")) for e in entries) > MAX_JOURNALED_BYTES


def _documents(entries: list[dict[str, Any]]) -> Iterator[list[dict[str, Any]]]:
    """The entries in journal documents within the size and count limits, an item's
    entries always in one document (an undo meets each item once per document)."""
    groups = [list(group) for _, group in groupby(entries, key=lambda entry: entry["id"])]
    for chunk in within_budget(groups, lambda group: sum(map(entry_bytes, group)),
                               JOURNAL_DOCUMENT_BUDGET, MAX_ENTRIES_PER_DOCUMENT, count=len):
        yield [entry for group in chunk for entry in group]


class Journal:
    def __init__(self, client: firestore.Client, ledger_collection: str, run_id: str,
                 policy: RetryPolicy, shard_key: str = "0", fence: Fence | None = None) -> None:
        self.collection = client.collection(ledger_collection).document(run_id).collection(
            JOURNAL)
        self.client = client
        self.policy = policy
        self.shard_key = shard_key
        self.fence = fence  # each journal document is written behind the run's lease
        # Which writes landed, per journal document, not yet written: they go with the
        # next journal commit or the run's last record (no round trip of their own).
        self._outcomes: dict[str, dict[str, Any]] = {}
        self._outcomes_lock = threading.Lock()

    def record(self, entries: list[dict[str, Any]]) -> list[tuple[str, int]]:
        """Before a batch: its entries, in as many documents as the size limit needs
        (written one after the other, all before the batch). Keys sort newest first, so
        that undoing walks the run backwards. Returns each document's key and how many
        entries it holds.

        IDs and fingerprints go into one JSON string (Firestore indexes a string once,
        an array of maps once per element); previous values are encoded Firestore
        values (see encode), keyed by their position in that string."""
        keys = []
        for chunk in _documents(entries):
            key = f"{2**63 - time.time_ns():020d}-{self.shard_key}-{secrets.token_hex(3)}"
            ref = self.collection.document(key)
            document_ = {
                "format": FORMAT,
                "items": json.dumps([_item(e) for e in chunk], ensure_ascii=False),
                "before": {str(i): e["encoded"] for i, e in enumerate(chunk)
                           if e["had_field"]},
                "count": len(chunk),
            }
            # set, not create: when a write succeeded but its answer was lost, the retry
            # writes the same document again instead of failing on it.
            if self.fence is not None:
                outcomes = self._pending()
                self.fence.commit(partial(self._set_with_outcomes, ref, document_, outcomes),
                                  "writing the run journal")
                self._written(outcomes)
            else:
                call_with_retry(partial(_write, ref.set, document_), self.policy,
                                "writing the run journal")
            keys.append((key, len(chunk)))
        return keys

    def record_outcome(self, parts: list[tuple[str, int]], landed: list[bool],
                       times: list[int | None] | None = None) -> None:
        """After the batch: which of its journaled writes landed ("1") and which did not
        ("0": a conflict, a deleted item, a refusal), in the order of the entries, per
        journal document; and `times`, the commit time (ns) of each write whose value was
        the server's time (what an undo compares). Behind a fence, kept to go with the
        next journal commit or the run's last record (`outcomes_in`); else written now. An
        entry without an outcome (a kill in between) is not guessed at by an undo."""
        flags = "".join("1" if ok else "0" for ok in landed)
        start = 0
        for key, size in parts:
            fields: dict[str, Any] = {"landed": flags[start:start + size]}
            stamped = {str(i): at for i, at in enumerate((times or [])[start:start + size])
                       if at is not None}
            if stamped:
                fields["times"] = stamped
            if self.fence is not None:
                with self._outcomes_lock:
                    self._outcomes[key] = fields
            else:
                self._write_landed(key, fields)
            start += size

    def _write_landed(self, key: str, fields: dict[str, Any]) -> None:
        call_with_retry(partial(_write, self.collection.document(key).update, fields),
                        self.policy, "writing the run journal")

    def _pending(self) -> dict[str, dict[str, Any]]:
        with self._outcomes_lock:
            return dict(self._outcomes)

    def _written(self, outcomes: dict[str, dict[str, Any]]) -> None:
        with self._outcomes_lock:
            for key in outcomes:
                if self._outcomes.get(key) == outcomes[key]:
                    del self._outcomes[key]

    def _set_with_outcomes(self, ref: Any, fields: dict[str, Any],
                           outcomes: dict[str, dict[str, Any]],
                           batch: WriteBatch) -> None:
        batch.set(ref, fields)
        self._add_outcomes(outcomes, batch)

    def _add_outcomes(self, outcomes: dict[str, dict[str, Any]], batch: WriteBatch) -> None:
        for key, fields in outcomes.items():
            batch.update(self.collection.document(key), fields)

    def outcomes_in(self, batch: WriteBatch) -> Callable[[], None]:
        """Put the outcomes not yet written into `batch` (the run's last commit); returns
        what to call once that commit succeeded."""
        outcomes = self._pending()
        self._add_outcomes(outcomes, batch)
        return partial(self._written, outcomes)

    def write_outcomes(self) -> None:
        """The outcomes not yet written, on their own (when the run's last commit could
        not carry them: its lease was lost)."""
        outcomes = self._pending()
        for key, fields in outcomes.items():
            self._write_landed(key, fields)
        self._written(outcomes)

    def written_since(self, cutoff_ns: int, page_size: int = 100) -> frozenset[str]:
        """IDs of this shard's journaled writes since `cutoff_ns` (by the writer's clock),
        but those known not to have landed: after a kill, the writes a resume finds done
        were this run's own (and are counted as its updates, not as skips). Reads only
        the IDs and outcomes, newest first, and stops at the cutoff."""
        written: set[str] = set()
        for page in iter_pages(self.collection, fields=["items", "landed"],
                               page_size=page_size, policy=self.policy):
            for snap in page:
                if written_at_ns(snap.id) < cutoff_ns:
                    return frozenset(written)
                if snap.id.split("-")[1] != self.shard_key:
                    continue
                data = snap.to_dict() or {}
                landed = str(data.get("landed", ""))
                for i, (doc_id, *_rest) in enumerate(json.loads(data.get("items", "[]"))):
                    if i >= len(landed) or landed[i] == "1":
                        written.add(doc_id)
        return frozenset(written)

    def entries(self, after_key: str | None = None, page_size: int = 20,
                ) -> Iterator[tuple[str, list[dict[str, Any]]]]:
        """The journal's batches, newest first, each with its key, as the entries
        journal_entry() made, and whether each write landed (True, False, or None when
        the outcome was never recorded)."""
        for page in iter_pages(self.collection, fields=None, page_size=page_size,
                               policy=self.policy, after_id=after_key):
            for snap in page:
                data = snap.to_dict() or {}
                before = data.get("before", {})
                if data.get("format") == FORMAT:
                    before = {i: decode(v, self.client) for i, v in before.items()}
                landed = str(data.get("landed", ""))
                times = data.get("times") or {}
                entries = []
                for i, (doc_id, after, *rest) in enumerate(
                        json.loads(data.get("items", "[]"))):
                    entry = {"id": doc_id, "had_field": str(i) in before, "after": after}
                    created, path = [*rest, None, None][:2]
                    if created is not None:
                        entry["created"] = created
                    if path is not None:
                        entry["path"] = path
                    entry["landed"] = (landed[i] == "1") if i < len(landed) else None
                    if str(i) in times:
                        entry["committed_ns"] = int(times[str(i)])
                    if str(i) in before:
                        entry["before"] = before[str(i)]
                    entries.append(entry)
                yield snap.id, entries


def _item(entry: dict[str, Any]) -> list[Any]:
    """An entry as the journal's items string keeps it: [id, after], then the depth of
    the parent it creates (or null) and its path, when it has them."""
    item = [entry["id"], entry["after"]]
    if "path" in entry:
        return [*item, entry.get("created"), entry["path"]]
    return [*item, entry["created"]] if "created" in entry else item


def written_at_ns(key: str) -> int:
    """When a journal document was written (time.time_ns of its writer), from its key."""
    return 2**63 - int(key.split("-", 1)[0])


def _write(action: Any, fields: dict[str, Any]) -> None:
    action(fields, retry=NO_LIBRARY_RETRY, timeout=call_timeout(CALL_SECONDS))
