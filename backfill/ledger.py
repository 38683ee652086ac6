"""The run ledger: every non-dry run records itself in the database, in its own collection.

A container that restarts loses its local files; the ledger is where the truth survives:
who ran what, with which arguments, how far it got (the checkpoint: the last document ID
fully done) and with what counts, updated after every batch. `--resume` reads it back.
"""

from __future__ import annotations

import contextlib
import threading
import time
from collections.abc import Callable, Iterable, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field, replace
from datetime import datetime
from typing import Any, overload

from google.api_core import exceptions as gexc
from google.cloud import firestore
from google.cloud.firestore_v1.base_query import FieldFilter
from google.cloud.firestore_v1.batch import WriteBatch

from backfill.clock import iso, utc_now
from backfill.errors import BackfillError, ConfigurationError
from backfill.identity import signed_by, who
from backfill.lifecycle import RunLife
from backfill.limits import DEFAULT_LEDGER_COLLECTION as DEFAULT_LEDGER_COLLECTION
from backfill.ranges import Part
from backfill.retry import (
    CALL_SECONDS,
    NO_LIBRARY_RETRY,
    RetryPolicy,
    call_timeout,
    call_with_retry,
)
from backfill.stats import RunStats
from backfill.status import UNFINISHED, GateState, RunStatus

SHARDS = "shards"  # a sharded run's subcollection: one progress document per shard
# The ledger keeps this many item errors in full (a document holds at most 1 MiB); the
# stats file of each run session has every one.
MAX_ERRORS_KEPT = 200
COUNTS = ("batches", "processed", "updated", "skipped", "vanished", "left_subset",
          "conflicts_retried")




def _text(value: Any) -> str | None:
    return None if value is None else str(value)


def _number(value: Any) -> float:
    return float(value or 0.0)


@dataclass(frozen=True)
class Pace:
    """A pace an operator set on a run (backfill.control `set`), as recorded: its values
    are checked where a task applies them (an entry may have been edited by hand)."""

    writes_per_second: Any = None
    parallel_batches: Any = None
    by: str | None = None
    at: str | None = None
    sets_rate: bool = False  # the change gave a write rate

    @classmethod
    def parse(cls, value: Any) -> Pace | None:
        if not isinstance(value, Mapping) or not value:
            return None
        return cls(value.get("writes_per_second"), value.get("parallel_batches"),
                   _text(value.get("by")), _text(value.get("at")),
                   "writes_per_second" in value)


