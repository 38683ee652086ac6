"""A write's values as the engine compares them: a digest of a value as written (the
journal keeps it to tell later whether the value is still there), what a write that
deletes or sets the server's time leaves to compare, and whether a write changes
anything at all."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

from google.cloud.firestore_v1 import DELETE_FIELD, SERVER_TIMESTAMP

from backfill.fields import ABSENT, stored_value

# What the journal keeps as the value of a write that deleted its field, or set the
# server's time (which only its result tells): fixed words, never a digest's hex.
DELETED, SERVER_TIME = "deleted", "server-time"


def fingerprint(value: Any) -> str:
    """A short digest of a value as written, to tell later whether it is still there.

    The journal keeps this instead of the whole new value: half the bytes per batch."""
    text = json.dumps(value, sort_keys=True, default=_as_read_back, ensure_ascii=False)
    return hashlib.blake2b(text.encode(), digest_size=12).hexdigest()


def _as_read_back(value: Any) -> dict[str, str]:
    """A value JSON has no form for, as it reads back from Firestore: a time in UTC
    (a naive one is stored as UTC), bytes as bytes, a reference by its path; the rest (a
    geo point) by its repr. Tagged with a key Firestore reserves (`__x__`), so that no
    stored map or string has the same form."""
    if isinstance(value, datetime):
        aware = value if value.tzinfo is not None else value.replace(tzinfo=UTC)
        return {"__time__": aware.astimezone(UTC).isoformat()}
    if isinstance(value, bytes):
        return {"__bytes__": value.hex()}
    path = getattr(value, "path", None)  # a DocumentReference
    if isinstance(path, str):
        return {"__reference__": path}
    return {"__repr__": repr(value)}


def written_as(new: Any) -> str:
    """What the journal keeps of a value written: its digest, or the marker of a write
    that deleted the field or set the server's time."""
    if new is DELETE_FIELD:
        return DELETED
    if new is SERVER_TIMESTAMP:
        return SERVER_TIME
    return fingerprint(new)


def unchanged(current: Any, new: Any) -> bool:
    """Whether writing `new` where the document holds `current` changes nothing: a value
    it holds already, a delete where it holds nothing."""
    if new is DELETE_FIELD:
        return current is ABSENT
    return current is not ABSENT and fingerprint(current) == fingerprint(new)


def without_unchanged(fields: Mapping[str, Any], data: Mapping[str, Any]) -> dict[str, Any]:
    """The writes of `fields` that change something on a document holding `data` (the
    whole of each path read): a re-run writes nothing."""
    return {path: value for path, value in fields.items()
            if not unchanged(stored_value(data, tuple(path.split("."))), value)}
