"""The run loop shared by the writing tools: read pages, decide, write, count, checkpoint.

Reading and writing overlap: the next page is read while earlier batches are written,
with a bounded number of batches in flight. Outcomes are collected in page order, so
the checkpoint only ever moves past documents that are fully done.
"""

from __future__ import annotations

import threading
from collections import deque
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field, replace
from functools import partial
from typing import Any, TypeVar

from google.cloud import firestore
from google.cloud.firestore_v1 import DELETE_FIELD
from google.cloud.firestore_v1.document import DocumentReference, DocumentSnapshot

from backfill.batch import SAMPLES_PER_BATCH, BatchOutcome, Decision, Job
from backfill.errors import STOPPED_ON_REQUEST, RunInterrupted
from backfill.fence import Fence
from backfill.fields import ABSENT
from backfill.journal import Journal, journal_entry, too_large_to_journal
from backfill.limits import DEFAULT_PARALLEL_BATCHES, MAX_PARALLEL_BATCHES
from backfill.pager import (
    iter_pages,
    part_pages,
    prefetched,
    read_documents,
    read_tops,
    snapshot_data,
    with_parents,
)
from backfill.ranges import Part
from backfill.ratelimit import WriteRateLimiter
from backfill.retry import RetryPolicy
from backfill.stats import RunStats
from backfill.target_field import Parent, TargetField
from backfill.values import SERVER_TIME, without_unchanged
from backfill.volume import WriteVolume, index_entries, storage_bytes
from backfill.where import Condition, holds, narrowed
from backfill.writer import Write, WriteResult, WritesStopped, WriteStatus, commit_writes

T = TypeVar("T")
# How often an item that the app keeps editing is re-read and written again.
MAX_CONFLICT_ROUNDS = 3
JOURNAL_ENTRY_BYTES = 60  # of a journal entry, beside its ID and previous value
# A document to write: as read, its data (parent included where needed), the decision.
ToWrite = tuple[DocumentSnapshot, dict[str, Any], Decision]


@dataclass(frozen=True)
class RunSettings:
    batch_size: int = 500
    dry_run: bool = False
    where: tuple[Condition, ...] = ()  # only the items that meet these (--where)
    limit: int | None = None
    after_id: str | None = None  # resume: start after this document ID
    from_id: str | None = None  # a shard's first ID (included)
    before_id: str | None = None  # the next shard's first ID (excluded)
    max_in_flight: int = DEFAULT_PARALLEL_BATCHES
    # How many batches may be in flight now, when an operator may change it while the run
    # goes on (backfill_control.py set); at most MAX_PARALLEL_BATCHES. Default max_in_flight.
    batches_in_flight: Callable[[], int] | None = None
    policy: RetryPolicy = field(default_factory=RetryPolicy)
    limiter: WriteRateLimiter | None = None
    journal: Journal | None = None  # journal the previous values before each batch
    # A resumed run's own writes that its ledger never counted (a kill came first): found
    # done again, they are counted as its updates, not as skips.
    written_by_run: frozenset[str] = frozenset()
    # The run's lease: no batch is written unless the run still holds it (the journal's
    # commits carry the check; an unjournaled job's batch checks it first).
    fence: Fence | None = None
    # Where the pages come from, when not from scanning the collection (undoing a run
    # reads its journal), with each page's checkpoint, given `after_id`. With read_ahead
    # off, a page is read only after the batches before it are written: undoing walks
    # one item's history backwards.
    source: Callable[[str | None], Iterator[tuple[list[DocumentSnapshot], str]]] | None = None
    read_ahead: bool = True
    # Parallel reads: the range in parts, each read by a cursor of its own from its own
    # checkpoint (kept in the stats), instead of one cursor from after_id.
    parts: list[Part] | None = None
    # Blocks until the run may write (its lease held and its ledger entry written, while
    # the first pages are read); raises when it may not. Called before a batch's first
    # write, so nothing is written before.
    ready: Callable[[], None] | None = None
    # Blocks while no new page may be read nor batch written (throttled, paused), until
    # the stop event; raises when that lasts too long.
    gate: Callable[[threading.Event], None] | None = None