@dataclass(frozen=True)
class RunEntry:
    """A run (or a shard of a run) as the ledger holds it, parsed once with every default,
    and the database's time of the read. The one reader of the entry's field names: the
    rest of the toolkit reads these attributes."""

    run_id: str
    status: str
    tool: str | None = None
    mode: str | None = None  # the tool's, when the entry has none
    environment: str | None = None
    collection: str | None = None
    target_field: str | None = None  # a one-field tool's field (a task's run: none)
    settings: Mapping[str, Any] = field(default_factory=dict)
    started_at: str | None = None
    updated_at: str | None = None
    finished_at: str | None = None
    user: str | None = None
    host: str | None = None
    shard: str | None = None  # a shard's entry: INDEX/COUNT
    shard_count: int | None = None  # a sharded run's own entry
    boundaries: tuple[str, ...] | None = None
    checkpoint: str | None = None
    parts: tuple[dict[str, Any], ...] | None = None
    counts: Mapping[str, Any] = field(default_factory=dict)
    errors: tuple[Any, ...] = ()
    total: int | None = None
    recent: tuple[dict[str, Any], ...] = ()
    state: str = GateState.RUNNING
    held_because: str | None = None
    state_since: datetime | None = None
    throttled_seconds: float = 0.0
    throttle_spells: int = 0
    paused_seconds: float = 0.0
    active_seconds: float = 0.0
    stopped_because: str | None = None
    control: str | None = None
    control_by: str | None = None
    control_at: str | None = None
    pace: Pace | None = None
    pace_changed: bool = False  # an operator set a pace on it
    read_at: datetime | None = None
    # The entry as read, for backfill.writing_run only until it reads attributes too.
    data: Mapping[str, Any] = field(default_factory=dict, repr=False, compare=False)

    @classmethod
    def parse(cls, data: Mapping[str, Any] | None,
              read_at: datetime | None = None) -> RunEntry:
        d = dict(data or {})
        since, total = d.get("state_since"), d.get("total")
        return cls(
            run_id=str(d.get("run_id")), status=str(d.get("status")), tool=_text(d.get("tool")),
            mode=_text(d.get("mode", d.get("tool"))), environment=_text(d.get("environment")),
            collection=_text(d.get("collection")),
            target_field=_text(d.get("target_field")),
            settings=dict(d.get("settings") or {}), started_at=_text(d.get("started_at")),
            updated_at=_text(d.get("updated_at")), finished_at=_text(d.get("finished_at")),
            user=_text(d.get("user")), host=_text(d.get("host")), shard=_text(d.get("shard")),
            shard_count=None if d.get("shard_count") is None else int(d["shard_count"]),
            boundaries=None if d.get("boundaries") is None else tuple(d["boundaries"]),
            checkpoint=_text(d.get("checkpoint")),
            parts=tuple(d["parts"]) if d.get("parts") else None,
            counts=dict(d.get("counts") or {}), errors=tuple(d.get("errors") or ()),
            total=total if isinstance(total, int) else None,
            recent=tuple(d.get("recent") or ()),
            state=str(d.get("state") or GateState.RUNNING),
            held_because=_text(d.get("held_because")),
            state_since=since if isinstance(since, datetime) else None,
            throttled_seconds=_number(d.get("throttled_seconds")),
            throttle_spells=int(d.get("throttle_spells") or 0),
            paused_seconds=_number(d.get("paused_seconds")),
            active_seconds=_number(d.get("active_seconds")),
            stopped_because=_text(d.get("stopped_because")) or None,
            control=_text(d.get("control")), control_by=_text(d.get("control_by")),
            control_at=_text(d.get("control_at")), pace=Pace.parse(d.get("pace")),
            pace_changed=bool(d.get("pace_changes")), read_at=read_at, data=d)

    @property
    def sharded(self) -> bool:
        """A sharded run's own entry (its shards have entries of their own)."""
        return self.shard_count is not None

    @property
    def where(self) -> list[str]:
        """The run's --where conditions, as typed."""
        return list(self.settings.get("where") or [])

    def settings_recorded(self) -> dict[str, Any]:
        """What a resume carries on: the run's collection, field and recorded settings."""
        return {"collection": self.collection, "target_field": self.target_field,
                **self.settings}

    @property
    def writes(self) -> str:
        """What the run writes: `field PATH`, or `task MODULE:CLASS`."""
        if self.target_field is not None:
            return f"field {self.target_field}"
        return f"task {self.settings.get('task') or '?'}"

    def count(self, name: str) -> int:
        return int(self.counts.get(name, 0))

    def recorded(self) -> dict[str, Any]:
        """The entry as the ledger holds it (a report's copy of it)."""
        return dict(self.data)

    def without_control(self) -> RunEntry:
        return replace(self, control=None)


# The name writing_run and options still use (their conversion is another part of issue 33).
LedgerEntry = RunEntry


# Firestore sustains about one write per second to one document, and a write per batch
# would also sit on the run's critical path: progress is recorded at most this often (and
# always at the end). Counts and checkpoint are written together, so whatever the gap,
# a resume carries on exactly from what the ledger says.
MIN_SECONDS_BETWEEN_RECORDS = 1.0


