"""What a write stores: the index entries and bytes of a value, by the rules `cost.py`
cites, and a dry run's count of them. A leaf: the stats carry a volume, the estimate
prices it."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

MAP_BYTES = 32


def index_entries(value: Any) -> int:
    """The single-field index entries a field holding `value` has (the rules above)."""
    if isinstance(value, Mapping):
        return sum(index_entries(sub) for sub in value.values())
    if isinstance(value, list | tuple):
        distinct = {repr(element) for element in value}
        return len(distinct)
    return 2


def storage_bytes(value: Any) -> int:
    """A value's size by Firestore's storage-size rules."""
    if isinstance(value, str):
        return len(value.encode("utf-8", "surrogatepass")) + 1
    if isinstance(value, bytes):
        return len(value)
    if isinstance(value, Mapping):
        return MAP_BYTES + sum(storage_bytes(str(key)) + storage_bytes(sub)
                               for key, sub in value.items())
    if isinstance(value, list | tuple):
        return sum(storage_bytes(element) for element in value)
    if value is None or isinstance(value, bool):
        return 1
    if isinstance(value, int | float | datetime):
        return 8
    return 16  # a reference, a point: a little more than a number


@dataclass
class WriteVolume:
    """What a dry run would write, counted as it reads: the run's pages with writes, and
    the index entries and bytes of the values written."""

    batches: int = 0  # pages with at least one write: one journal document each (at least)
    smallest_batch: int = 0  # the fewest writes of those pages (0: none)
    largest_batch: int = 0
    index_entries: int = 0
    field_bytes: int = 0
    journal_bytes: int = 0  # the previous values the journal keeps

    def add(self, other: WriteVolume) -> None:
        if other.smallest_batch:
            self.smallest_batch = min(self.smallest_batch or other.smallest_batch,
                                      other.smallest_batch)
        self.largest_batch = max(self.largest_batch, other.largest_batch)
        self.batches += other.batches
        self.index_entries += other.index_entries
        self.field_bytes += other.field_bytes
        self.journal_bytes += other.journal_bytes
