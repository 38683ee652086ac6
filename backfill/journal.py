"""The journal of a backfill run: what `normalized` was before the run changed it.

Kept in the database beside the run's ledger entry (`_backfill_runs/RUN_ID/journal`), so
that `scripts/backfill_rollback.py --run-id RUN_ID` can undo exactly that run, even after
the container that ran it is gone. One journal document per batch (one extra write per
batch), written before the batch itself, so no change is ever unjournaled. An entry
whose write then failed (a conflict, a deleted item) is harmless: undoing finds the item
still as it was before, and leaves it.
"""

from __future__ import annotations

import secrets
import time
from collections.abc import Iterator
from typing import Any

from google.cloud import firestore

from backfill.pager import iter_pages
from backfill.retry import NO_LIBRARY_RETRY, RetryPolicy, call_with_retry

JOURNAL = "journal"


def journal_entry(doc_id: str, field: str, data: dict[str, Any], new: Any) -> dict[str, Any]:
    return {"id": doc_id, "had_field": field in data, "before": data.get(field), "after": new}


class Journal:
    def __init__(self, client: firestore.Client, ledger_collection: str, run_id: str,
                 policy: RetryPolicy, shard_key: str = "0") -> None:
        self.collection = client.collection(ledger_collection).document(run_id).collection(
            JOURNAL)
        self.policy = policy
        self.shard_key = shard_key

    def record(self, entries: list[dict[str, Any]]) -> None:
        """One write. Keys sort newest first, so that undoing walks the run backwards."""
        if not entries:
            return
        key = f"{2**63 - time.time_ns():020d}-{self.shard_key}-{secrets.token_hex(3)}"
        ref = self.collection.document(key)
        # set, not create: when a write succeeded but its answer was lost, the retry
        # writes the same document again instead of failing on it.
        call_with_retry(lambda: ref.set({"entries": entries}, retry=NO_LIBRARY_RETRY),
                        self.policy, "writing the run journal")

    def entries(self, page_size: int = 20) -> Iterator[list[dict[str, Any]]]:
        """The journal's batches, newest first."""
        for page in iter_pages(self.collection, fields=None, page_size=page_size,
                               policy=self.policy):
            for snap in page:
                yield list((snap.to_dict() or {}).get("entries", []))