class Ledger:
    def __init__(self, client: firestore.Client, collection: str, policy: RetryPolicy,
                 min_interval: float = MIN_SECONDS_BETWEEN_RECORDS) -> None:
        self.client = client
        self.collection = client.collection(collection)
        self.policy = policy
        self.min_interval = min_interval
        self._last_record = 0.0
        self._lock = threading.Lock()
        self._background: ThreadPoolExecutor | None = None

    def _ref(self, stats: RunStats) -> Any:
        """A run's progress document: the run's own, or for a shard, the shard's."""
        run = self.collection.document(stats.run_id)
        return run if stats.shard is None else run.collection(SHARDS).document(stats.shard.key)

    def _write(self, ref: Any, fields: dict[str, Any], *, create: bool = False) -> None:
        # A new entry is written with set, not create: the caller checked it was not
        # there, and when a write succeeded but its answer was lost, the retry must not
        # fail on the document it wrote itself.
        action = ref.set if create else ref.update
        call_with_retry(lambda: action(fields, retry=NO_LIBRARY_RETRY,
                                       timeout=call_timeout(CALL_SECONDS)),
                        self.policy, "writing the run ledger")

    def _read(self, ref: Any) -> LedgerEntry | None:
        snap = call_with_retry(lambda: ref.get(retry=NO_LIBRARY_RETRY,
                                               timeout=call_timeout(CALL_SECONDS)),
                               self.policy,
                               "reading the run ledger")
        return RunEntry.parse(snap.to_dict(), snap.read_time) if snap.exists else None

    @staticmethod
    def _progress(stats: RunStats) -> dict[str, Any]:
        return {
            "status": stats.status,
            "checkpoint": stats.checkpoint,
            "parts": None if stats.parts is None else [p.to_dict() for p in stats.parts],
            "counts": {**{name: getattr(stats, name) for name in COUNTS},
                       **stats.tally.counts(), "errors": stats.error_count},
            "errors": stats.errors[:MAX_ERRORS_KEPT],
            "state": stats.state,  # running, throttled or paused, while status is running
            "held_because": stats.held_because,
            "total": stats.total,
            "recent": [{"at": iso(at), "processed": processed}
                       for at, processed in stats.recent],
            "throttled_seconds": round(stats.throttled_seconds, 1),
            "throttle_spells": stats.throttle_spells,
            "paused_seconds": round(stats.paused_seconds, 1),
            "active_seconds": round(stats.active_seconds, 1),
            "stopped_because": stats.stopped_because,
            "updated_at": iso(utc_now()),
            "finished_at": iso(stats.finished_at),
        }

    @staticmethod
    def _header(stats: RunStats, arguments: dict[str, Any], settings: dict[str, Any],
                mode: str) -> dict[str, Any]:
        return {"run_id": stats.run_id, "tool": stats.tool, "mode": mode,
                "environment": stats.environment,
                "project": stats.project, "database": stats.database,
                "collection": stats.collection, "target_field": stats.target_field,
                "settings": settings, "arguments": arguments,
                **stats.recorded, "started_at": iso(stats.started_at)}

    def first_record(self, stats: RunStats, arguments: dict[str, Any],
                     settings: dict[str, Any], mode: str) -> Callable[[WriteBatch], None]:
        """A new run's entry, as it is now, to be put into a batch (committed with the
        lease the run takes). Set, not create: see _write."""
        ref, fields = self._ref(stats), self._entry(stats, arguments, settings, mode)
        return lambda batch: batch.set(ref, fields)

    def reopen_record(self, stats: RunStats,
                      earlier_reason: str | None) -> Callable[[WriteBatch], None]:
        """A resumed run's record, as it is now, to be put into a batch: same ID, status
        running again and no reason, a note of when, by whom, and after what (the reason
        the session before ended)."""
        resumed = {"at": iso(utc_now()), **who(), "after": earlier_reason}
        ref, fields = self._ref(stats), {**self._progress(stats),
                                         "resumed_at": firestore.ArrayUnion([resumed])}
        return lambda batch: batch.update(ref, fields)

    def last_record(self, stats: RunStats) -> Callable[[WriteBatch], None]:
        """The final record, as it is now, to be put into a batch (committed with the
        lease given back), after the progress records written in the background."""
        self.flush()
        ref, fields = self._ref(stats), self._progress(stats)
        return lambda batch: batch.update(ref, fields)

    def commit(self, add: Callable[[WriteBatch], None]) -> None:
        """Write what `add` puts into a batch, on its own."""
        def write() -> None:
            batch = self.client.batch()
            add(batch)
            batch.commit(retry=NO_LIBRARY_RETRY, timeout=call_timeout(CALL_SECONDS))

        call_with_retry(write, self.policy, "writing the run ledger")

    def _entry(self, stats: RunStats, arguments: dict[str, Any], settings: dict[str, Any],
               mode: str) -> dict[str, Any]:
        return {**self._header(stats, arguments, settings, mode), **who(), "resumed_at": [],
                **self._progress(stats)}

    def set_state(self, stats: RunStats) -> None:
        """Throttled, paused or running again: said at once, not with the next batch, with
        the database's time of the change (a status shows how long it has held)."""
        self._write(self._ref(stats), {"state": stats.state,
                                       "held_because": stats.held_because,
                                       "state_since": firestore.SERVER_TIMESTAMP,
                                       "updated_at": iso(utc_now())})

    def set_control(self, run_id: str, control: str | None) -> None:
        """What the run's tasks obey (backfill.control); None clears it (an operator's
        --resume of a stopped run: the stop was obeyed then)."""
        self._write(self.collection.document(run_id), {
            "control": control, "control_by": signed_by(), "control_at": iso(utc_now())})

    def set_pace(self, run_id: str, writes_per_second: float | None,
                 parallel_batches: int | None) -> dict[str, Any]:
        """A new pace for a running run (backfill.pace): what its tasks apply with their
        next control poll, each change kept with who and when, and the run's settings
        (a resume carries the last values on; a fixed rate is also the start, so the
        ramp-up does not start again). Returns the change as recorded."""
        change: dict[str, Any] = {"by": signed_by(), "at": iso(utc_now())}
        fields: dict[str, Any] = {"pace.by": change["by"], "pace.at": change["at"]}
        if writes_per_second is not None:
            change["writes_per_second"] = writes_per_second
            fields["pace.writes_per_second"] = writes_per_second
            fields["settings.max_writes_per_second"] = writes_per_second
            if writes_per_second > 0:
                fields["settings.initial_writes_per_second"] = writes_per_second
        if parallel_batches is not None:
            change["parallel_batches"] = parallel_batches
            fields["pace.parallel_batches"] = parallel_batches
            fields["settings.parallel_batches"] = parallel_batches
        fields["pace_changes"] = firestore.ArrayUnion([change])
        self._write(self.collection.document(run_id), fields)
        return change

    def complete_if_all_shards_are(self, run_id: str) -> bool:
        """A sharded run is completed when its last shard is: each shard, having recorded
        its own completion, looks at all of them (so the last one to finish sees it)."""
        run = self.get(run_id)
        if run is None or run.shard_count is None:
            return False
        shards = self.shards(run_id)
        if len(shards) < run.shard_count or \
                any(s.status != RunStatus.COMPLETED for s in shards):
            return False
        if run.status == RunStatus.COMPLETED:  # another shard, finishing too, got there
            return True
        counts: dict[str, int] = {}
        for shard in shards:
            for name, value in shard.counts.items():
                counts[name] = counts.get(name, 0) + int(value)
        self._write(self.collection.document(run_id), {
            "status": RunLife(run.status).shards_completed(), "counts": counts,
            "finished_at": iso(utc_now())})
        return True

    def join_sharded(self, stats: RunStats, arguments: dict[str, Any],
                     settings: dict[str, Any], mode: str,
                     compute_boundaries: Callable[[], tuple[list[str], str]],
                     ) -> tuple[list[str], LedgerEntry | None]:
        """Join a sharded run: the first task to arrive computes the boundaries and records
        the run; every other task reads them. Returns the boundaries, and this shard's
        entry when it was there already (a retried or resumed task), else None."""
        shard = stats.shard
        assert shard is not None
        run_ref = self.collection.document(stats.run_id)
        run = self._read(run_ref)
        if run is None:
            boundaries, method = compute_boundaries()
            fields = {**self._header(stats, arguments, settings, mode),
                      "shard_count": shard.count,
                      "boundaries": boundaries, "boundary_method": method,
                      "status": RunLife().shard_joined()}

            def create_unless_there() -> None:
                # Another task may be first: then its boundaries are the run's.
                with contextlib.suppress(gexc.Conflict):
                    run_ref.create(fields, retry=NO_LIBRARY_RETRY,
                                   timeout=call_timeout(CALL_SECONDS))

            call_with_retry(create_unless_there, self.policy, "writing the run ledger")
            run = self._read(run_ref)
            assert run is not None
        for name, theirs, ours in (
                ("tool", run.tool, stats.tool), ("collection", run.collection, stats.collection),
                ("shard_count", run.shard_count, shard.count),
                ("target_field", run.target_field, stats.target_field),
                ("--where", run.where, list(settings.get("where") or []))):
            if theirs != ours:
                raise ConfigurationError(f"run {stats.run_id} has {name} {theirs!r}, this "
                                         f"task {ours!r}")
        if run.settings.get("task") != settings.get("task"):  # a task's run: the same task
            raise ConfigurationError(f"run {stats.run_id} runs the task "
                                     f"{run.settings.get('task')}, this task "
                                     f"{settings.get('task')}")
        existing = self._read(self._ref(stats))
        if existing is None:
            self._write(self._ref(stats), {"shard": str(shard), **who(),
                                           "started_at": iso(stats.started_at),
                                           "resumed_at": [], **self._progress(stats)},
                        create=True)
        return list(run.boundaries or ()), existing

    def shards(self, run_id: str) -> list[LedgerEntry]:
        snaps = call_with_retry(lambda: list(self.collection.document(run_id).collection(
            SHARDS).stream(retry=NO_LIBRARY_RETRY, timeout=call_timeout(CALL_SECONDS))),
            self.policy, "reading the run ledger")
        return sorted((RunEntry.parse(s.to_dict(), s.read_time) for s in snaps),
                      key=lambda e: int(str(e.shard).split("/")[0]))

    def record(self, stats: RunStats) -> None:
        """Counts, checkpoint and status together, as they are now: skipped when the last
        record is younger than min_interval, and written by a thread of its own, off the
        run's critical path (in order; a record that fails is superseded by the next
        one). The final record is last_record's, after these."""
        now = time.monotonic()
        if now - self._last_record < self.min_interval:
            return
        fields, ref = self._progress(stats), self._ref(stats)  # taken now, written later
        self._last_record = now
        with self._lock:
            if self._background is None:
                self._background = ThreadPoolExecutor(max_workers=1,
                                                      thread_name_prefix="ledger")
            self._background.submit(self._write_quietly, ref, fields)

    def _write_quietly(self, ref: Any, fields: dict[str, Any]) -> None:
        with contextlib.suppress(BackfillError):
            self._write(ref, fields)

    def flush(self, drop_pending: bool = False) -> None:
        """Wait for the progress records written in the background; with `drop_pending`,
        only for the one being written (the database failed: the rest would each wait
        out a retry budget, and a later record supersedes them anyway)."""
        with self._lock:
            background, self._background = self._background, None
        if background is not None:
            background.shutdown(wait=True, cancel_futures=drop_pending)

    def get(self, run_id: str) -> LedgerEntry | None:
        return self._read(self.collection.document(run_id))

    def runs(self, tool: str | None = None) -> list[LedgerEntry]:
        """Runs, newest first. Equality filters only: no composite index is needed."""
        query: Any = self.collection
        if tool is not None:
            query = query.where(filter=FieldFilter("tool", "==", tool))
        snaps: Iterable[Any] = call_with_retry(
            lambda: list(query.stream(retry=NO_LIBRARY_RETRY,
                                      timeout=call_timeout(CALL_SECONDS))), self.policy,
            "reading the run ledger")
        # With the database's time of the read: what a status counts a spell up to.
        entries = [RunEntry.parse(s.to_dict(), s.read_time) for s in snaps
                   if (s.to_dict() or {}).get("kind") != "lease"]
        return sorted(entries, key=lambda e: str(e.started_at), reverse=True)

    @overload
    def find_resumable(self, tool: str, collection: str, run_id: str | None, *,
                       task: str | None = None) -> LedgerEntry: ...

    @overload
    def find_resumable(self, tool: str, collection: str, run_id: str, *,
                       named: bool, task: str | None = None) -> LedgerEntry | None: ...

    def find_resumable(self, tool: str, collection: str, run_id: str | None, *,
                       named: bool = False, task: str | None = None) -> LedgerEntry | None:
        """The run to resume: the given one, or the newest unfinished one of this tool.

        `named`: run_id names a run (--job-id) that may not exist yet (None) or may be
        completed already; otherwise both are errors."""
        if run_id is not None:
            entry = self.get(run_id)
            if entry is None and named:
                return None
            if entry is None:
                raise ConfigurationError(f"no run {run_id!r} in the ledger "
                                         f"{self.collection.id!r}")
            if entry.tool != tool:
                raise ConfigurationError(f"run {run_id} is a {entry.tool} run, not a {tool} run")
            if entry.status == RunStatus.COMPLETED and not named:
                raise ConfigurationError(f"run {run_id} is already completed")
            return entry
        for entry in self.runs(tool):
            if entry.collection == collection and entry.status in UNFINISHED and \
                    entry.settings.get("task") == task:  # a task's: its own runs only
                return entry
        what = f"{tool} run" if task is None else f"run of the task {task}"
        raise ConfigurationError(f"no unfinished {what} of collection {collection!r} "
                                 "to resume")