@dataclass
class Journaled:
    """A batch's journal entries as recorded (a task's: one per path written), and the
    writes refused for being too large to journal."""

    journal: Journal
    refused: dict[int, str]
    parts: list[tuple[str, int]]  # each journal document's key and its number of entries
    entries: list[dict[str, Any]]
    counts: list[int]  # entries per write sent

    def landed(self, landed: list[bool], server_times: list[int | None]) -> None:
        """Which writes sent landed, and the time the server set where they asked for it."""
        times = [at if entry["after"] == SERVER_TIME else None
                 for entry, at in zip(self.entries, _per_entry(server_times, self.counts),
                                      strict=True)]
        self.journal.record_outcome(self.parts, _per_entry(landed, self.counts), times)


class BatchLimit:
    """How many batches may be in flight now: the run's setting, or what an operator set
    while it goes on (backfill_control.py set), at most MAX_PARALLEL_BATCHES."""

    def __init__(self, settings: RunSettings) -> None:
        self.live = settings.batches_in_flight
        if settings.dry_run or not settings.read_ahead:
            self.live, self.workers = None, 1
        else:
            # Threads start only when batches need them: a pool as large as the limit
            # an operator may set costs nothing until then.
            self.workers = (MAX_PARALLEL_BATCHES if self.live is not None
                            else settings.max_in_flight)

    def __call__(self) -> int:
        if self.live is None:
            return self.workers
        return max(1, min(MAX_PARALLEL_BATCHES, self.live()))


class InFlight:
    """The batches being written, collected in the order their pages came: each counted
    and told once done; after a failed one, none (the checkpoint stays before it, so a
    resume does the batches behind it again: they are counted then, not now as well)."""

    def __init__(self, stats: RunStats, on_batch: Callable[[BatchOutcome], None]) -> None:
        self.stats, self.on_batch = stats, on_batch
        self.batches: deque[Future[BatchOutcome]] = deque()
        self.failure: BaseException | None = None
        self.batch_failed = False

    def add(self, batch: Future[BatchOutcome], limit: int) -> None:
        """One more batch; then collect the oldest while too many are in flight, and
        those already done."""
        self.batches.append(batch)
        while self.batches and (len(self.batches) >= limit or self.batches[0].done()):
            self.collect()

    def drain(self) -> None:
        while self.batches:
            self.collect(last=len(self.batches) == 1)

    def collect(self, last: bool = False) -> None:
        try:
            outcome = self.batches.popleft().result()
            outcome.last = last
        except BaseException as error:
            self.failure, self.batch_failed = self.failure or error, True
            return
        if not self.batch_failed:
            _count(self.stats, outcome)
            self.on_batch(outcome)


