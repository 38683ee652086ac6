"""One writer per collection: a lease in the run ledger, and a fence on every batch.

A writing run (backfill, either rollback) takes the lease of its collection before it
writes, keeps it alive with a heartbeat while it runs, and gives it back when it ends.
The shards of one run share their run's lease, one holder per shard.

- The lease document (`LEDGER/lease-COLLECTION`) names the run and, per shard, its
  holder: a token of its own process, and who and where it is. It changes only when a
  holder comes, goes or is taken over, each time on condition that it did not change
  since it was read.
- Each holder's heartbeat is a document of its own (`.../beats/SHARD`), written with the
  database's own timestamp. Its age is the database's clock at a read minus the
  heartbeat's update time: no host's clock is ever compared with another's.
- The fence: every write a holder makes in the run's name (each batch's journal, each
  heartbeat) is committed together with a write to the lease document on condition that
  its update time is the one the holder last saw. The write changes nothing, so it does
  not change that time, and any number of batches and shards pass it; any other change
  (a takeover, a hand edit, a deletion) fails the whole commit. The holder then reads
  the lease again: still its own, it goes on; not, the run stops before that batch's
  item writes (LeaseLost, exit 3).

A holder is gone, and its lease is taken over (and the takeover said), when its
heartbeat is older than the age it declared (LEASE_TIMEOUT_SECONDS by default), when the
engine that runs the task retried it (the same run and shard, a new attempt), or when
its process is certainly not running (backfill.process_identity). Nothing else takes a
live holder's lease.
"""

from __future__ import annotations

import secrets
import socket
import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from functools import partial
from typing import Any, NoReturn

from google.api_core import exceptions as gexc
from google.cloud import firestore
from google.cloud.firestore_v1.batch import WriteBatch

from backfill.clock import iso, utc_now
from backfill.errors import BackfillError, DatabaseError, ExitCode
from backfill.identity import who
from backfill.invocation import typed
from backfill.limits import HEARTBEAT_SECONDS as HEARTBEAT_SECONDS
from backfill.limits import LEASE_TIMEOUT_SECONDS as LEASE_TIMEOUT_SECONDS
from backfill.names import LEASE_PREFIX
from backfill.process_identity import ProcessIdentity
from backfill.retry import (
    CALL_SECONDS,
    NO_LIBRARY_RETRY,
    RetryPolicy,
    call_timeout,
    call_with_retry,
)
from backfill.status import StopRequest

# A holder whose heartbeat is older than this is taken to be gone. It is several
# heartbeats long, so a busy or briefly cut-off run keeps its lease.
BEATS = "beats"
CALL_TIMEOUT_SECONDS = 10.0
MAX_ATTEMPTS = 10


class LeaseHeld(BackfillError):
    """Another writing run holds the collection."""

    exit_code = ExitCode.USAGE


class LeaseLost(BackfillError):
    """This run no longer holds its lease: it must stop writing."""

    exit_code = ExitCode.FATAL


class LeaseMalformed(BackfillError):
    """The lease document is not what this tool writes (found when a run starts)."""

    exit_code = ExitCode.USAGE


def engine_task(env: Mapping[str, str]) -> str | None:
    """Which attempt of an engine's task this process is, when an engine started it: a
    new attempt of the same run and shard takes over the old one's lease at once."""
    if env.get("CLOUD_RUN_TASK_ATTEMPT"):
        return f"Cloud Run task attempt {env['CLOUD_RUN_TASK_ATTEMPT']}"
    if env.get("JOB_COMPLETION_INDEX"):  # a Kubernetes Indexed Job: each pod is an attempt
        return f"Kubernetes pod {env.get('HOSTNAME') or socket.gethostname()}"
    return None


@dataclass(frozen=True)
class Holder:
    run_id: str
    key: str
    token: str
    user: str
    process: ProcessIdentity
    timeout: float  # the heartbeat age past which it is taken to be gone
    attempt: str | None  # the engine's attempt (engine_task), if an engine started it
    beat_age: float | None  # seconds, by the database's clock; None: no heartbeat
    shard: str | None = None  # INDEX/COUNT, for a shard of a sharded run

    @property
    def stale(self) -> bool:
        return self.beat_age is None or self.beat_age >= self.timeout

    def describe(self) -> str:
        shard = f"shard {self.shard}, " if self.shard else ""
        beat = ("no heartbeat" if self.beat_age is None
                else f"last heartbeat {max(0.0, self.beat_age):.0f}s ago")
        return (f"run {self.run_id} ({shard}{self.user}@{self.process.host}, pid "
                f"{self.process.pid}, {beat})")


