"""The contract between a run and its job: what a job decides for one document, and what
a batch of decisions came to."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any, Protocol

from google.cloud import firestore

from backfill.retry import RetryPolicy
from backfill.target_field import TargetField
from backfill.volume import WriteVolume

SAMPLES_PER_BATCH = 3  # the writes of a batch a dry run shows


@dataclass(frozen=True)
class Decision:
    """What to write on one document (None: nothing, it is fine as it is)."""

    doc_id: str
    fields: dict[str, Any] | None  # field path -> new value (or DELETE_FIELD)
    report: Any = None  # the job's own account of the item (its tool's Tally counts it)
    problem: str | None = None  # nothing is written, and the item is listed as an error
    # The item was counted in an earlier batch of this run (an undo meets an item once
    # per journal entry): this decision is carried out, not counted again.
    repeat: bool = False


# Pages a job brings itself, each with its checkpoint, read after a given checkpoint.
PageSource = Callable[[str | None], Iterator[tuple[list[Any], str]]]


class Job(Protocol):
    tool: str

    @property
    def target(self) -> TargetField | None:
        """The one field the job writes (its parent read where a mask hid it, before
        deciding); None: the paths of each decision (a task's)."""
        ...

    @property
    def read_fields(self) -> tuple[str, ...] | None:
        """The field mask for reads: only what decide() needs; None: whole documents."""
        ...

    journaled: bool  # whether a run journals the target's previous values

    def decide(self, doc_id: str, data: dict[str, Any]) -> Decision: ...

    def page_source(self, client: firestore.Client, collection: str,
                    policy: RetryPolicy) -> PageSource | None:
        """Where the job's pages come from; None: from scanning the collection."""
        ...



@dataclass
class BatchOutcome:
    number: int
    first_id: str
    last_id: str
    processed: int = 0
    written: int = 0  # in a dry run: would be written
    skipped: int = 0
    vanished: int = 0
    left_subset: int = 0  # changed by the app out of the run's --where before written
    conflicts_retried: int = 0
    errors: list[tuple[str, str]] = field(default_factory=list)
    decisions: dict[str, Decision] = field(default_factory=dict)  # final, per document
    samples: list[Decision] = field(default_factory=list)  # a few writes, for dry-run output
    part: int | None = None  # with parallel reads: which part of the range the page is from
    volume: WriteVolume = field(default_factory=WriteVolume)  # a dry run's: backfill.cost
    last: bool = False  # no batch comes after it (the run's final record comes next)
