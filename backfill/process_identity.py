"""Which process holds a lease, told apart from any other on any host.

A lease holder is identified by a token of its own; this is only what lets another process
on the same machine tell, for sure, that the holder is gone: same host name, same boot,
same PID namespace (containers that share a host name and each run the tool as PID 1 do
not), and a process of that PID with the same start time. Anything less certain (another
host, another namespace, no /proc) says nothing, and the heartbeat decides.
"""

from __future__ import annotations

import os
import socket
from dataclasses import dataclass
from pathlib import Path
from typing import Any

PROC = Path("/proc")


def _read(path: Path) -> str | None:
    try:
        return path.read_text().strip()
    except OSError:
        return None


def _pid_namespace() -> str | None:
    try:
        return os.readlink(PROC / "self" / "ns" / "pid")  # e.g. pid:[4026531836]
    except OSError:
        return None


def process_start(pid: int) -> str | None:
    """The start time of process `pid` in clock ticks since boot (/proc/PID/stat, field
    22), or None when there is no such process (or no /proc)."""
    stat = _read(PROC / str(pid) / "stat")
    if stat is None:
        return None
    fields = stat.rpartition(")")[2].split()  # the command name may hold spaces
    return fields[19] if len(fields) > 19 else None


@dataclass(frozen=True)
class ProcessIdentity:
    host: str
    pid: int
    boot_id: str | None = None
    pid_namespace: str | None = None
    started: str | None = None

    @classmethod
    def current(cls) -> ProcessIdentity:
        return cls(host=socket.gethostname(), pid=os.getpid(),
                   boot_id=_read(PROC / "sys" / "kernel" / "random" / "boot_id"),
                   pid_namespace=_pid_namespace(), started=process_start(os.getpid()))

    def to_dict(self) -> dict[str, Any]:
        return {"host": self.host, "pid": self.pid, "boot_id": self.boot_id,
                "pid_namespace": self.pid_namespace, "process_started": self.started}

    def surely_gone(self, here: ProcessIdentity | None = None) -> bool:
        """True only when this process is certainly not running: seen from the same
        machine and PID namespace, its PID is free or taken by a later process."""
        here = here or ProcessIdentity.current()
        comparable = (self.host == here.host and self.boot_id is not None
                      and self.boot_id == here.boot_id and self.pid_namespace is not None
                      and self.pid_namespace == here.pid_namespace
                      and self.started is not None)
        if not comparable:
            return False
        return process_start(self.pid) != self.started
