"""Seed a collection with sample items (demo, benchmarks, tests). Not a production tool."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from google.cloud import firestore


def seed(client: firestore.Client, collection: str,
         items: Iterable[tuple[str, dict[str, Any]]]) -> int:
    """Write (document ID, data) pairs, 500 to a commit. Returns how many were written."""
    ref = client.collection(collection)
    batch = client.batch()
    count = 0
    for doc_id, data in items:
        batch.set(ref.document(doc_id), data)
        count += 1
        if count % 500 == 0:
            batch.commit()
            batch = client.batch()
    if count % 500:
        batch.commit()
    return count
