"""A writing run's whole life, in one object: it opens (a new run, a resume, a shard
joining its run, an undo), runs, and ends in exactly one of the ways `RunStatus` names,
each with its reason, every move made through backfill.lifecycle.

The run prints nothing: it tells a `Reporter` (the console implements it) what it says,
each batch done, each change of its gate, and how it finished. It returns an `Outcome`
or raises the typed error of an early end; the CLI around it parses options, asks for
confirmation, turns signals into a `StopRequest` and maps both to exit codes.
"""

from __future__ import annotations

import contextlib
import logging
import math
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import AbstractContextManager, contextmanager
from dataclasses import dataclass, replace
from datetime import datetime
from pathlib import Path
from typing import Any, Protocol

from google.cloud import firestore
from google.cloud.firestore_v1.batch import WriteBatch

from backfill.batch import BatchOutcome, Job
from backfill.clock import utc_now
from backfill.control import RunControl, standing_stop
from backfill.cost import CostEstimate, RunShape, estimate
from backfill.coverage import coverage
from backfill.errors import BackfillError, DatabaseError, RunInterrupted
from backfill.fence import Fence
from backfill.health_url import parse_health_urls
from backfill.journal import Journal, longest_in_flight
from backfill.lease import Lease, LeaseLost
from backfill.ledger import Ledger, LedgerEntry, NoRecord, Pace, RunRecord, restore
from backfill.lifecycle import Outcome, RunLife, not_begun
from backfill.logs import LOG_FILE_NAME, flush_run_log, run_log
from backfill.notify import notify, run_message
from backfill.options import RunOptions
from backfill.pace import LivePace
from backfill.pager import count_documents, empty_collection_message, id_range
from backfill.plan import RunPlan, plan_run
from backfill.ranges import Shard
from backfill.ratelimit import WriteRateLimiter
from backfill.retry import RetryPolicy
from backfill.run_view import where_it_stands
from backfill.runner import Runner, RunSettings
from backfill.shards import compute_boundaries, shard_range, split_range
from backfill.stats import RunStats, Tally, ToolExtras
from backfill.status import GateState, RunStatus, StopRequest
from backfill.target import Target
from backfill.target_field import TargetField
from backfill.throttle import Gate, HealthCheck, HealthWatch
from backfill.where import described, empty_subset_message, narrowed

# Once the database has failed a run, each closing step (the final ledger record, the
# lease given back, a shard's completion) makes one short attempt, not a fresh budget.
CLOSING_POLICY = RetryPolicy(initial_delay=0.25, max_delay=1.0, max_total_wait=2.0)


class NothingToDo(Exception):
    """The collection is empty: the run does not begin (nothing recorded)."""


class Reporter(Protocol):
    """What a run tells the operator. The run logs for itself what the reporter shows."""

    def said(self, line: str) -> None: ...

    def progress(self, total: int, done: int) -> AbstractContextManager[Callable[[int], None]]:
        """A progress display for the run's items; yields a function that adds to it."""
        ...

    def batch_done(self, outcome: BatchOutcome, dry_run: bool, held: str | None) -> str:
        """Show one batch; returns the line shown, for the log."""
        ...

    def gate_changed(self, state: GateState, why: str | None) -> str:
        """Show that the run is held or going on again; returns the line shown."""
        ...

    def finished(self, stats: RunStats, extra: dict[str, str],
                 resume_command: str | None) -> None: ...


MakeJob = Callable[[RunOptions, TargetField | None, firestore.Client], Job]
ResumeCommand = Callable[[RunOptions, str, Shard | None], str]


def run_settings(job: Job, options: RunOptions, client: firestore.Client, collection: str,
                 stats: RunStats, from_id: str | None, before_id: str | None,
                 journal: Journal | None, fence: Fence | None = None,
                 stop: threading.Event | None = None) -> RunSettings:
    """What a run reads and how fast it writes, built from its options and where it
    stands (pure: nothing is written into the stats; the parts are in the settings).
    `stop`: the run's; a write waiting for its turn, or a read or write waiting to be
    tried again, gives up when it is set."""
    source = job.page_source(client, collection, options.policy)
    parts = None
    if source is None and options.limit is None:
        if stats.parts is not None:  # a resumed run that read in parallel: as it was
            parts = stats.parts
        elif options.parallel_reads > 1:
            parts = split_range(stats.checkpoint or from_id, before_id,
                                options.parallel_reads)
            parts[0].checkpoint = stats.checkpoint  # a resume reads after it, not at it
    # Each shard paces itself at its share, so that all tasks together follow the ramp.
    share = stats.shard.count if stats.shard else 1
    initial = min(options.initial_writes_per_second, options.max_writes_per_second or math.inf)
    return RunSettings(
        batch_size=options.batch_size, dry_run=options.dry_run, where=options.conditions,
        # A resumed canary run: the limit is the whole run's.
        limit=None if options.limit is None else max(0, options.limit - stats.processed),
        after_id=stats.checkpoint, from_id=from_id, before_id=before_id,
        max_in_flight=options.parallel_batches, policy=replace(options.policy, stop=stop),
        journal=journal,
        fence=fence,
        source=source, read_ahead=source is None, parts=parts,
        limiter=WriteRateLimiter(initial=initial / share,
                                 ceiling=options.max_writes_per_second / share, stop=stop))