def _nothing(batch: WriteBatch) -> None:
    """A record that puts nothing into its batch."""


class NoRecord:
    """A dry run's ledger: the same calls as a Ledger's for a run, each recording nothing;
    a shard joins no run (its boundaries are computed, not recorded)."""

    policy: RetryPolicy | None = None

    def first_record(self, stats: RunStats, arguments: dict[str, Any],
                     settings: dict[str, Any], mode: str) -> Callable[[WriteBatch], None]:
        return _nothing

    def reopen_record(self, stats: RunStats,
                      earlier_reason: str | None) -> Callable[[WriteBatch], None]:
        return _nothing

    def last_record(self, stats: RunStats) -> Callable[[WriteBatch], None]:
        return _nothing

    def commit(self, add: Callable[[WriteBatch], None]) -> None:
        pass

    def set_state(self, stats: RunStats) -> None:
        pass

    def record(self, stats: RunStats) -> None:
        pass

    def flush(self, drop_pending: bool = False) -> None:
        pass

    def complete_if_all_shards_are(self, run_id: str) -> bool:
        return False

    def join_sharded(self, stats: RunStats, arguments: dict[str, Any],
                     settings: dict[str, Any], mode: str,
                     compute_boundaries: Callable[[], tuple[list[str], str]],
                     ) -> tuple[list[str], LedgerEntry | None]:
        return compute_boundaries()[0], None


# What a run records itself in: the ledger, or nothing (a dry run).
RunRecord = Ledger | NoRecord


def restore(stats: RunStats, entry: LedgerEntry) -> None:
    """Carry a resumed run's counts on: the totals cover the whole run, all sessions."""
    for name in COUNTS:
        setattr(stats, name, entry.count(name))
    stats.tally.restore(entry.counts)
    stats.errors = list(entry.errors)
    stats.errors_not_listed = max(0, entry.count("errors") - len(stats.errors))
    stats.checkpoint = entry.checkpoint
    stats.parts = [Part.from_dict(p) for p in entry.parts] if entry.parts else None
    stats.throttled_seconds = entry.throttled_seconds
    stats.throttle_spells = entry.throttle_spells
    stats.paused_seconds = entry.paused_seconds
    stats.active_seconds = entry.active_seconds
