"""One writer per collection: a lease in the run ledger.

A writing run (backfill, either rollback) takes the lease of its collection in a
transaction before it writes, renews it with a heartbeat while it runs, and gives it back
when it ends. The shards of one run share their run's lease (one holder entry per shard).
A second writing run is refused while a holder is alive. A holder is gone when it ran on
this host and its process no longer exists (kill -9, then --resume, keeps working at
once), or when its heartbeat is older than LEASE_TIMEOUT_SECONDS (a container recycled
elsewhere); the lease is then taken over, and the takeover is said.
"""

from __future__ import annotations

import contextlib
import os
import socket
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime
from functools import partial
from typing import Any

from google.api_core import exceptions as gexc
from google.cloud import firestore

from backfill.errors import BackfillError, DatabaseError, ExitCode
from backfill.ledger import who
from backfill.retry import NO_LIBRARY_RETRY, RetryPolicy, call_timeout, call_with_retry
from backfill.stats import iso, utc_now
from backfill.status import StopRequest

# A holder whose heartbeat is older than this, on another host, is taken to be gone. It is
# several heartbeats long, so a busy or briefly cut-off run keeps its lease.
LEASE_TIMEOUT_SECONDS = 120.0
HEARTBEAT_SECONDS = 15.0
LEASE_PREFIX = "lease-"
CALL_TIMEOUT_SECONDS = 10.0
MAX_ATTEMPTS = 10


class _Delete:
    pass


DELETE = _Delete()
# What a lease operation writes: fields to set or update, DELETE, or None for nothing.
Change = dict[str, Any] | _Delete | None


class LeaseHeld(BackfillError):
    """Another writing run holds the collection."""

    exit_code = ExitCode.USAGE


class LeaseLost(BackfillError):
    """This run's lease was taken over (its heartbeat went stale): it must stop writing."""

    exit_code = ExitCode.FATAL


@dataclass(frozen=True)
class Holder:
    run_id: str
    key: str
    host: str
    pid: int
    user: str
    heartbeat_at: datetime

    def age(self, now: datetime) -> float:
        return (now - self.heartbeat_at).total_seconds()

    def alive(self, now: datetime, host: str) -> bool:
        if self.host == host:
            return _process_exists(self.pid)
        return self.age(now) < LEASE_TIMEOUT_SECONDS

    def describe(self, now: datetime) -> str:
        return (f"run {self.run_id} ({'shard ' + self.key + ', ' if self.key != '0' else ''}"
                f"{self.user}@{self.host}, pid {self.pid}, last heartbeat "
                f"{self.age(now):.0f}s ago)")


