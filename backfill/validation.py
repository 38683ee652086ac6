"""Checking what the backfill wrote: the checks per item, coverage, and a random sample."""

from __future__ import annotations

import random
import re
from collections import Counter
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from google.cloud import firestore
from google.cloud.firestore_v1.base_query import FieldFilter
from google.cloud.firestore_v1.collection import CollectionReference

from backfill.jobs import NORMALIZED_FIELD
from backfill.pager import (
    KEYS_ONLY,
    count_documents,
    iter_pages,
    read_documents,
    snapshot_data,
)
from backfill.retry import RetryPolicy
from normalizer import FACETS, NORMALIZED_VERSION, SOURCE_FIELD_PATHS, normalize_item

_TIMESTAMP = re.compile(r"\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d{1,9})?(Z|\+00:00)")

# Why an item is not valid. An item can have several.
MISSING = "missing"  # no `normalized` field
NULL = "null"  # `normalized` is null
NOT_A_MAP = "not_a_map"
MALFORMED_FACETS = "malformed_facets"  # a facet that is not a list of canonical-looking terms
BAD_TIMESTAMP = "bad_timestamp"  # normalized_at absent or not ISO 8601 UTC
WRONG_VERSION = "wrong_version"
STALE = "stale"  # well-formed, but not what the rules give for the item as it is now


def _is_term_list(value: Any) -> bool:
    return (isinstance(value, list) and len(value) == len(set(map(repr, value)))
            and all(isinstance(t, str) and t and t == t.lower() and " " not in t
                    for t in value))


def _is_utc_timestamp(value: Any) -> bool:
    if not isinstance(value, str) or not _TIMESTAMP.fullmatch(value):
        return False
    try:
        datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return False
    return True


def check_item(item: dict[str, Any]) -> list[str]:
    """The reasons this item's `normalized` is not valid; empty when it is."""
    if NORMALIZED_FIELD not in item:
        return [MISSING]
    normalized = item[NORMALIZED_FIELD]
    if normalized is None:
        return [NULL]
    if not isinstance(normalized, dict):
        return [NOT_A_MAP]
    reasons = []
    well_formed = all(_is_term_list(normalized.get(facet)) for facet in FACETS)
    if not well_formed:
        reasons.append(MALFORMED_FACETS)
    if not _is_utc_timestamp(normalized.get("normalized_at")):
        reasons.append(BAD_TIMESTAMP)
    if normalized.get("normalized_version") != NORMALIZED_VERSION:
        reasons.append(WRONG_VERSION)
    if well_formed:
        expected = normalize_item(item)
        if any(normalized[facet] != expected[facet] for facet in FACETS):
            reasons.append(STALE)
    return reasons


@dataclass
class Coverage:
    total: int
    normalized: int

    @property
    def percent(self) -> float:
        return round(100.0 * self.normalized / self.total, 2) if self.total else 0.0


def coverage(collection: CollectionReference, policy: RetryPolicy) -> Coverage:
    """Two count() aggregations: all items, and those whose `normalized` is a map.

    A range filter only matches values of its own type, so `>= {}` matches every map.
    """
    with_map = collection.where(filter=FieldFilter(NORMALIZED_FIELD, ">=", {}))
    return Coverage(count_documents(collection, policy), count_documents(with_map, policy))


def sample_ids(collection: CollectionReference, size: int, seed: int | None,
               policy: RetryPolicy, page_size: int = 500) -> list[str]:
    """A uniform random sample of document IDs (reservoir sampling over a keys-only scan).

    Every document is equally likely, wherever it sits in the ID range; memory holds only
    the sample. Cost: one keys-only scan (billed as one read per document returned).
    """
    rng = random.Random(seed)
    reservoir: list[str] = []
    seen = 0
    for page in iter_pages(collection, fields=KEYS_ONLY, page_size=page_size, policy=policy):
        for snap in page:
            seen += 1
            if len(reservoir) < size:
                reservoir.append(snap.id)
            else:
                slot = rng.randrange(seen)
                if slot < size:
                    reservoir[slot] = snap.id
    return sorted(reservoir)


def fetch_items(client: firestore.Client, collection: CollectionReference, ids: Sequence[str],
                policy: RetryPolicy, chunk: int = 300) -> Iterator[tuple[str, dict[str, Any]]]:
    """The fields the checks need, for the given IDs, a few hundred per round trip."""
    for start in range(0, len(ids), chunk):
        references = [collection.document(doc_id) for doc_id in ids[start:start + chunk]]
        snaps = read_documents(client, references, SOURCE_FIELD_PATHS, policy,
                               "reading sampled items")
        for snap in sorted(snaps, key=lambda s: s.id):
            if snap.exists:
                yield snap.id, snapshot_data(snap)


def scan_items(collection: CollectionReference, policy: RetryPolicy, page_size: int,
               from_id: str | None = None, before_id: str | None = None,
               ) -> Iterator[tuple[str, dict[str, Any]]]:
    for page in iter_pages(collection, fields=SOURCE_FIELD_PATHS, page_size=page_size,
                           policy=policy, from_id=from_id, before_id=before_id):
        for snap in page:
            yield snap.id, snapshot_data(snap)


@dataclass
class ValidationResult:
    checked: int = 0
    valid: int = 0
    reasons: Counter[str] = field(default_factory=Counter)
    invalid: list[dict[str, Any]] = field(default_factory=list)  # {"id", "reasons"}

    def add(self, doc_id: str, item: dict[str, Any]) -> None:
        self.checked += 1
        reasons = check_item(item)
        if reasons:
            self.invalid.append({"id": doc_id, "reasons": reasons})
            self.reasons.update(reasons)
        else:
            self.valid += 1
