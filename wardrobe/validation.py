"""Checking what the backfill wrote: the checks per item, coverage, and a random sample."""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

from google.cloud import firestore
from google.cloud.firestore_v1.collection import CollectionReference

from backfill.pager import (
    Items,
    iter_pages,
    part_pages,
    read_documents,
    snapshot_data,
)
from backfill.retry import RetryPolicy
from backfill.shards import split_range
from backfill.target_field import TargetField
from normalizer import SOURCE_FIELD_PATHS, problems


def checked_fields(target: TargetField | None) -> tuple[str, ...]:
    """The field mask of a read for the checks: the rules' sources and the target."""
    return SOURCE_FIELD_PATHS if target is None else (*SOURCE_FIELD_PATHS, target.path)


def fetch_items(client: firestore.Client, collection: CollectionReference, ids: Sequence[str],
                policy: RetryPolicy, target: TargetField | None = None,
                chunk: int = 300) -> Iterator[tuple[str, dict[str, Any]]]:
    """The fields the checks need, for the given IDs, a few hundred per round trip."""
    for start in range(0, len(ids), chunk):
        references = [collection.document(doc_id) for doc_id in ids[start:start + chunk]]
        snaps = read_documents(client, references, checked_fields(target), policy,
                               "reading sampled items")
        for snap in sorted(snaps, key=lambda s: s.id):
            if snap.exists:
                yield snap.id, snapshot_data(snap)


def scan_items(collection: Items, policy: RetryPolicy, page_size: int,
               from_id: str | None = None, before_id: str | None = None,
               target: TargetField | None = None,
               parallel: int = 1) -> Iterator[tuple[str, dict[str, Any]]]:
    """Every item of the range with the fields the checks need; with `parallel` > 1, the
    range is read by that many cursors at once, and items come in no particular order."""
    if parallel > 1:
        for page, _ in part_pages(collection, split_range(from_id, before_id, parallel),
                                  fields=checked_fields(target), page_size=page_size,
                                  policy=policy):
            for snap in page:
                yield snap.id, snapshot_data(snap)
        return
    for page in iter_pages(collection, fields=checked_fields(target), page_size=page_size,
                           policy=policy, from_id=from_id, before_id=before_id):
        for snap in page:
            yield snap.id, snapshot_data(snap)


@dataclass
class ValidationResult:
    target: TargetField
    checked: int = 0
    valid: int = 0
    reasons: Counter[str] = field(default_factory=Counter)
    invalid: list[dict[str, Any]] = field(default_factory=list)  # {"id", "reasons"}

    def add(self, doc_id: str, item: dict[str, Any]) -> None:
        self.checked += 1
        reasons = problems(item, self.target.segments)
        if reasons:
            self.invalid.append({"id": doc_id, "reasons": reasons})
            self.reasons.update(reasons)
        else:
            self.valid += 1
