"""Wardrobe items lose the fields an old app version wrote and nothing reads any more."""

from __future__ import annotations

from typing import Any

from backfill import DELETE_FIELD, Task


class DropLegacyFields(Task):
    """Delete `legacyColor` and `metadata.oldTags` wherever they are."""

    collection = "wardrobe"
    reads = ("legacyColor", "metadata.oldTags")
    version = "1"

    def changes(self, doc_id: str, data: dict[str, Any]) -> dict[str, Any] | None:
        gone = {}
        if "legacyColor" in data:
            gone["legacyColor"] = DELETE_FIELD
        if "oldTags" in data.get("metadata", {}):
            gone["metadata.oldTags"] = DELETE_FIELD
        return gone
