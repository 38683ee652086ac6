"""Time as the tools record it: aware UTC datetimes, ISO 8601 strings, file stamps. A
leaf: it imports nothing of the package."""

from __future__ import annotations

from datetime import UTC, datetime


def utc_now() -> datetime:
    return datetime.now(UTC)


def iso(moment: datetime | None) -> str | None:
    return None if moment is None else moment.astimezone(UTC).isoformat()


def file_stamp(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y%m%d_%H%M%S")
