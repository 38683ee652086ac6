"""The one vocabulary of a run's life, shared by the ledger, the console and the control.

A run's status moves only along these lines (backfill.lifecycle checks every move):

    running -> completed     every item was seen (item errors or not)
    running -> interrupted   a signal (SIGINT, SIGTERM) or the control's stop
    running -> failed        the database, the lease, the health gate, or a defect
    interrupted, failed -> running   a resume (--resume, or the same --job-id)

A sharded run's own entry is `sharded` while its shards run (each shard has the statuses
above), and `completed` once its last shard is. While a run is `running`, its gate state
says whether it is writing or held, and why.
"""

from __future__ import annotations

import threading
from enum import StrEnum


class RunStatus(StrEnum):
    RUNNING = "running"
    COMPLETED = "completed"
    INTERRUPTED = "interrupted"
    FAILED = "failed"
    SHARDED = "sharded"  # a sharded run's own entry, while its shards run


UNFINISHED = (RunStatus.RUNNING, RunStatus.INTERRUPTED, RunStatus.FAILED)


class GateState(StrEnum):
    RUNNING = "running"  # writing
    THROTTLED = "throttled"  # held: the app's backend is unhealthy
    PAUSED = "paused"  # held: an operator's pause


class StopRequest(threading.Event):
    """Set when the run is asked to stop at a clean point, with the first reason given
    (`SIGINT`, `stopped by ops@host (backfill_control.py stop)`, a lease taken over)."""

    def __init__(self) -> None:
        super().__init__()
        self.reason: str | None = None
        self._reason_lock = threading.Lock()

    def request(self, reason: str) -> None:
        with self._reason_lock:
            if self.reason is None:
                self.reason = reason
        self.set()