class Runner:
    def __init__(self, client: firestore.Client, collection: str, job: Job,
                 settings: RunSettings, stop: threading.Event | None = None) -> None:
        self.client = client
        self.collection = narrowed(client.collection(collection), settings.where)
        self.job = job
        # A document read again (after a conflict) is read by ID, not by the query: its
        # read carries the filter's fields too, so that the filter is checked again.
        self.reread_fields = None if job.read_fields is None else (*job.read_fields, *(
            c.field for c in settings.where if c.field not in job.read_fields))
        self.settings = settings
        self.stop = stop or threading.Event()

    def run(self, stats: RunStats, on_batch: Callable[[BatchOutcome], None]) -> None:
        """Process the collection; count into `stats`; call on_batch once per batch, in order.

        Raises DatabaseError when the database fails for good, RunInterrupted when `stop`
        is set; in both cases after the batches in flight have finished and been counted.
        """
        settings = self.settings
        # Parallel reads come from threads of their own already.
        read_ahead = settings.read_ahead and not settings.parts
        pages = prefetched(self._pages()) if read_ahead else self._pages()
        limit = BatchLimit(settings)
        in_flight = InFlight(stats, on_batch)
        with ThreadPoolExecutor(max_workers=limit.workers, thread_name_prefix="batch") as pool:
            try:
                for number, (page, checkpoint, part) in enumerate(pages,
                                                                  start=stats.batches + 1):
                    if not page:
                        continue
                    datas = self._data(page)
                    decisions = self._decide(page, datas, self.job.read_fields)
                    if settings.gate is not None:
                        settings.gate(self.stop)  # a page read may still wait to be written
                    if self.stop.is_set():
                        break
                    in_flight.add(pool.submit(self._settle, number, page, checkpoint, datas,
                                              decisions, part), limit())
                    if in_flight.failure is not None or self.stop.is_set():
                        break
            except BaseException as error:  # a page that could not be read
                in_flight.failure = in_flight.failure or error
            in_flight.drain()
        if in_flight.failure is not None:
            raise in_flight.failure
        if self.stop.is_set():
            raise RunInterrupted(STOPPED_ON_REQUEST)

    def _pages(self) -> Iterator[tuple[list[DocumentSnapshot], str, int | None]]:
        """The run's pages, each with its checkpoint and its part (parallel reads), each
        read only once the gate is open."""
        settings = self.settings
        pages: Iterator[tuple[list[DocumentSnapshot], str, int | None]]
        if settings.source:
            pages = ((page, key, None) for page, key in _limited(
                settings.source(settings.after_id), settings.limit))
        elif settings.parts:
            gate = settings.gate
            pages = ((page, page[-1].id, part) for page, part in part_pages(
                self.collection, settings.parts, fields=self.job.read_fields,
                page_size=settings.batch_size, policy=settings.policy,
                before_each=None if gate is None else partial(gate, self.stop)))
        else:
            pages = ((page, page[-1].id, None) for page in iter_pages(
                self.collection, fields=self.job.read_fields, page_size=settings.batch_size,
                policy=settings.policy, after_id=settings.after_id, from_id=settings.from_id,
                before_id=settings.before_id, limit=settings.limit))
        return pages if settings.gate is None else _gated(pages, settings.gate, self.stop)

    def _data(self, snaps: Sequence[DocumentSnapshot],
              fields: Sequence[str] | None = None) -> list[dict[str, Any]]:
        """The snapshots' data, with the target's parent read where the mask hid it."""
        fields = self.job.read_fields if fields is None else fields
        if self.job.target is None or fields is None:
            return [snapshot_data(snap) if snap.exists else {} for snap in snaps]
        return with_parents(self.client, snaps, self.job.target, fields,
                            self.settings.policy)

    def _decide(self, snaps: Sequence[DocumentSnapshot], datas: list[dict[str, Any]],
                fields: Sequence[str] | None) -> list[Decision]:
        """The job's decision on each existing document. Where it writes a path the mask
        hid (or hid a parent of), the document's top-level fields of those paths are read
        too (one read for all; `datas` completed in place), and it decides again on what
        it then sees: the journal keeps what each write replaces, and no write goes
        through a non-map."""
        existing = [i for i, snap in enumerate(snaps) if snap.exists]
        decisions = {i: self.job.decide(snaps[i].id, datas[i]) for i in existing}
        hidden = {} if fields is None else {
            i: tops for i in existing if (tops := hidden_tops(decisions[i], datas[i], fields))}
        read_tops(self.client, snaps, datas, list(hidden),
                  sorted({top for tops in hidden.values() for top in tops}),
                  self.settings.policy, "reading the fields a task writes")
        for i in hidden:
            decisions[i] = self.job.decide(snaps[i].id, datas[i])
        return [self._changing(decisions[i], datas[i]) for i in existing]

    def _changing(self, decision: Decision, data: dict[str, Any]) -> Decision:
        """A task's decision without the writes that change nothing (every path it writes
        read by now): a re-run writes nothing. A job with one target decides that
        itself."""
        if self.job.target is not None or not decision.fields:
            return decision
        return replace(decision, fields=without_unchanged(decision.fields, data) or None)

    def _settle(self, number: int, page: Sequence[DocumentSnapshot], checkpoint: str,
                datas: list[dict[str, Any]], decisions: list[Decision],
                part: int | None = None) -> BatchOutcome:
        """Write one page's decisions; re-read and decide again where the app got there first."""
        repeats = sum(1 for d in decisions if d.repeat)
        outcome = BatchOutcome(number, page[0].id, checkpoint, processed=len(page) - repeats,
                               part=part)
        outcome.decisions = {decision.doc_id: decision for decision in decisions}
        existing = [(snap, data) for snap, data in zip(page, datas, strict=True) if snap.exists]
        outcome.vanished = len(page) - len(existing)
        to_write = [(snap, data, decision)
                    for (snap, data), decision in zip(existing, decisions, strict=True)
                    if decision.fields is not None]
        outcome.errors = [(d.doc_id, d.problem) for d in decisions if d.problem]
        outcome.skipped = sum(1 for d in decisions
                              if d.fields is None and not d.problem and not d.repeat)
        if self.settings.written_by_run and not self.settings.dry_run:
            ours = sum(1 for d in decisions if d.fields is None and not d.problem
                       and d.doc_id in self.settings.written_by_run)
            outcome.skipped -= ours
            outcome.written += ours
        outcome.samples = [d for _, _, d in to_write][:SAMPLES_PER_BATCH]
        if self.settings.dry_run:
            outcome.written = len(to_write)
            outcome.volume = self._volume(to_write)
            return outcome
        results = self._commit(to_write)
        for _ in range(MAX_CONFLICT_ROUNDS):
            conflicted = [r.write.reference for r in results if r.status is WriteStatus.CONFLICT]
            if not conflicted:
                break
            outcome.conflicts_retried += len(conflicted)
            results = [r for r in results if r.status is not WriteStatus.CONFLICT]
            results += self._commit(self._decide_again(conflicted, outcome))
        self._tally(results, outcome)
        return outcome

    def _volume(self, to_write: list[ToWrite]) -> WriteVolume:
        """What a dry run's page would write (backfill.cost): for the estimate."""
        volume = WriteVolume(batches=1 if to_write else 0, smallest_batch=len(to_write),
                             largest_batch=len(to_write))
        for snap, data, decision in to_write:
            for path, value in (decision.fields or {}).items():
                if value is not DELETE_FIELD:
                    volume.index_entries += index_entries(value)
                    volume.field_bytes += storage_bytes(path.split(".")[-1]) + \
                        storage_bytes(value)
                if self.job.journaled:
                    before = TargetField(path).value(data)
                    volume.journal_bytes += JOURNAL_ENTRY_BYTES + len(snap.id) + (
                        0 if before is ABSENT else storage_bytes(before))
        return volume

    def _commit(self, to_write: list[ToWrite]) -> list[WriteResult]:
        """Journal (when asked) what the writes replace, then write, with preconditions.
        A write whose previous value is too large to journal is not sent: there is never
        an unjournaled write."""
        if to_write and self.settings.ready is not None:
            self.settings.ready()
        writes = [Write(snap.reference, decision.fields or {}, snap.update_time)
                  for snap, _, decision in to_write]
        journaled = self._journaled(to_write)
        if journaled is None and self.settings.fence is not None and writes:
            self.settings.fence.commit(lambda batch: None, "checking the collection's lease")
        refused = journaled.refused if journaled is not None else {}
        try:
            sent = commit_writes(self.client,
                                 [w for i, w in enumerate(writes) if i not in refused],
                                 self.settings.policy, self.settings.limiter)
        except WritesStopped as stopped:  # journaled, and then not all sent
            if journaled is not None:
                journaled.landed(stopped.landed, stopped.server_times)
            raise
        if journaled is not None:
            # Which of the journaled writes landed: an undo restores exactly those (and,
            # for a value that was the server's time, the time it was).
            journaled.landed([r.status is WriteStatus.OK for r in sent],
                             [r.server_time for r in sent])
        answers = iter(sent)
        return [WriteResult(write, WriteStatus.FAILED, refused[i]) if i in refused
                else next(answers) for i, write in enumerate(writes)]

    def _journaled(self, to_write: list[ToWrite]) -> Journaled | None:
        """The writes' journal entries, recorded before they are sent (None: this run
        journals nothing); those too large to journal refused."""
        journal = self.settings.journal
        if journal is None or not self.job.journaled:
            return None
        entries = [self._journal_entries(snap.id, data, decision.fields or {})
                   for snap, data, decision in to_write]
        refused = {i: self._too_large(per_write) for i, per_write in enumerate(entries)
                   if too_large_to_journal(per_write)}
        kept = [per_write for i, per_write in enumerate(entries) if i not in refused]
        recorded = [e for per_write in kept for e in per_write]
        return Journaled(journal, refused, journal.record(recorded), recorded,
                         [len(per_write) for per_write in kept])

    def _too_large(self, entries: list[dict[str, Any]]) -> str:
        """Why a write is not sent: what it replaces is too large to journal."""
        size = sum(len(e.get("encoded", b"")) for e in entries)
        what = (f"its previous {self.job.target.path}" if self.job.target is not None
                else f"the previous values of its {len(entries)} paths")
        return (f"{what} ({size:,} bytes encoded) is too large to journal: not written (an "
                "undo could not restore it)")

    def _journal_entries(self, doc_id: str, data: dict[str, Any],
                         fields: dict[str, Any]) -> list[dict[str, Any]]:
        """One journal entry per path written; a job with one target (the backfill) leaves
        its path out (the run records it)."""
        if self.job.target is not None:
            target = self.job.target
            return [journal_entry(doc_id, target, data, fields[target.path])]
        return [journal_entry(doc_id, TargetField(path), data, value, recorded_path=True)
                for path, value in fields.items()]

    def _decide_again(self, references: list[DocumentReference],
                      outcome: BatchOutcome) -> list[ToWrite]:
        """Read again the documents the app changed first, and decide again on those
        still in the run's subset (--where): one the app moved out of it is left alone."""
        fresh = read_documents(self.client, references, self.reread_fields,
                               self.settings.policy, "re-reading documents changed during the run")
        to_write: list[ToWrite] = []
        datas = self._data(fresh, self.reread_fields)
        subset = [(snap, data) for snap, data in zip(fresh, datas, strict=True)
                  if snap.exists and holds(data, self.settings.where)]
        outcome.vanished += sum(1 for snap in fresh if not snap.exists)
        outcome.left_subset += sum(1 for snap in fresh if snap.exists) - len(subset)
        kept = {snap.id for snap, _ in subset}
        for snap in fresh:
            if snap.exists and snap.id not in kept:
                outcome.decisions.pop(snap.id, None)
        # Completed by _decide where the mask hid what a write replaces: what is journaled.
        seen = [data for _, data in subset]
        decided = self._decide([snap for snap, _ in subset], seen, self.reread_fields)
        for (snap, _), data, decision in zip(subset, seen, decided, strict=True):
            outcome.decisions[snap.id] = decision
            if decision.problem:
                outcome.errors.append((snap.id, decision.problem))
            elif decision.fields is None:
                outcome.skipped += 0 if decision.repeat else 1
            else:
                to_write.append((snap, data, decision))
        return to_write

    @staticmethod
    def _tally(results: list[WriteResult], outcome: BatchOutcome) -> None:
        for result in results:
            doc_id = result.write.reference.id
            if result.status is WriteStatus.OK:
                outcome.written += 0 if outcome.decisions[doc_id].repeat else 1
            elif result.status is WriteStatus.MISSING:
                outcome.vanished += 1
            elif result.status is WriteStatus.CONFLICT:
                outcome.errors.append((doc_id, f"changed by someone else during the run "
                                                f"{MAX_CONFLICT_ROUNDS + 1} times; not written"))
            else:
                outcome.errors.append((doc_id, result.message))