def planned(counted: int, limit: int | None) -> int:
    """The items a run goes through, as a status shares and times them: its count (of
    its subset, or of its shard's range), or its --limit, the whole run's, if smaller."""
    return counted if limit is None else min(counted, limit)


def uncounted_since_ns(entry: LedgerEntry, options: RunOptions) -> int:
    """Since when (time.time_ns, by the clock of the session that wrote both) a resumed
    run's journal may hold writes its ledger never counted: its last progress record,
    less the longest a batch may have been in flight then (its retries included)."""
    try:
        recorded = datetime.fromisoformat(str(entry.updated_at))
    except ValueError:
        return 0
    return int((recorded.timestamp() - longest_in_flight(options.max_retry_seconds)) * 1e9)


@dataclass
class StartingPoint:
    """Where a run's session starts: the entry it carries on (a resume's, a shard's run
    entry), and a shard's range of IDs and its own count."""

    resumed: LedgerEntry | None
    from_id: str | None = None
    before_id: str | None = None
    total: int | None = None  # a shard's own count; else the collection's, once counted


class SessionClock:
    """A session's time into the stats: throttled, paused and active, on top of what the
    earlier sessions of the run recorded."""

    def __init__(self, gate: Gate, stats: RunStats) -> None:
        self.gate, self.stats = gate, stats
        self.earlier = (stats.throttled_seconds, stats.throttle_spells, stats.paused_seconds,
                        stats.active_seconds)
        self.started = time.monotonic()
        stats.note_progress()

    def count(self) -> None:
        throttled, spells, paused = self.gate.totals()
        throttled_before, spells_before, paused_before, active_before = self.earlier
        self.stats.throttled_seconds = throttled_before + throttled
        self.stats.throttle_spells = spells_before + spells
        self.stats.paused_seconds = paused_before + paused
        self.stats.active_seconds = active_before + max(
            0.0, time.monotonic() - self.started - throttled - paused)


class PaceListener:
    """Applies a pace an operator set (backfill_control.py set), and says it."""

    def __init__(self, pace: LivePace, say: Callable[[str], None],
                 log: logging.Logger) -> None:
        self.pace, self.say, self.log = pace, say, log

    def __call__(self, change: Pace) -> None:
        applied = self.pace.apply(change)
        if applied is not None:
            line = f"🎚  Pace set by {change.by or 'someone'}: {applied}"
            self.say(line)
            self.log.info("%s", line)


class GateListener:
    """Says and records that the run is held (throttled, paused) or going on again: once
    the lease is held and the entry written (a run that did not begin says why at its
    end instead)."""

    def __init__(self, stats: RunStats, reporter: Reporter, record: RunRecord,
                 log: logging.Logger, opening: Future[None] | None) -> None:
        self.stats, self.reporter, self.record = stats, reporter, record
        self.log, self.opening = log, opening

    def __call__(self, state: GateState, why: str | None) -> None:
        if self.opening is not None and self.opening.exception() is not None:
            return
        self.stats.state, self.stats.held_because = state, why
        self.log.warning("%s", self.reporter.gate_changed(state, why))
        with contextlib.suppress(BackfillError):
            self.record.set_state(self.stats)


@dataclass
class Session:
    """What one session of a run goes through its pages with."""

    job: Job
    journal: Journal | None
    settings: RunSettings
    gate: Gate
    opening: Future[None] | None  # the lease and the first record, being taken
    clock: SessionClock
    on_pace: PaceListener


