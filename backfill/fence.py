"""What guards a run's writes: a commit made only while the run holds its collection's
lease (backfill.lease implements it). A leaf, so that what writes behind a fence (the
journal, the runner) need not import the lease."""

from __future__ import annotations

from collections.abc import Callable
from typing import Protocol

from google.cloud.firestore_v1.batch import WriteBatch


class Fence(Protocol):
    def commit(self, add: Callable[[WriteBatch], None], what: str) -> None:
        """Commit the writes `add` puts in a batch, only if the run still holds its lease."""
        ...
