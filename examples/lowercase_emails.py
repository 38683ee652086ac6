"""Users get `emailLower`: their email in lower case, for a case-blind lookup."""

from __future__ import annotations

from typing import Any

from backfill import Task


class LowercaseEmails(Task):
    """Every user with an email carries emailLower, its lower-case form."""

    collection = "users"
    reads = ("email", "emailLower")
    version = "1"

    def changes(self, doc_id: str, data: dict[str, Any]) -> dict[str, Any] | None:
        email = data.get("email")
        if isinstance(email, str) and data.get("emailLower") != email.lower():
            return {"emailLower": email.lower()}
        return None