class BatchListener:
    """Each batch done: counted, recorded, shown. Nothing is said or recorded before the
    count and the lease; the progress display starts with the first batch."""

    def __init__(self, run: WritingRun, session: Session, record: RunRecord,
                 total: int | None, shown: contextlib.ExitStack, log: logging.Logger) -> None:
        self.run, self.session, self.record = run, session, record
        self.total, self.shown, self.log = total, shown, log
        self.advance: Callable[[int], None] | None = None

    def __call__(self, outcome: BatchOutcome) -> None:
        run, stats, options = self.run, self.run.stats, self.run.options
        assert stats is not None
        run.counted()
        if self.session.opening is not None:
            self.session.opening.result()
        counted = run.total if self.total is None else self.total
        stats.total = planned(counted, options.limit)
        if self.advance is None:  # the stats count this batch already: the bar not yet
            self.advance = self.shown.enter_context(run.reporter.progress(
                stats.total, stats.processed - outcome.processed))
        self.session.clock.count()
        run.counted_items = counted
        stats.note_progress()
        if not outcome.last:  # the final record follows
            self.record.record(stats)
        self.advance(outcome.processed)
        gate = self.session.gate
        self.log.info("%s", run.reporter.batch_done(
            outcome, options.dry_run, gate.paused_by or gate.throttled_because))
        _log_items(outcome, stats.tally, self.log)


