"""A random sample of a collection's items whose cost follows the sample, not the
collection.

Firestore's auto IDs are 20 random characters of [0-9A-Za-z]. For such IDs, a random
point of that key space is drawn and the first document at or after it is taken (one
keys-only query of one document), many in parallel, until the sample is complete. Which
item is taken depends only on the IDs, which are random and drawn independently of the
item's content: the sample is unbiased with respect to anything validation or the
vocabulary report look at. (An item's chance is proportional to the gap before its ID;
the gaps are random too.) For IDs that are not random auto IDs (sequential, user IDs,
slugs), the gaps follow whatever made the IDs, so this would favour some items: the
exact method then scans every key once with reservoir sampling (uniform, one read per
item). The first IDs of the collection tell which case this is; `exact=True` forces
the scan.
"""

from __future__ import annotations

import random
import re
import string
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

from google.cloud.firestore_v1.collection import CollectionReference

from backfill.pager import DOCUMENT_ID, KEYS_ONLY, PAGE_TIMEOUT_SECONDS, iter_pages
from backfill.retry import NO_LIBRARY_RETRY, RetryPolicy, call_timeout, call_with_retry

AUTO_ID_ALPHABET = "".join(sorted(string.digits + string.ascii_letters))
AUTO_ID = re.compile(r"[0-9A-Za-z]{20}")
PROBE_IDS = 50  # the first IDs, looked at to tell random IDs from others
PARALLEL_PROBES = 16
MAX_ROUNDS = 20

RANDOM_POINTS = "random points of the ID key space"
FULL_SCAN = "exact: reservoir over a keys-only scan of every item"


@dataclass(frozen=True)
class Sample:
    ids: list[str]
    method: str
    reads: int  # documents billed to draw the sample (the items' own fetch not included)
    note: str | None = None  # why the exact method was used, when it was not asked for


def draw_sample(collection: CollectionReference, size: int, seed: int | None,
                policy: RetryPolicy, *, exact: bool = False, page_size: int = 500,
                total: int | None = None) -> Sample:
    """`size` distinct item IDs drawn at random (fewer when the collection is smaller).
    `total`: the collection's size, when known (a sample of most of it is a scan)."""
    rng = random.Random(seed)
    first = [snap.id for snap in _query(collection.select(list(KEYS_ONLY)).order_by(
        DOCUMENT_ID).limit(PROBE_IDS), policy)]
    if exact:
        return _reservoir(collection, size, rng, policy, page_size, None)
    small = len(first) < PROBE_IDS or (total is not None and total <= 2 * size)
    if small:  # the scan costs little more than the sample, and needs no retries
        return _reservoir(collection, size, rng, policy, page_size, None,
                          reads=len(first) or 1)
    if not all(AUTO_ID.fullmatch(doc_id) for doc_id in first):
        return _reservoir(collection, size, rng, policy, page_size,
                          "the IDs are not random auto IDs, so random points of the key "
                          "space would not draw items evenly", reads=len(first))
    return _random_points(collection, size, rng, policy, reads=len(first))


def _query(query: Any, policy: RetryPolicy) -> list[Any]:
    return call_with_retry(lambda: list(query.stream(
        retry=NO_LIBRARY_RETRY, timeout=call_timeout(PAGE_TIMEOUT_SECONDS))), policy,
        "drawing a sample")


def _random_points(collection: CollectionReference, size: int, rng: random.Random,
                   policy: RetryPolicy, reads: int) -> Sample:
    chosen: dict[str, None] = {}  # ordered, distinct
    keys_only = collection.select(list(KEYS_ONLY)).order_by(DOCUMENT_ID).limit(1)

    def next_after(point: str) -> str | None:
        found = _query(keys_only.start_at({DOCUMENT_ID: point}), policy)
        return str(found[0].id) if found else None

    with ThreadPoolExecutor(max_workers=PARALLEL_PROBES,
                            thread_name_prefix="sample") as pool:
        for _ in range(MAX_ROUNDS):
            wanted = size - len(chosen)
            if wanted <= 0:
                break
            # A few more than needed: a point past the last ID, or an item drawn twice,
            # gives nothing new.
            points = ["".join(rng.choice(AUTO_ID_ALPHABET) for _ in range(20))
                      for _ in range(wanted + wanted // 10 + 1)]
            for doc_id in pool.map(next_after, points):
                reads += 1  # a query is billed one read even when it finds nothing
                if doc_id is not None and len(chosen) < size:
                    chosen.setdefault(doc_id)
    return Sample(sorted(chosen), RANDOM_POINTS, reads)


def _reservoir(collection: CollectionReference, size: int, rng: random.Random,
               policy: RetryPolicy, page_size: int, note: str | None,
               reads: int = 0) -> Sample:
    """Every item equally likely, wherever its ID sits; memory holds only the sample."""
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
    return Sample(sorted(reservoir), FULL_SCAN, reads + max(seen, 1), note)


def describe(sample: Sample, size: int) -> str:
    text = f"🎲 Sample of {len(sample.ids)} (asked {size}): {sample.method}, {sample.reads} reads"
    return text + (f" ({sample.note})" if sample.note else "")

