"""Users without a plan get the free one, and a count of their wardrobe items."""

from __future__ import annotations

from typing import Any

from google.cloud.firestore_v1 import FieldFilter

from backfill import Task


class FillPlanDefaults(Task):
    """settings.plan defaults to "free"; itemCount is the user's items in `wardrobe`."""

    collection = "users"
    reads = ("settings.plan", "itemCount")
    version = "1"

    def changes(self, doc_id: str, data: dict[str, Any]) -> dict[str, Any] | None:
        wanted: dict[str, Any] = {}
        if data.get("settings", {}).get("plan") is None:
            wanted["settings.plan"] = "free"
        items = self.client.collection("wardrobe").where(
            filter=FieldFilter("userId", "==", doc_id)).count().get()[0][0].value
        if data.get("itemCount") != items:
            wanted["itemCount"] = items
        return wanted