class WritingRun:
    """One run of a writing tool (backfill, rollback), from its plan to its end."""

    def __init__(self, tool: str, make_job: MakeJob, options: RunOptions, shard: Shard | None,
                 target: Target, client: firestore.Client, reporter: Reporter,
                 resume_command: ResumeCommand, stats_prefix: str,
                 engine: str | None = None, recovery: Future[str] | None = None,
                 extras: ToolExtras | None = None) -> None:
        """`recovery`: a production run's point-in-time recovery check (backfill.recovery),
        going on while the run opens: logged, and said after a dry run's estimate."""
        self.tool, self.make_job, self.options, self.shard = tool, make_job, options, shard
        self.engine = engine  # the engine's attempt of this task (lease.engine_task)
        self.target, self.client, self.reporter = target, client, reporter
        self.resume_command, self.stats_prefix = resume_command, stats_prefix
        self.extras = extras or ToolExtras()
        self.ledger = Ledger(client, options.ledger_collection, options.policy)
        self.stop = StopRequest()
        self.plan: RunPlan | None = None
        self.total = 0
        self.counted_items = 0  # what the run's count read (its range's, for a shard)
        self.lease: Lease | None = None
        self.stats: RunStats | None = None
        self.log: logging.Logger | None = None
        self._entry_at_start: LedgerEntry | None = None
        self._counting: Future[int] | None = None
        self._count_lock = threading.Lock()
        self._journaled = False
        self.recovery = recovery

    def flush_log(self) -> None:
        """Make sure the run log is on disk (before an exit at once, on a second Ctrl-C)."""
        if self.log is not None:
            flush_run_log(self.log)

    # --- opening -----------------------------------------------------------------------

    def open(self, wait_for_count: bool = True) -> bool:
        """Decide which run this is and start counting its items (the count only feeds
        the banner and the progress bar: it runs while the plan is made, and, unless
        `wait_for_count`, while the first pages are read). False: nothing to do (an empty
        collection), and nothing was recorded."""
        options, say = self.options, self.reporter.said
        background = ThreadPoolExecutor(max_workers=1, thread_name_prefix="count")
        try:
            counting = background.submit(count_documents, self._items(options),
                                         options.policy)
            plan = plan_run(self.tool, options, self.shard, self.ledger)
            if (plan.options.collection, plan.options.where) != (options.collection,
                                                                 options.where):
                # a resume of another collection's run, or of a subset
                counting = background.submit(count_documents, self._items(plan.options),
                                             options.policy)
        finally:
            background.shutdown(wait=False)
        self._counting = counting
        self.plan, self.options = plan, plan.options
        self.target = replace(self.target, collection=plan.options.collection)
        if plan.resumed is not None:
            say(f"↩️  Resuming run {plan.run_id} ({plan.resumed.status}, {plan.mode} of "
                f"collection {self.target.collection}): {where_it_stands(plan.resumed)}")
        if plan.undone is not None:
            say(f"⏪ Undoing exactly run {plan.undone.run_id} ({plan.undone.status}, "
                f"started {plan.undone.started_at}) from its journal")
        say(f"📦 Batch size: {plan.options.batch_size}")  # a resumed run's, as recorded
        if plan.field is not None:
            say(f"🏷  Field: {plan.field.path}")
        elif plan.undone is not None:
            say(f"🧩 Paths: those run {plan.undone.run_id} journaled ({plan.undone.writes})")
        else:
            say(f"🧩 Task: {plan.options.task}" + (f" (version {plan.options.task_version})"
                                                  if plan.options.task_version else ""))
        return self.counted() if wait_for_count else True

    def _items(self, options: RunOptions) -> Any:
        """What the run goes through: the collection, or its subset (--where)."""
        return narrowed(self.client.collection(options.collection), options.conditions)

    def counted(self) -> bool:
        """Wait for the count and say it (once, from whichever thread asks first). False:
        the collection is empty, and that is said."""
        with self._count_lock:
            if self._counting is None:
                return self.total > 0
            counted = self._counting.result()
            self._counting = None
            self.total = counted
            say = self.reporter.said
            say(f"📊 Items in {self.target.collection}"
                f"{described(self.options.conditions)}: {counted}")
            if counted == 0:
                self._warn_empty()
                return False
            if self.options.limit is not None:
                say(f"✂️  Limited to {self.options.limit} items (canary run)")
            return True

    def _warn_empty(self) -> None:
        """An empty collection is often a typo: say so, with the collections there are."""
        if self.options.where:
            self.reporter.said(f"⚠️  {empty_subset_message(self.options.conditions)}")
            return
        self.reporter.said("⚠️  " + empty_collection_message(self.client, self.target,
                                                            self.options.policy))

    # --- running -----------------------------------------------------------------------

    def execute(self) -> Outcome:
        """Run the plan: a dry run reads only; a real run takes the collection's lease,
        records itself in the ledger, writes, and ends. Raises the typed error of an
        early end (after the end is recorded and said)."""
        plan = self.plan
        assert plan is not None, "open() first"
        options = self.options
        if options.dry_run:
            return self._run(NoRecord(), stopped_by=None)
        stopped_by = self._standing_stop()
        if stopped_by is not None and options.resume is None:
            self.reporter.said(
                f"⏹  Run {plan.run_id} was stopped by {stopped_by} (backfill_control.py "
                "stop): this task writes nothing, and ends with exit 0 so that the engine "
                "does not start it again. To carry the run on: "
                f"{self.resume_command(options, plan.run_id, self.shard)}")
            return not_begun(f"stopped by {stopped_by}")
        self.lease = Lease(self.client, options.ledger_collection,
                           self.target.collection, plan.run_id,
                           self.shard.key if self.shard else "0", self.tool,
                           options.policy, heartbeat_seconds=options.heartbeat_seconds,
                           timeout_seconds=options.lease_timeout_seconds, engine=self.engine,
                           shard=str(self.shard) if self.shard else None)
        try:
            return self._run(self.ledger, stopped_by=stopped_by)
        finally:
            self._give_lease_back()

    def _standing_stop(self) -> str | None:
        """Who stopped this run, when a stop stands on it. A task started again without
        --resume (an engine's retry, the same --job-id) obeys it; only an operator's
        --resume (or backfill_control.py continue) clears it."""
        plan = self.plan
        assert plan is not None
        entry = self.ledger.get(plan.run_id) if self.shard is not None else plan.resumed
        self._entry_at_start = entry
        return standing_stop(entry)

    def _take_lease(self, first_record: Callable[[WriteBatch], None] | None,
                    stopped_by: str | None, log: logging.Logger,
                    before_commit: Callable[[], None] | None = None) -> None:
        """Take the collection's lease, with the run's first ledger record in the same
        commit; clear the stop an operator's --resume overrides; start the heartbeat."""
        assert self.lease is not None and self.plan is not None
        takeover = self.lease.acquire(also=first_record, before_commit=before_commit)
        if takeover:
            self.reporter.said(f"⚠️  {takeover}")
            log.warning("%s", takeover)
        if stopped_by is not None:  # an operator's --resume: the stop was obeyed then
            self.ledger.set_control(self.plan.run_id, None)
            self.reporter.said(f"▶️  The stop by {stopped_by} is cleared (--resume)")
        self.lease.start_heartbeat(self.stop)

    def _give_lease_back(self, also: Callable[[WriteBatch], None] | None = None) -> bool:
        """The lease given back (once), with `also` in the same commit (Lease.give_back)."""
        return self.lease is not None and self.lease.give_back(also)

    def _run(self, record: RunRecord, stopped_by: str | None) -> Outcome:
        """Start or resume, iterate, end: the run's one loop (job-iteration's shape)."""
        stats = self.stats = self._new_stats()
        if self.shard is not None and not self.counted():
            return not_begun("nothing to do: the collection is empty")
        with run_log(self.options.output_dir, stats.tool, stats.run_id) as log:
            self.log = log
            start = self._starting_point(stats, record, stopped_by, log)
            if start.resumed is not None and start.resumed.status == RunStatus.COMPLETED:
                self.reporter.said(
                    f"✅ {'Shard ' + str(self.shard) + ' of run' if self.shard else 'Run'} "
                    f"{stats.run_id} is already completed: nothing to do")
                return not_begun("already completed")
            life = RunLife(None if start.resumed is None or self.options.dry_run
                           else start.resumed.status)
            life.resume() if life.status is not None else life.begin()
            session = self._session(stats, record, start, stopped_by, log)
            failure, extra = self._iterate(session, record, start, stopped_by, log, life)
            began = self._began(session.opening)
            if isinstance(began, NothingToDo):
                log.info("nothing to do: the collection is empty")
                return not_begun("nothing to do: the collection is empty")
            if began is not None:  # the run never began: nothing is recorded
                log.error("%s", began)
                raise began
            session.clock.count()
            self._end(stats, life, record, log, extra, session.journal,
                      database_failed=isinstance(failure, DatabaseError))
        if isinstance(failure, RunInterrupted):
            failure.said = True  # one line per early end: the summary's
        if failure is not None:
            raise failure
        return life.outcome(stats.error_count)

    def _new_stats(self) -> RunStats:
        plan, options, target = self.plan, self.options, self.target
        assert plan is not None
        return RunStats(run_id=plan.run_id, tool=plan.tool, environment=target.environment,
                        dry_run=options.dry_run, project=target.project,
                        database=target.database, collection=target.collection,
                        shard=self.shard, target_field=plan.field_path,
                        tally=self.extras.tally(), recorded=dict(self.extras.recorded))

    def _starting_point(self, stats: RunStats, record: RunRecord,
                        stopped_by: str | None, log: logging.Logger) -> StartingPoint:
        """Which entry the run carries on (a resume's, a shard's run), and a shard's range
        and count; a resumed run's counts and checkpoint restored into `stats`."""
        plan, options, shard = self.plan, self.options, self.shard
        assert plan is not None
        start = StartingPoint(resumed=plan.resumed)
        if shard is not None:
            if self.lease is not None:  # a shard joins its run's entry behind the lease
                try:
                    self._take_lease(None, stopped_by, log)
                except BackfillError as error:
                    log.error("%s", error)
                    raise
            boundaries, joined = self._join_shard(stats, record,
                                                  options.settings(plan.field_path))
            start.resumed = start.resumed if options.dry_run else joined
            start.from_id, start.before_id = shard_range(boundaries, shard)
            start.total = count_documents(id_range(self._items(options), start.from_id,
                                                   start.before_id), options.policy)
            self.reporter.said(f"🧩 Shard {shard}: IDs from {start.from_id or 'the start'} "
                               f"to before {start.before_id or 'the end'}: {start.total} items")
        resumed = start.resumed
        if resumed is not None and not options.dry_run and \
                resumed.status != RunStatus.COMPLETED:
            restore(stats, resumed)
            self.reporter.said("↩️  Continuing " + (
                f"each of its {len(stats.parts)} parts after its own checkpoint "
                f"({where_it_stands(resumed)})" if stats.parts and len(stats.parts) > 1
                else f"after {stats.checkpoint or 'the beginning'}"))
        return start

    def _session(self, stats: RunStats, record: RunRecord, start: StartingPoint,
                 stopped_by: str | None, log: logging.Logger) -> Session:
        """This session's job, journal, settings, gate and pace, and its opening (the lease
        and the first record, taken while the first pages are read)."""
        plan, options, target = self.plan, self.options, self.target
        assert plan is not None
        settings_recorded = options.settings(plan.field_path)
        log.info("%s %s (%s): %s, settings %s, options %s",
                 "resume" if start.resumed else "start",
                 "[DRY RUN]" if options.dry_run else f"[{target.environment.upper()}]",
                 plan.mode, target.describe(), settings_recorded, options.arguments())
        job = self.make_job(options, plan.field, self.client)
        self._journaled = job.journaled
        if self.recovery is not None:  # the production run's way back, as checked
            self.recovery.add_done_callback(lambda check: log.info("%s", check.result()))
        journal = self._journal(job, stats, record, start.resumed)
        built = replace(run_settings(job, options, self.client, target.collection, stats,
                                     start.from_id, start.before_id, journal,
                                     fence=self.lease,
                                     stop=self.stop),
                        written_by_run=self._written_by_run(journal, start.resumed))
        if built.parts is not None:
            stats.parts = built.parts
        opening = self._open_writes(stats, record, start.resumed, settings_recorded,
                                    stopped_by, log)
        assert built.limiter is not None
        pace = LivePace(built.limiter, options.parallel_batches,
                        self.shard.count if self.shard else 1)
        gate = Gate(max_throttle_seconds=options.max_throttle_seconds, limiter=built.limiter,
                    on_change=GateListener(stats, self.reporter, record, log, opening))
        settings = replace(built, gate=gate.wait, batches_in_flight=pace.batches_in_flight,
                           ready=None if opening is None else opening.result)
        return Session(job, journal, settings, gate, opening, SessionClock(gate, stats),
                       PaceListener(pace, self.reporter.said, log))

    def _journal(self, job: Job, stats: RunStats, record: RunRecord,
                 resumed: LedgerEntry | None) -> Journal | None:
        if self.lease is None or not job.journaled:
            return None
        return Journal(self.client, self.options.ledger_collection, stats.run_id,
                       self.options.policy, self.shard.key if self.shard else "0",
                       fence=self.lease)

    def _written_by_run(self, journal: Journal | None,
                        resumed: LedgerEntry | None) -> frozenset[str]:
        """A resumed run's own writes that its ledger never counted (a kill came first)."""
        if journal is None or resumed is None:
            return frozenset()
        return journal.written_since(uncounted_since_ns(resumed, self.options))

    def _iterate(self, session: Session, record: RunRecord, start: StartingPoint,
                 stopped_by: str | None, log: logging.Logger,
                 life: RunLife) -> tuple[BaseException | None, dict[str, str]]:
        """The run's pages, read, decided, written and counted, until the end or a stop;
        the move that ends it made on `life`. Returns what to raise, and extra lines."""
        plan, stats = self.plan, self.stats
        assert plan is not None and stats is not None
        try:
            with contextlib.ExitStack() as shown, \
                    self._watching(session.gate, record, stats.run_id,
                                   None if session.opening is None else session.opening.result,
                                   self._entry_at_start or start.resumed,
                                   stopped_by is not None, session.on_pace):
                on_batch = BatchListener(self, session, record, start.total, shown, log)
                Runner(self.client, self.target.collection, session.job, session.settings,
                       self.stop).run(stats, on_batch)
            life.complete()
            if start.resumed is not None and plan.tool == "backfill" and self.shard is None:
                return None, self._coverage_after_resume(log)
            return None, {}
        except BaseException as error:  # each is said, recorded and raised (_failed)
            return self._failed(error, life), {}

    def _failed(self, error: BaseException, life: RunLife) -> BaseException:
        """The move an early end makes, and what the run then raises."""
        if isinstance(error, RunInterrupted):
            lost = self.lease.lost if self.lease is not None else None
            if lost:  # the stop came from losing the lease, not from an operator
                life.fail(lost)
                return LeaseLost(lost)
            life.interrupt(self.stop.reason or "stopped on request")
            return error
        if isinstance(error, BackfillError):
            life.fail(str(error))
            return error
        if isinstance(error, KeyboardInterrupt):  # a signal before the run's own handlers
            life.interrupt("SIGINT")
            return RunInterrupted("SIGINT")
        if not isinstance(error, Exception):
            raise error  # SystemExit and the like: not the run's to record
        life.fail(f"unexpected {type(error).__name__}: {error}")  # a defect: raised as is
        return error

    def _began(self, opening: Future[None] | None) -> BaseException | None:
        """Whether the run began: its opening (waited for, within its retry budget) and
        its count. A count that failed is what is said, whatever else failed after it
        (with the database down, the reads, the count and the lease read all fail)."""
        began = opening.exception() if opening is not None else None
        if began is not None or opening is None:
            try:
                if not self.counted():
                    return NothingToDo()
            except BackfillError as error:
                return error
        return began

    def _open_writes(self, stats: RunStats, record: RunRecord,
                     resumed: LedgerEntry | None, settings_recorded: dict[str, Any],
                     stopped_by: str | None, log: logging.Logger) -> Future[None] | None:
        """A real run's lease and first ledger record, in one commit. A run of the whole
        collection takes them in a thread of its own while its first pages are read: only
        its first write (and its first line) waits for them. None: nothing to wait for (a
        dry run takes no lease)."""
        plan = self.plan
        assert plan is not None
        if self.lease is None:
            return None
        reopened = None if resumed is None else record.reopen_record(
            stats, resumed.stopped_because)
        if self.shard is not None:  # its lease was taken before it joined its run
            if reopened is not None:
                record.commit(reopened)
            return None
        first = reopened or record.first_record(stats, self.options.arguments(),
                                                settings_recorded, plan.mode)
        def not_empty() -> None:
            if not self.counted():
                raise NothingToDo

        def take_lease() -> None:
            try:
                # An empty collection is found before anything is written; the count
                # goes on while the lease is read.
                self._take_lease(first, stopped_by, log, before_commit=not_empty)
            except Exception as error:
                # The run stops wherever it waits (a gate its entry paused, a read); the
                # end raises this error, with nothing recorded.
                self.stop.request(f"the run could not begin: {error}")
                raise

        opening = ThreadPoolExecutor(max_workers=1, thread_name_prefix="opening")
        try:
            return opening.submit(take_lease)
        finally:
            opening.shutdown(wait=False)

    def _join_shard(self, stats: RunStats, record: RunRecord,
                    settings_recorded: dict[str, Any]) -> tuple[list[str], Any]:
        shard, options, plan = self.shard, self.options, self.plan
        assert shard is not None and plan is not None

        def boundaries_now() -> tuple[list[str], str]:
            return compute_boundaries(self.client, self.target.collection, shard.count,
                                      options.policy,
                                      warn=lambda text: self.reporter.said(f"⚠️  {text}"))

        return record.join_sharded(stats, options.arguments(), settings_recorded, plan.mode,
                                   boundaries_now)

    @contextmanager
    def _watching(self, gate: Gate, record: RunRecord, run_id: str,
                  opened: Callable[[], None] | None,
                  first_look: LedgerEntry | None, stop_cleared: bool,
                  on_pace: Callable[[Pace], None]) -> Iterator[None]:
        """The backend's health (--throttle-url) and the run's control field, each probed
        in a thread of its own while the run goes on; the control's first poll once the
        run's entry is written (`opened`). `first_look`: the run's entry as read when this
        task started (a resume, a shard: the run may have been paused before), obeyed
        before the first write, with the stop an operator's --resume cleared, and the
        pace an operator set (`on_pace` applies it)."""
        options = self.options
        if first_look is not None and stop_cleared:
            first_look = replace(first_look, control=None)
        with contextlib.ExitStack() as stack:
            if options.throttle_url:
                stack.enter_context(HealthWatch(HealthCheck(
                    parse_health_urls(options.throttle_url), options.throttle_interval,
                    options.throttle_max_latency_ms), gate, self.stop))
            if not options.dry_run:
                stack.enter_context(RunControl(self.ledger, run_id, gate, self.stop,
                                               self.reporter.said,
                                               poll_seconds=options.control_poll_seconds,
                                               first_look=first_look,
                                               before_polls=opened, on_pace=on_pace))
            yield

    def _coverage_after_resume(self, log: logging.Logger) -> dict[str, str]:
        """A resume reads only after its checkpoint: say what that leaves out."""
        plan = self.plan
        assert plan is not None and plan.field is not None
        cover = coverage(self._items(self.options), plan.field, self.options.policy,
                         subset=bool(self.options.where))
        line = (f"{cover.carrying}/{cover.total} carry {plan.field.path} "
                f"({cover.percent:.1f}%)")
        if cover.carrying < cover.total:
            note = (f"⚠️  {cover.total - cover.carrying} items lack {plan.field.path}: a "
                    "resumed run does not re-read the items before its checkpoint (items "
                    "added or changed there since). Run the backfill again without --resume "
                    "to cover them (items already done are skipped).")
            self.reporter.said(note)
            log.warning("%s", note)
        return {"Coverage": line}

    # --- ending ------------------------------------------------------------------------

    def _end(self, stats: RunStats, life: RunLife, record: RunRecord,
             log: logging.Logger, extra: dict[str, str], journal: Journal | None,
             database_failed: bool) -> None:
        """The one place a run ends: its status and reason (as `life` moved), the final
        ledger record (with the lease given back), a shard's completion, the stats file,
        the log, what the operator is told, the webhooks told (--notify-url)."""
        assert life.status is not None
        status, reason = life.status, life.reason
        stats.status, stats.stopped_because = status, reason
        stats.finished_at = utc_now()
        stats.state, stats.held_because = GateState.RUNNING, None
        if reason is not None:
            (log.error if status == RunStatus.FAILED else log.warning)(
                "%s: %s", status, reason)
        if database_failed:
            self._closing_quickly(record)
        self._record_end(stats, record, journal, log)
        if self.shard is not None and status == RunStatus.COMPLETED:
            with contextlib.suppress(BackfillError):
                if record.complete_if_all_shards_are(stats.run_id):
                    self.reporter.said(f"✅ Every shard of run {stats.run_id} is completed: "
                                       "the run is completed")
        estimate = None
        if self.options.dry_run and status == RunStatus.COMPLETED:
            estimate = self._estimate(stats)
            stats.estimate = estimate.to_dict()
        stats_path = stats.write_file(self.options.output_dir, self.stats_prefix)
        log.info("finished %s: %s processed, %s written, %s would write, %s skipped, "
                 "%s errors, checkpoint %s; stats in %s", stats.status, stats.processed,
                 stats.updated, stats.would_update, stats.skipped, stats.error_count,
                 stats.checkpoint, stats_path)
        resume = None
        if status != RunStatus.COMPLETED and not self.options.dry_run:
            resume = self.resume_command(self.options, stats.run_id, self.shard)
            # In the log too: a console may be gone by now (SIGHUP, a closed pipe).
            log.info("to continue from the checkpoint: %s", resume)
        self.reporter.finished(stats, {"Run ID": stats.run_id, **extra,
                                       "Stats file": str(stats_path),
                                       "Log file": str(Path(self.options.output_dir)
                                                       / LOG_FILE_NAME)}, resume)
        if estimate is not None:
            for line in estimate.lines():
                self.reporter.said(line)
            if self.options.task is not None:
                self.reporter.said("   Not in it: what the task itself reads through "
                                   "self.client (one read per document it gets).")
            if self.recovery is not None:
                self.reporter.said(self.recovery.result())
        if self.options.notify_url and not self.options.dry_run:
            for failure in notify(self.options.notify_url, run_message(stats),
                                  self.options.notify_timeout_seconds):
                self.reporter.said(f"⚠️  {failure}")
                log.warning("%s", failure)

    def _estimate(self, stats: RunStats) -> CostEstimate:
        """What the real run will cost, from what this dry run read and would write."""
        options = self.options
        shape = RunShape(journaled=self._journaled, sharded=self.shard is not None,
                         batch_size=options.batch_size,
                         initial_writes_per_second=options.initial_writes_per_second,
                         max_writes_per_second=options.max_writes_per_second,
                         share=self.shard.count if self.shard else 1,
                         control_poll_seconds=options.control_poll_seconds,
                         heartbeat_seconds=options.heartbeat_seconds)
        return estimate(shape, scanned=stats.processed,
                        counted=self.counted_items if stats.total is not None else self.total,
                        items_written=stats.would_update, volume=stats.volume,
                        dry_run_seconds=stats.duration_seconds)

    def _closing_quickly(self, record: RunRecord) -> None:
        """The database has failed this run: what is left to write gets one short try."""
        record.flush(drop_pending=True)
        record.policy = CLOSING_POLICY
        if self.lease is not None:
            self.lease.policy = CLOSING_POLICY

    def _record_end(self, stats: RunStats, record: RunRecord, journal: Journal | None,
                    log: logging.Logger) -> None:
        """The final ledger record and the journal's last outcomes, in the commit that
        gives the lease back (one round trip); on their own when the lease is not this
        run's any more. When the database is what failed, this may fail too: the ledger
        then keeps the last checkpoint, status `running`, and --resume still finds it."""
        last = record.last_record(stats)
        outcomes_written: list[Callable[[], None]] = []

        def closing(batch: WriteBatch) -> None:
            last(batch)
            if journal is not None:
                outcomes_written[:] = [journal.outcomes_in(batch)]

        try:
            if self._give_lease_back(also=closing):
                for written in outcomes_written:
                    written()
                return
            if journal is not None:
                journal.write_outcomes()
            record.commit(last)
        except BackfillError as error:
            log.error("could not record the end of the run in the ledger: %s", error)
            self.reporter.said(f"⚠️  The ledger could not be updated ({error}); it keeps "
                               f"the last checkpoint, {stats.checkpoint}")


def _log_items(outcome: BatchOutcome, tally: Tally, log: logging.Logger) -> None:
    for doc_id, message in outcome.errors:
        log.error("item %s: %s", doc_id, message)
    # Per item, a report's detail is DEBUG, below the run log's level: its count is in the
    # summary and the stats, and at INFO a run over many items grew the log by MBs.
    if not log.isEnabledFor(logging.DEBUG):
        return
    for decision in outcome.decisions.values():
        for line in tally.item_lines(decision.report) if decision.report else []:
            log.debug("item %s: %s", decision.doc_id, line)
