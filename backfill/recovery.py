"""A way back beyond the run's own journal: whether the database keeps point-in-time
recovery (PITR: 7 days of versions, a minute apart), asked of the Firestore Admin API
(`google.cloud.firestore_admin_v1`, part of the installed client library) before a
production run asks for YES.

It never stops a run: a missing permission, the emulator (which does not serve the
Admin API) or no answer within CHECK_SECONDS is said as "could not be checked", with why.
"""

from __future__ import annotations

import shlex
import threading
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from google.api_core import exceptions as gexc

from backfill.target import Target, credentials_of

CHECK_SECONDS = 4.0
ENABLED, DISABLED = 1, 2  # Database.PointInTimeRecoveryEnablement
NEEDED_PERMISSION = "datastore.databases.getMetadata"


def admin_client(target: Target) -> Any:
    from google.cloud.firestore_admin_v1 import FirestoreAdminClient

    return FirestoreAdminClient(credentials=credentials_of(target))


def export_command(target: Target) -> str:
    words = ["gcloud firestore export gs://BUCKET/before-backfill",
             f"--collection-ids={shlex.quote(target.collection)}",
             f"--project={shlex.quote(target.project)}"]
    if target.database != "(default)":
        words.append(f"--database={shlex.quote(target.database)}")
    return " ".join(words)


def recovery_line(target: Target, make_admin: Callable[[Target], Any] = admin_client,
                  seconds: float = CHECK_SECONDS) -> str:
    """One line: PITR on (since when), off (and the export to run first), or not
    checked (and why). Returns within `seconds` and a little, whatever the API does."""
    head = "🛟 Point-in-time recovery:"
    if target.is_emulator:
        return f"{head} could not be checked (the emulator does not serve the Admin API)"
    answer: list[Any] = []

    def ask() -> None:
        try:
            admin = make_admin(target)
            answer.append(admin.get_database(
                name=f"projects/{target.project}/databases/{target.database}",
                timeout=seconds, retry=None))
        except Exception as error:  # whatever it is, the run goes on; the line says it
            answer.append(error)

    worker = threading.Thread(target=ask, name="recovery-check", daemon=True)
    worker.start()
    worker.join(seconds + 0.5)
    if not answer:
        return f"{head} could not be checked (no answer within {seconds:g}s)"
    database = answer[0]
    if isinstance(database, gexc.PermissionDenied):
        return (f"{head} could not be checked (permission denied: the service account "
                f"needs {NEEDED_PERMISSION}, in roles/datastore.viewer or "
                "roles/datastore.owner)")
    if isinstance(database, Exception):
        return f"{head} could not be checked ({type(database).__name__})"
    enablement = int(getattr(database, "point_in_time_recovery_enablement", 0) or 0)
    if enablement == ENABLED:
        earliest = getattr(database, "earliest_version_time", None)
        since = (f" (earliest version {earliest.astimezone(UTC):%Y-%m-%dT%H:%MZ})"
                 if isinstance(earliest, datetime) else "")
        return f"{head} on{since}"
    if enablement == DISABLED:
        return (f"{head} off: before the run, export what it changes: "
                f"{export_command(target)}")
    return f"{head} could not be checked (the API did not say)"