def _gated(pages: Iterator[T], gate: Callable[[threading.Event], None],
           stop: threading.Event) -> Iterator[T]:
    """`pages`, each read only once the gate is open."""
    while True:
        gate(stop)
        if stop.is_set():
            return
        try:
            page = next(pages)
        except StopIteration:
            return
        yield page


def _limited(pages: Iterator[tuple[list[DocumentSnapshot], str]], limit: int | None,
             ) -> Iterator[tuple[list[DocumentSnapshot], str]]:
    """At most `limit` documents of `pages` (the last page cut short)."""
    left = limit
    for page, checkpoint in pages:
        if left is not None and len(page) >= left:
            yield page[:left], checkpoint
            return
        if left is not None:
            left -= len(page)
        yield page, checkpoint


def hidden_tops(decision: Decision, data: dict[str, Any],
                fields: Sequence[str]) -> set[str]:
    """The top-level fields to read so that each path `decision` writes, and each of its
    parents, is seen as it is: those the field mask `fields` hid."""
    tops: set[str] = set()
    for path in decision.fields or {}:
        covered = any(path == read or path.startswith(read + ".") for read in fields)
        seen = TargetField(path).parent(data)[0] is not Parent.UNSEEN
        if not (covered and seen):
            tops.add(path.split(".")[0])
    return {top for top in tops if top not in fields}


def _per_entry(outcomes: list[T], counts: list[int]) -> list[T]:
    """Each write's outcome, once per journal entry it has."""
    return [ok for ok, count in zip(outcomes, counts, strict=False) for _ in range(count)]


def _count(stats: RunStats, outcome: BatchOutcome) -> None:
    stats.batches = max(stats.batches, outcome.number)
    stats.processed += outcome.processed
    if stats.dry_run:
        stats.would_update += outcome.written
    else:
        stats.updated += outcome.written
    stats.skipped += outcome.skipped
    stats.vanished += outcome.vanished
    stats.left_subset += outcome.left_subset
    stats.conflicts_retried += outcome.conflicts_retried
    stats.volume.add(outcome.volume)
    for doc_id, message in outcome.errors:
        stats.add_error(doc_id, message)
    for decision in outcome.decisions.values():
        if decision.report is not None:
            stats.tally.add(decision.report)
    stats.checkpoint = outcome.last_id
    if outcome.part is not None and stats.parts is not None:
        # Outcomes are collected in the order their pages came, and within a part pages
        # come in ID order: the part's checkpoint only moves past what is done.
        stats.parts[outcome.part].checkpoint = outcome.last_id
