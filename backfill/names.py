"""Names and IDs checked against Firestore's documented rules, locally, before anything is
read: a bad one is one line and exit 2, never a traceback or a server error mid-run.

Document and collection IDs: valid UTF-8, at most 1,500 bytes, no `/`, not `.` or `..`,
not `__...__`. Database IDs: `(default)`, or 4 to 63 of lowercase letters, digits and
hyphens, starting with a letter and ending with a letter or digit. Project IDs: 6 to 30 of
lowercase letters, digits and hyphens, starting with a letter and not ending with a hyphen
(older projects may carry a `domain:` prefix).
"""

from __future__ import annotations

import re
import tempfile
from pathlib import Path

from backfill.errors import ConfigurationError

MAX_ID_BYTES = 1500
_DATABASE = re.compile(r"[a-z][a-z0-9-]{2,61}[a-z0-9]")
_PROJECT = re.compile(r"(?:[a-z0-9.-]+:)?[a-z][a-z0-9-]{4,28}[a-z0-9]")


def check_id(value: str, what: str) -> str:
    """A document or collection ID (what: the option that gave it, e.g. `--resume`)."""
    problem = None
    if not value:
        problem = "it is empty"
    elif "/" in value:
        problem = "it holds a `/`"
    elif value in (".", ".."):
        problem = "`.` and `..` are not IDs"
    elif value.startswith("__") and value.endswith("__"):
        problem = "IDs of the form __...__ are reserved"
    else:
        try:
            size = len(value.encode("utf-8"))
        except UnicodeEncodeError:
            problem = "it is not valid UTF-8"
        else:
            if size > MAX_ID_BYTES:
                problem = f"it is {size} bytes, over Firestore's {MAX_ID_BYTES}"
    if problem is not None:
        raise ConfigurationError(f"{what} {value[:80]!r} is not a valid Firestore ID: {problem}")
    return value


# The ledger's own documents, beside its runs: no run may be named like one.
LEASE_PREFIX = "lease-"  # a collection's lease: LEASE_PREFIX + the collection's ID
RESERVED_RUN_PREFIXES = (LEASE_PREFIX,)


def check_run_id(value: str, what: str) -> str:
    """A run or job ID: a document ID of the ledger that is not one of its own."""
    check_id(value, what)
    for prefix in RESERVED_RUN_PREFIXES:
        if value.startswith(prefix):
            raise ConfigurationError(
                f"{what} {value[:80]!r} cannot name a run: IDs starting with {prefix!r} are "
                "the ledger's own documents (the collections' leases)")
    return value


def check_database(value: str) -> str:
    if value != "(default)" and not _DATABASE.fullmatch(value):
        raise ConfigurationError(
            f"--database {value[:80]!r} is not a Firestore database ID: (default), or 4 to 63 "
            "lowercase letters, digits and hyphens, starting with a letter")
    return value


def check_project(value: str, source: str) -> str:
    if not _PROJECT.fullmatch(value):
        raise ConfigurationError(
            f"the project {value[:80]!r} (from {source}) is not a Google Cloud project ID: 6 "
            "to 30 lowercase letters, digits and hyphens, starting with a letter")
    return value


def check_output_dir(path: Path) -> Path:
    """The folder exists (made if need be) and takes a file: checked before the run, so
    that a run never fails at its end for want of a place for its stats file."""
    try:
        path.mkdir(parents=True, exist_ok=True)
        with tempfile.NamedTemporaryFile(dir=path, prefix=".write-check-"):
            pass
    except OSError as error:
        reason = error.strerror or type(error).__name__
        if isinstance(error, FileExistsError):
            reason = "it is a file, not a folder"
        elif isinstance(error, NotADirectoryError):
            reason = "a part of it is a file, not a folder"
        raise ConfigurationError(f"--output-dir {str(path)!r} cannot be used: {reason}") from None
    return path
