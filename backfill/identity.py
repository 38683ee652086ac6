"""Who acts: the user and host of a run or of an operator's change to one. A leaf."""

from __future__ import annotations

import getpass
import os
import socket


def who() -> dict[str, str]:
    try:
        user = getpass.getuser()
    except Exception:  # containers often run as a UID with no name
        user = os.environ.get("USER", "unknown")
    return {"user": user, "host": socket.gethostname()}


def signed_by() -> str:
    """Who an operator's change to a run is by: user@host."""
    person = who()
    return f"{person['user']}@{person['host']}"