def _process_exists(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # it exists, as another user
        return True
    return True


def _holders(data: dict[str, Any] | None) -> list[Holder]:
    if not data:
        return []
    return [Holder(str(data.get("run_id")), key, str(h.get("host")), int(h.get("pid", 0)),
                   str(h.get("user")), datetime.fromisoformat(str(h.get("heartbeat_at"))))
            for key, h in dict(data.get("holders") or {}).items()]


class Lease:
    def __init__(self, client: firestore.Client, ledger_collection: str, collection: str,
                 run_id: str, key: str, tool: str, policy: RetryPolicy,
                 heartbeat_seconds: float = HEARTBEAT_SECONDS) -> None:
        self.client = client
        self.ref = client.collection(ledger_collection).document(LEASE_PREFIX + collection)
        self.collection = collection
        self.run_id, self.key, self.tool = run_id, key, tool
        self.policy = policy
        self.heartbeat_seconds = heartbeat_seconds
        self.lost: str | None = None

    def _me(self) -> dict[str, Any]:
        return {**who(), "pid": os.getpid(), "heartbeat_at": iso(utc_now())}

    def _transact(self, body: Callable[[dict[str, Any] | None], Change], what: str) -> None:
        """Read the lease, decide, write on condition that it did not change meanwhile;
        again if it did. (Not a library transaction: its calls retry on their own for a
        minute, with no way to bound them, when the database is away.)"""
        for _ in range(MAX_ATTEMPTS):
            snap = call_with_retry(
                lambda: self.ref.get(retry=NO_LIBRARY_RETRY,
                                     timeout=call_timeout(CALL_TIMEOUT_SECONDS)),
                self.policy, what)
            change = body(snap.to_dict() if snap.exists else None)
            if change is None:
                return
            if call_with_retry(partial(self._write, snap, change), self.policy, what):
                return
        raise DatabaseError(f"{what} failed: the lease kept changing under it")

    def _write(self, snap: Any, change: Change) -> bool:
        """Apply `change` if the lease is still as read; False if it is not."""
        try:
            if not snap.exists:
                if change is not DELETE:
                    self.ref.create(change, retry=NO_LIBRARY_RETRY,
                                    timeout=call_timeout(CALL_TIMEOUT_SECONDS))
                return True
            option = self.client.write_option(last_update_time=snap.update_time)
            if change is DELETE:
                self.ref.delete(option=option, retry=NO_LIBRARY_RETRY,
                                timeout=call_timeout(CALL_TIMEOUT_SECONDS))
            else:
                self.ref.update(change, option=option, retry=NO_LIBRARY_RETRY,
                                timeout=call_timeout(CALL_TIMEOUT_SECONDS))
            return True
        except (gexc.FailedPrecondition, gexc.Conflict, gexc.NotFound):
            return False

    def acquire(self) -> str | None:
        """Take the lease, or raise LeaseHeld. Returns what was taken over, if anything."""

        taken_over: list[str] = []

        def body(data: dict[str, Any] | None) -> Change:
            now, host = utc_now(), socket.gethostname()
            holders = _holders(data)
            same_run = data is not None and data.get("run_id") == self.run_id
            me = (host, os.getpid())
            alive = [h for h in holders if h.alive(now, host) and (h.host, h.pid) != me]
            # The other shards of this run share the lease; this shard's own holder and
            # any other run's block it.
            blocking = [h for h in alive if not same_run or h.key == self.key]
            if blocking:
                holder = blocking[0]
                wait = ("" if holder.host == host else
                        f"; it is taken to be gone once its heartbeat is "
                        f"{LEASE_TIMEOUT_SECONDS:.0f}s old, in "
                        f"{max(0.0, LEASE_TIMEOUT_SECONDS - holder.age(now)):.0f}s")
                raise LeaseHeld(
                    f"collection {self.collection!r} is being written by "
                    f"{holder.describe(now)}: one writing run at a time{wait}")
            gone = [h for h in holders if not (same_run and h.key != self.key)
                    and (h.host, h.pid) != me]
            kept = {h.key: (data or {})["holders"][h.key] for h in holders
                    if same_run and h.key != self.key}
            taken_over[:] = [
                f"took over the lease of {h.describe(now)}: "
                f"{'its process is gone' if h.host == host else 'its heartbeat is stale'}"
                for h in gone]
            return {"kind": "lease", "collection": self.collection, "run_id": self.run_id,
                    "tool": self.tool, "holders": {**kept, self.key: self._me()}}

        self._transact(body, "taking the collection's lease")
        return "; ".join(taken_over) or None

    def renew(self) -> None:
        def body(data: dict[str, Any] | None) -> Change:
            if data is None or data.get("run_id") != self.run_id or \
                    self.key not in (data.get("holders") or {}):
                holder = "nobody" if data is None else f"run {data.get('run_id')}"
                self.lost = (f"the lease of collection {self.collection!r} is now held by "
                             f"{holder}: this run stopped writing")
                return None
            return {f"holders.`{self.key}`": self._me()}

        self._transact(body, "renewing the collection's lease")

    def release(self) -> None:
        def body(data: dict[str, Any] | None) -> Change:
            if data is None or data.get("run_id") != self.run_id:
                return None
            holders = dict(data.get("holders") or {})
            holders.pop(self.key, None)
            return {"holders": holders} if holders else DELETE

        self._transact(body, "giving the collection's lease back")

    @contextmanager
    def kept(self, stop: StopRequest) -> Iterator[Lease]:
        """Renew the lease every heartbeat while the block runs; if it was taken
        over, set `stop` (the run ends at a clean point) and `lost`. Given back at the end."""
        done = threading.Event()

        def heartbeat() -> None:
            while not done.wait(self.heartbeat_seconds):
                try:
                    self.renew()
                except BackfillError:
                    continue  # the database is away: the run's own calls will say so
                if self.lost:
                    stop.request(self.lost)
                    return

        thread = threading.Thread(target=heartbeat, name="lease", daemon=True)
        thread.start()
        try:
            yield self
        finally:
            done.set()
            # A renewal in progress ends within its retry budget; the release below is a
            # conditional write, safe beside it.
            thread.join(2.0)
            if self.lost is None:
                # If this fails, the holder is gone by its process or its heartbeat.
                with contextlib.suppress(BackfillError):
                    self.release()
