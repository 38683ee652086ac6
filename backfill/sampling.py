"""A uniform random sample of a collection's items: every item equally likely.

Two methods, each uniform; which one runs depends on the collection's size:

- **Exact** (collections of up to EXACT_LIMIT items, or when asked): one keys-only scan
  with a reservoir. One read per item: at most a fifth of Firestore's free daily 50,000.
- **Random windows** (larger collections): a window of fixed width in the key space of
  auto IDs (20 characters of [0-9A-Za-z]), placed at a uniform random point, holds each
  item with the same probability (its width), whatever the item's ID: for any ID, the
  points whose window covers it are exactly `width` consecutive points. The whole window
  is taken (one keys-only range query). The number of windows is fixed before any is
  read (for a quarter more than the sample: the sample is that much larger, and is
  short, then filled by a second round, about once in a hundred draws), and nothing
  found is dropped, so nothing a window finds changes any item's chance. The width is
  set for a few items per window, so the cost follows the sample, not the collection:
  about one read per sampled item and one per window.

Equal inclusion is not the whole story: IDs bunched in one place (sequential numbers,
slugs under a common prefix) make windows that hold many items or none, and a sample of
a few windows is then lumpy. So before the windows, the first characters of the IDs are
counted (count() per first character: one read per 1,000 items counted) and compared with
the even spread random IDs give; and every window's IDs must be auto IDs and fit the cap.
Where any of this fails, or the draw spends more than its read budget, the exact method
runs instead, and says why.
"""

from __future__ import annotations

import math
import random
import re
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

from backfill.pager import (
    KEYS_ONLY,
    PAGE_TIMEOUT_SECONDS,
    Items,
    count_documents,
    id_range,
    iter_pages,
)
from backfill.retry import NO_LIBRARY_RETRY, RetryPolicy, call_timeout, call_with_retry
from backfill.shards import AUTO_ID_ALPHABET, key_of

AUTO_ID = re.compile(r"[0-9A-Za-z]{20}")
KEY_SPACE = len(AUTO_ID_ALPHABET) ** 20
EXACT_LIMIT = 10_000  # items: up to this, the exact scan (one read per item)
ITEMS_PER_WINDOW = 4.0  # a window's expected size
OVERDRAW = 1.25  # windows for this many times the sample: short of it in about 1 in 100
WINDOW_CAP = 60  # a window holding more than this: IDs bunched, not random
READ_BUDGET = 4  # reads per sampled item, beyond which the draw gives up
SPREAD_SIGMAS = 6.0  # a first character this far from its expected count: not random
PARALLEL_QUERIES = 16

RANDOM_WINDOWS = "random windows of the ID key space (every item equally likely)"
FULL_SCAN = "exact: reservoir over a keys-only scan of every item"


@dataclass(frozen=True)
class Sample:
    ids: list[str]
    method: str
    reads: int  # documents billed to draw the sample (the items' own fetch not included)
    note: str | None = None  # why the exact method was used, when it was not asked for


class _NotSpread(Exception):
    """The IDs are not spread as random IDs are: windows would make a lumpy sample."""


def draw_sample(collection: Items, size: int, seed: int | None,
                policy: RetryPolicy, *, exact: bool = False, page_size: int = 500,
                total: int | None = None) -> Sample:
    """At least `size` distinct item IDs (all of them, when the collection is smaller),
    every item equally likely: random windows give a quarter more. `total`: the
    collection's size (counted if not given)."""
    rng = random.Random(seed)
    reads = 0
    if total is None:
        total = count_documents(collection, policy)
        reads = max(1, math.ceil(total / 1000))  # count() bills a read per 1,000 items
    if exact:
        return _reservoir(collection, size, rng, policy, page_size, None, reads)
    if total <= max(EXACT_LIMIT, 2 * size):
        return _reservoir(collection, size, rng, policy, page_size, None, reads)
    try:
        reads += _check_spread(collection, total, policy)
        return _windows(collection, size, total, rng, policy, reads)
    except _NotSpread as why:
        return _reservoir(collection, size, rng, policy, page_size,
                          f"{why}: random windows would not draw a smooth sample", reads)