@dataclass(frozen=True)
class LeaseState:
    """The lease as read, with each holder's heartbeat age."""

    path: str
    run_id: str
    holders: dict[str, Holder]  # by shard key
    raw_holders: dict[str, dict[str, Any]]
    update_time: Any


def _malformed(path: str, collection: str, problem: str) -> str:
    return (f"the lease document {path} is not what this tool writes: {problem}. If no run "
            f"is writing collection {collection!r} "
            f"({typed('scripts/backfill_control.py')} status), delete that document and "
            "start again")


def _shape(path: str, collection: str, data: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """The holders of a lease document, every field this tool reads checked."""

    def refuse(problem: str) -> LeaseMalformed:
        return LeaseMalformed(_malformed(path, collection, problem))

    if not isinstance(data.get("run_id"), str):
        raise refuse("its run_id is not a string")
    holders = data.get("holders")
    if not isinstance(holders, dict):
        raise refuse(f"its holders are {type(holders).__name__}, not a map")
    for key, holder in holders.items():
        if not key or "/" in key:
            raise refuse(f"holder {key!r} is not a shard key")
        if not isinstance(holder, dict):
            raise refuse(f"holder {key!r} is {type(holder).__name__}, not a map")
        for name, kind in (("token", str), ("host", str), ("user", str), ("pid", int)):
            value = holder.get(name)
            if not isinstance(value, kind) or isinstance(value, bool):
                raise refuse(f"holder {key!r} has no {name} {kind.__name__}")
        timeout = holder.get("timeout_seconds", LEASE_TIMEOUT_SECONDS)
        if not isinstance(timeout, int | float) or isinstance(timeout, bool) or timeout <= 0:
            raise refuse(f"holder {key!r} has a timeout_seconds that is not a positive number")
        for name in ("boot_id", "pid_namespace", "process_started", "attempt", "shard"):
            if holder.get(name) is not None and not isinstance(holder.get(name), str):
                raise refuse(f"holder {key!r} has a {name} that is not a string")
    return holders


def read_lease(client: firestore.Client, ref: Any, collection: str, policy: RetryPolicy,
               what: str, beats_too: bool = True) -> LeaseState | None:
    """The lease of `collection` and, with `beats_too`, its holders' heartbeats (two reads
    at most; without them, every age is unknown), or None when nobody holds it.
    LeaseMalformed when the document is not what this tool writes."""
    snap = call_with_retry(lambda: ref.get(retry=NO_LIBRARY_RETRY,
                                           timeout=call_timeout(CALL_TIMEOUT_SECONDS)),
                           policy, what)
    if not snap.exists:
        return None
    data = snap.to_dict() or {}
    raw = _shape(ref.path, collection, data)
    beats: dict[str, Any] = {}
    if raw and beats_too:
        refs = [ref.collection(BEATS).document(key) for key in raw]
        beats = {s.id: s for s in call_with_retry(
            lambda: list(client.get_all(refs, retry=NO_LIBRARY_RETRY,
                                        timeout=call_timeout(CALL_TIMEOUT_SECONDS))),
            policy, what)}
    holders = {}
    for key, holder in raw.items():
        beat = beats.get(key)
        age = None
        if beat is not None and beat.exists and (beat.to_dict() or {}).get("token") == \
                holder["token"]:
            age = max(0.0, (beat.read_time - beat.update_time).total_seconds())
        holders[key] = Holder(
            run_id=data["run_id"], key=key, token=holder["token"], user=holder["user"],
            process=ProcessIdentity(host=holder["host"], pid=holder["pid"],
                                    boot_id=holder.get("boot_id"),
                                    pid_namespace=holder.get("pid_namespace"),
                                    started=holder.get("process_started")),
            timeout=float(holder.get("timeout_seconds", LEASE_TIMEOUT_SECONDS)),
            attempt=holder.get("attempt"), beat_age=age, shard=holder.get("shard"))
    return LeaseState(ref.path, data["run_id"], holders, raw, snap.update_time)


def read_lease_of(client: firestore.Client, ledger_collection: Any, collection: str,
                  policy: RetryPolicy) -> LeaseState | None:
    """The lease of `collection` in the ledger collection `ledger_collection` (for a
    status)."""
    return read_lease(client, ledger_collection.document(LEASE_PREFIX + collection),
                      collection, policy, "reading the collection's lease")


class _Delete:
    pass


DELETE = _Delete()


@dataclass(frozen=True)
class _Change:
    """What one lease operation commits: the lease document's new fields (or DELETE),
    the heartbeat to set, the heartbeats of holders gone, and the caller's own writes
    that go with it, in the same atomic commit (a run's first ledger record with the
    lease taken, its last with the lease given back: one round trip each)."""

    lease: dict[str, Any] | _Delete
    beat: dict[str, Any] | None = None
    drop_beats: tuple[str, ...] = ()
    also: Callable[[WriteBatch], None] | None = None


class Lease:
    def __init__(self, client: firestore.Client, ledger_collection: str, collection: str,
                 run_id: str, key: str, tool: str, policy: RetryPolicy,
                 heartbeat_seconds: float = HEARTBEAT_SECONDS,
                 timeout_seconds: float = LEASE_TIMEOUT_SECONDS,
                 engine: str | None = None, shard: str | None = None) -> None:
        self.client = client
        self.ref = client.collection(ledger_collection).document(LEASE_PREFIX + collection)
        self.beat_ref = self.ref.collection(BEATS).document(key)
        self.collection = collection
        self.run_id, self.key, self.tool = run_id, key, tool
        self.policy = policy
        self.heartbeat_seconds = heartbeat_seconds
        self.timeout_seconds = timeout_seconds
        self.engine = engine
        self.shard = shard
        self.token = secrets.token_hex(12)  # this process's, and no other's
        self.identity = ProcessIdentity.current()
        self.lost: str | None = None
        self.held = False  # taken by this run, and not given back yet
        self._seen: Any = None  # the lease document's update time, as this holder last saw it
        self._seen_holders: dict[str, Any] | None = None  # and its holders then
        self._beating: tuple[threading.Thread, threading.Event] | None = None
        self._seen_lock = threading.Lock()
        self._stop: StopRequest | None = None

    # --- reading and committing --------------------------------------------------------

    def _read(self, what: str, beats_too: bool = True) -> LeaseState | None:
        return read_lease(self.client, self.ref, self.collection, self.policy, what,
                          beats_too)

    def _beat(self) -> dict[str, Any]:
        return {"token": self.token, "run_id": self.run_id, "key": self.key,
                "at": firestore.SERVER_TIMESTAMP}

    def _transact(self, decide: Callable[[LeaseState | None], _Change | None],
                  what: str, beats_too: bool = True) -> bool:
        """Read the lease, decide, commit on condition that it did not change meanwhile;
        again if it did. False: `decide` found nothing to commit. (Not a library
        transaction: its calls retry on their own for a minute, with no way to bound
        them, when the database is away.)"""
        for _ in range(MAX_ATTEMPTS):
            state = self._read(what, beats_too)
            change = decide(state)
            if change is None:
                return False
            if call_with_retry(partial(self._commit_change, state, change), self.policy,
                               what):
                return True
        raise DatabaseError(f"{what} failed: the lease kept changing under it")

    def _commit_change(self, state: LeaseState | None, change: _Change) -> bool:
        batch = self.client.batch()
        if state is None:
            if isinstance(change.lease, _Delete):
                return True
            batch.create(self.ref, change.lease)
        else:
            option = self.client.write_option(last_update_time=state.update_time)
            if isinstance(change.lease, _Delete):
                batch.delete(self.ref, option=option)
            else:
                batch.update(self.ref, change.lease, option=option)
        if change.beat is not None:
            batch.set(self.beat_ref, change.beat)
        for key in change.drop_beats:
            batch.delete(self.ref.collection(BEATS).document(key))
        if change.also is not None:
            change.also(batch)
        try:
            results = batch.commit(retry=NO_LIBRARY_RETRY,
                                   timeout=call_timeout(CALL_TIMEOUT_SECONDS))
        except (gexc.FailedPrecondition, gexc.Conflict, gexc.NotFound):
            return False
        if not isinstance(change.lease, _Delete):
            with self._seen_lock:
                self._seen = results[0].update_time
                self._seen_holders = change.lease["holders"]
        return True

    def commit(self, add: Callable[[WriteBatch], None], what: str) -> None:
        """The fence: commit the writes `add` puts in a batch together with the check that
        this run still holds the lease, atomically. LeaseLost when it does not."""
        for _ in range(MAX_ATTEMPTS):
            if self.lost is not None:
                raise LeaseLost(self.lost)
            with self._seen_lock:
                seen = self._seen
            if call_with_retry(partial(self._commit_fenced, add, seen), self.policy, what):
                return
            self._confirm_held(what)
        raise DatabaseError(f"{what} failed: the lease kept changing under it")

    def _commit_fenced(self, add: Callable[[WriteBatch], None], seen: Any) -> bool:
        batch = self.client.batch()
        # Changes nothing (so the update time stays), on condition that nothing else did.
        batch.update(self.ref, {"kind": "lease"},
                     option=self.client.write_option(last_update_time=seen))
        add(batch)
        try:
            batch.commit(retry=NO_LIBRARY_RETRY, timeout=call_timeout(CALL_SECONDS))
        except (gexc.FailedPrecondition, gexc.NotFound):
            return False
        return True

    def _confirm_held(self, what: str) -> None:
        """After a failed fence: still this run's (another shard came or went), or lost."""
        try:
            state = self._read(what, beats_too=False)  # whose it is, not how alive
        except LeaseMalformed as error:
            self._lose(f"{error}: this run stopped writing")
        if state is None:
            self._lose(f"the lease of collection {self.collection!r} is gone (its document "
                       f"{self.ref.path} was deleted): this run stopped writing")
        mine = state.holders.get(self.key)
        if state.run_id != self.run_id:
            self._lose(f"the lease of collection {self.collection!r} is now held by run "
                       f"{state.run_id}: this run stopped writing")
        if mine is None or mine.token != self.token:
            by = (f"another task ({mine.user}@{mine.process.host}, pid {mine.process.pid})"
                  if mine is not None else "nobody")
            self._lose(f"the lease of {'shard ' + self.shard if self.shard else 'run'} "
                       f"{'of run ' + self.run_id if self.shard else self.run_id} is now "
                       f"held by {by}: this run stopped writing")
        with self._seen_lock:
            self._seen, self._seen_holders = state.update_time, state.raw_holders

    def _lose(self, reason: str) -> NoReturn:
        if self.lost is None:
            self.lost = reason
        if self._stop is not None:
            self._stop.request(self.lost)
        raise LeaseLost(self.lost)

    # --- the lease's life --------------------------------------------------------------

    def _gone_because(self, holder: Holder) -> str | None:
        if self.engine is not None and holder.run_id == self.run_id and \
                holder.key == self.key and holder.attempt != self.engine:
            return f"this is the engine's retry of its task ({self.engine})"
        if holder.process.surely_gone(self.identity):
            return "its process is gone"
        if holder.stale:
            return "it has no heartbeat" if holder.beat_age is None else \
                f"its heartbeat is older than {holder.timeout:g}s"
        return None

    def acquire(self, also: Callable[[WriteBatch], None] | None = None,
                before_commit: Callable[[], None] | None = None) -> str | None:
        """Take the lease, or raise LeaseHeld; `also` is committed with it, and
        `before_commit` (which may raise) is called between the lease's read and the
        commit, so that what it waits for overlaps the read. Returns what was taken
        over, if anything."""
        taken_over: list[str] = []

        def decide(state: LeaseState | None) -> _Change:
            if before_commit is not None:
                before_commit()
            same_run = state is not None and state.run_id == self.run_id
            holders = state.holders if state is not None else {}
            # The other shards of this run share the lease; this shard's own holder and
            # any other run's block it, unless they are gone.
            contested = [h for h in holders.values() if not same_run or h.key == self.key]
            gone = []
            for holder in contested:
                why = self._gone_because(holder)
                if why is None:
                    left = max(0.0, holder.timeout - (holder.beat_age or 0.0))
                    raise LeaseHeld(
                        f"collection {self.collection!r} is being written by "
                        f"{holder.describe()}: one writing run at a time; it is taken to be "
                        f"gone once its heartbeat is {holder.timeout:g}s old, in "
                        f"{left:.0f}s")
                gone.append((holder, why))
            taken_over[:] = [f"took over the lease of {h.describe()}: {why}"
                             for h, why in gone]
            kept = {key: raw for key, raw in (state.raw_holders if state else {}).items()
                    if same_run and key != self.key}
            return _Change(
                lease={"kind": "lease", "collection": self.collection, "run_id": self.run_id,
                       "tool": self.tool, "holders": {**kept, self.key: self._me()}},
                beat=self._beat(),
                drop_beats=tuple(h.key for h, _ in gone if h.key != self.key), also=also)

        self._transact(decide, "taking the collection's lease")
        self.held = True
        return "; ".join(taken_over) or None

    def _me(self) -> dict[str, Any]:
        return {**who(), **self.identity.to_dict(), "token": self.token,
                "timeout_seconds": self.timeout_seconds, "attempt": self.engine,
                "shard": self.shard, "since": iso(utc_now())}

    def renew(self) -> None:
        """One heartbeat, behind the fence: a holder that lost the lease cannot renew it."""
        self.commit(lambda batch: batch.set(self.beat_ref, self._beat()),
                    "renewing the collection's lease")

    def release(self, also: Callable[[WriteBatch], None] | None = None) -> bool:
        """Give the lease back, with `also` in the same commit. False when this run no
        longer holds it: then nothing was written, `also` neither."""
        what = "giving the collection's lease back"

        def leaving(raw_holders: dict[str, Any]) -> _Change:
            others = {key: raw for key, raw in raw_holders.items() if key != self.key}
            return _Change(lease={"holders": others} if others else DELETE,
                           drop_beats=(self.key,), also=also)

        with self._seen_lock:
            seen, holders = self._seen, self._seen_holders
        # One round trip when the lease is as this holder last saw it (the usual case);
        # read first only when it changed (another shard came or went).
        if seen is not None and holders is not None and call_with_retry(
                partial(self._commit_change, LeaseState(self.ref.path, self.run_id, {},
                                                        holders, seen), leaving(holders)),
                self.policy, what):
            return True

        def decide(state: LeaseState | None) -> _Change | None:
            if state is None or state.run_id != self.run_id:
                return None
            mine = state.holders.get(self.key)
            if mine is None or mine.token != self.token:
                return None
            return leaving(state.raw_holders)

        return self._transact(decide, what, beats_too=False)

    def start_heartbeat(self, stop: StopRequest) -> None:
        """Renew the lease every heartbeat from now on; if it is lost, set `stop` (the run
        ends at a clean point) and `lost`."""
        self._stop = stop
        done = threading.Event()

        def heartbeat() -> None:
            while not done.wait(self.heartbeat_seconds):
                try:
                    self.renew()
                except LeaseLost:
                    return  # `stop` is set, with the reason
                except BackfillError:
                    continue  # the database is away: the run's own calls will say so

        thread = threading.Thread(target=heartbeat, name="lease", daemon=True)
        thread.start()
        self._beating = thread, done

    def stop_heartbeat(self) -> None:
        if self._beating is None:
            return
        thread, done = self._beating
        done.set()
        # A renewal in progress ends within its retry budget, on its own: the release
        # that follows is a conditional commit, safe beside it, so this hardly waits for
        # it (a database that failed the run would make it wait out that budget).
        thread.join(0.2)
        self._beating = None

    def give_back(self, also: Callable[[WriteBatch], None] | None = None) -> bool:
        """The heartbeat stopped and the lease given back (once), with `also` in the same
        commit. False when it was not held or not given back (lost, or the holder is gone
        by its heartbeat): `also` was not written."""
        if not self.held:
            return False
        self.stop_heartbeat()
        self.held = False
        if self.lost is not None:
            return False
        try:
            return self.release(also=also)
        except BackfillError:
            if also is not None:
                raise
            return False
