"""What a real run will cost, estimated at the end of its dry run: operations as Firestore
bills them, the index entries and bytes the written field adds, and the time the write
ramp takes. Pure arithmetic on what the dry run counted; no I/O.

Sources, as of 2026-12-02:
- Billing: one read per document returned (a query that returns none costs one), one
  read per 1,000 index entries an aggregation count() reads, one write per document set
  or updated (a field deleted by an update is a write), one delete per document deleted;
  free daily quota 50,000 reads, 20,000 writes, 20,000 deletes
  (https://cloud.google.com/firestore/pricing).
- Index entries, by the automatic single-field indexes
  (https://firebase.google.com/docs/firestore/query-data/index-overview, "Automatic
  indexing"): a field that is neither an array nor a map gets an ascending and a
  descending index (2 entries); a map gets those for each such subfield and recurses
  into its map subfields; an array gets an array-contains index (1 entry per distinct
  element). See `index_entries`.
- Bytes, by the storage-size rules (https://firebase.google.com/docs/firestore/storage-size):
  a string is its UTF-8 bytes + 1, a number, a timestamp 8, a boolean or null 1, an array
  the sum of its values, a map the sum of its fields (name + value) + 32.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

from backfill.limits import RAMP_PERIOD_SECONDS
from backfill.ratelimit import WriteRateLimiter
from backfill.volume import WriteVolume

FREE_DAILY = {"reads": 50_000, "writes": 20_000, "deletes": 20_000}
COUNTED_PER_READ = 1000  # index entries a count() reads per billed read


def paced_seconds(writes: int, last_batch: int, initial: float, ceiling: float,
                  share: int = 1) -> float:
    """When the last batch of `writes` may go under the ramp (backfill.ratelimit): each
    batch goes its share of a second after the one before, so every batch but the last
    is paid for; the rate starts at `initial`, rises by half every period, up to
    `ceiling` (0: unpaced); a task of `share` paces itself at its share of both."""
    if ceiling <= 0 or writes <= last_batch:
        return 0.0
    # The pacer's own ramp, period by period (a clock at 0: its rate at each start).
    ramp = WriteRateLimiter(initial=min(initial, ceiling) / share, ceiling=ceiling / share,
                            clock=lambda: 0.0)
    left, elapsed = float(writes - last_batch), 0.0
    while True:
        rate = ramp.rate(elapsed)
        if left <= rate * RAMP_PERIOD_SECONDS or rate >= ramp.ceiling:
            return elapsed + left / rate
        left -= rate * RAMP_PERIOD_SECONDS
        elapsed += RAMP_PERIOD_SECONDS


@dataclass(frozen=True)
class RunShape:
    """What the estimate needs of a run: its tool, its pacing, its polls."""

    journaled: bool  # the backfill journals each page's previous values
    sharded: bool
    batch_size: int
    initial_writes_per_second: float
    max_writes_per_second: float
    share: int = 1
    control_poll_seconds: float = 5.0
    heartbeat_seconds: float = 15.0


@dataclass(frozen=True)
class CostEstimate:
    reads: int
    writes: int
    deletes: int
    index_entries: int
    bytes_written: int
    seconds: float
    items_written: int  # of `writes`: the items themselves; the rest is the overhead
    journal_documents: int
    notes: tuple[str, ...] = field(default=())

    def to_dict(self) -> dict[str, Any]:
        return {"reads": self.reads, "writes": self.writes, "deletes": self.deletes,
                "index_entries": self.index_entries, "bytes_written": self.bytes_written,
                "seconds": round(self.seconds, 1), "items_written": self.items_written,
                "journal_documents": self.journal_documents,
                "overhead_writes": self.writes - self.items_written,
                "free_daily_quota": FREE_DAILY, "notes": list(self.notes)}

    def lines(self) -> list[str]:
        def share(name: str, count: int) -> str:
            return f"{count:,} ({100 * count / FREE_DAILY[name]:.1f}% of the free " \
                   f"{FREE_DAILY[name]:,} a day)"

        journal = (f"the journal's {self.journal_documents:,} documents, "
                   if self.journal_documents else "")
        return [
            "💰 Estimate of the real run:",
            f"   reads:         {share('reads', self.reads)}",
            f"   writes:        {share('writes', self.writes)}: {self.items_written:,} "
            f"items, {self.writes - self.items_written:,} of the tool's own ({journal}"
            "ledger, lease)",
            f"   deletes:       {share('deletes', self.deletes)}",
            f"   index entries: {self.index_entries:,} added by the written field",
            f"   bytes written: {self.bytes_written:,}",
            f"   duration:      about {self.seconds:,.0f}s",
            *(f"   ({note})" for note in self.notes)]


def estimate(shape: RunShape, *, scanned: int, counted: int, items_written: int,
             volume: WriteVolume, dry_run_seconds: float) -> CostEstimate:
    """The real run's cost from what its dry run read (`scanned` documents, `counted` by
    the count) and would write."""
    # Which batch goes last is not known (with parallel reads, whichever page comes
    # last): the one between the smallest and the largest, which bounds the error.
    seconds = max(dry_run_seconds,
                  paced_seconds(items_written,
                                (volume.smallest_batch + volume.largest_batch) // 2,
                                shape.initial_writes_per_second,
                                shape.max_writes_per_second, shape.share))
    # Every fenced commit (a journal document, or an unjournaled page's check) also
    # writes the lease; the journal says later which writes landed (an update each).
    journal_documents = volume.batches if shape.journaled else 0
    fenced = volume.batches
    heartbeats = int(seconds // shape.heartbeat_seconds)
    polls = int(seconds // shape.control_poll_seconds)
    ledger_records = 2 + min(volume.batches, int(seconds))  # first, progress, last
    writes = (items_written + journal_documents * 2 + fenced
              + 2  # the lease and its heartbeat document, taken
              + 2 * heartbeats + ledger_records + (1 if shape.sharded else 0))
    reads = (scanned + max(1, math.ceil(counted / COUNTED_PER_READ))
             + 2  # the lease (and its holders' heartbeats), the plan's ledger read
             + polls + (3 if shape.sharded else 0))
    notes = ["writes are an upper bound: the dry run counts every item that needs the "
             "field now, and the app may fix some before the run gets there"]
    if shape.journaled:
        notes.append("a journal document per page that writes; a page whose previous "
                     "values pass 800 KB takes more")
    if shape.sharded:
        notes.append("this shard's share; the first shard also finds the boundaries "
                     "(a partition query, or about 60 one-document reads)")
    return CostEstimate(
        reads=reads, writes=writes, deletes=2,  # the lease and its heartbeat, given back
        index_entries=volume.index_entries,
        bytes_written=volume.field_bytes + volume.journal_bytes, seconds=seconds,
        items_written=items_written, journal_documents=journal_documents,
        notes=tuple(notes))
