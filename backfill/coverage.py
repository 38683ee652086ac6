"""How many items carry a map at a field: a run's coverage, said after a resume and by
a validation."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from google.cloud.firestore_v1.base_query import FieldFilter

from backfill.pager import Items, count_documents, iter_pages, snapshot_data
from backfill.retry import RetryPolicy
from backfill.target_field import TargetField


@dataclass
class Coverage:
    total: int
    carrying: int  # items whose field holds a map

    @property
    def percent(self) -> float:
        return round(100.0 * self.carrying / self.total, 2) if self.total else 0.0


def coverage(collection: Items, target: TargetField, policy: RetryPolicy,
             subset: bool = False, page_size: int = 500) -> Coverage:
    """Two count() aggregations: all items, and those whose target field is a map.

    A range filter only matches values of its own type, so `>= {}` matches every map.
    A `subset` (--where) is counted by reading its items' target field instead (one read
    per item): a range filter beside the subset's equality filters would need a
    composite index.
    """
    if subset:
        total = carrying = 0
        for page in iter_pages(collection, fields=(target.path,), page_size=page_size,
                               policy=policy):
            total += len(page)
            carrying += sum(isinstance(target.value(snapshot_data(snap)), Mapping)
                              for snap in page)
        return Coverage(total, carrying)
    with_map = collection.where(filter=FieldFilter(target.path, ">=", {}))
    return Coverage(count_documents(collection, policy), count_documents(with_map, policy))