def _query(query: Any, policy: RetryPolicy) -> list[Any]:
    return call_with_retry(lambda: list(query.stream(
        retry=NO_LIBRARY_RETRY, timeout=call_timeout(PAGE_TIMEOUT_SECONDS))), policy,
        "drawing a sample")


def key_at(position: int) -> str:
    """The auto ID at `position` of the key space (0 <= position < KEY_SPACE)."""
    return key_of(position, 20)


def _range(collection: Items, start: str | None, end: str | None) -> Any:
    return id_range(collection.select(list(KEYS_ONLY)), start, end)


def _check_spread(collection: Items, total: int, policy: RetryPolicy) -> int:
    """Random IDs spread evenly over their first character; bunched ones do not. Returns
    the reads it cost; raises _NotSpread."""
    firsts = list(AUTO_ID_ALPHABET)
    bounds = [(None if i == 0 else c, firsts[i + 1] if i + 1 < len(firsts) else None)
              for i, c in enumerate(firsts)]
    with ThreadPoolExecutor(max_workers=PARALLEL_QUERIES,
                            thread_name_prefix="sample") as pool:
        counts = list(pool.map(lambda b: count_documents(_range(collection, *b), policy), bounds))
    expected = total / len(firsts)
    for first, count in zip(firsts, counts, strict=True):
        if abs(count - expected) > SPREAD_SIGMAS * math.sqrt(expected) + 2:
            raise _NotSpread(f"{count} IDs start with {first!r}, where random auto IDs "
                             f"would give about {expected:.0f}")
    return sum(max(1, math.ceil(c / 1000)) for c in counts)


def _windows(collection: Items, size: int, total: int, rng: random.Random,
             policy: RetryPolicy, reads: int) -> Sample:
    width = max(1, round(ITEMS_PER_WINDOW * KEY_SPACE / total))
    budget = READ_BUDGET * size + 50
    chosen: dict[str, None] = {}  # ordered, distinct

    def window(start: int) -> tuple[list[str], int]:
        end = start + width
        spans: list[tuple[str | None, str | None]]
        if end <= KEY_SPACE:
            spans = [(key_at(start), key_at(end) if end < KEY_SPACE else None)]
        else:  # the window wraps past the end of the key space
            spans = [(key_at(start), None), (None, key_at(end - KEY_SPACE))]
        found: list[str] = []
        billed = 0
        for low, high in spans:
            ids = [s.id for s in _query(_range(collection, low, high).limit(WINDOW_CAP + 1),
                                        policy)]
            billed += max(1, len(ids))  # a query that finds nothing is billed one read
            found += ids
        return found, billed

    with ThreadPoolExecutor(max_workers=PARALLEL_QUERIES,
                            thread_name_prefix="sample") as pool:
        while len(chosen) < size:
            # A number of windows fixed before any is read, every item of each taken:
            # nothing the windows find changes any item's chance. Enough for the sample
            # but rarely; then a second round fills it.
            wanted = size - len(chosen)
            windows = max(1, math.ceil(OVERDRAW * wanted / ITEMS_PER_WINDOW))
            starts = [rng.randrange(KEY_SPACE) for _ in range(windows)]
            for found, billed in pool.map(window, starts):
                reads += billed
                if len(found) > WINDOW_CAP:
                    raise _NotSpread(f"a window of {ITEMS_PER_WINDOW:g} items on average "
                                     f"held more than {WINDOW_CAP}")
                strangers = [doc_id for doc_id in found if not AUTO_ID.fullmatch(doc_id)]
                if strangers:
                    raise _NotSpread(f"IDs such as {strangers[0][:40]!r} are not auto IDs")
                chosen.update(dict.fromkeys(found))
            if reads > budget:
                raise _NotSpread(f"the draw spent {reads} reads, more than {budget}")
    # All of it: dropping the extra would favour items whose windows held few others.
    return Sample(sorted(chosen), RANDOM_WINDOWS, reads)


def _reservoir(collection: Items, size: int, rng: random.Random,
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
