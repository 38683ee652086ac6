"""What a run did, counted as it goes, and the stats file it leaves."""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any, Protocol

from backfill.clock import file_stamp, iso, utc_now
from backfill.ranges import Part, Shard
from backfill.status import GateState, RunStatus
from backfill.volume import WriteVolume

RATE_WINDOW = timedelta(minutes=1)
RATE_STEP = timedelta(seconds=5)


class Tally(Protocol):
    """What a tool counts of its job's reports (Decision.report), beside the run's own
    counts: into the stats file (`as_dict`), across a resume through the ledger
    (`counts`, `restore`), into the summary (`rows`) and, per item, the log."""

    def add(self, report: Any) -> None: ...

    def counts(self) -> dict[str, int]: ...

    def restore(self, counts: Mapping[str, Any]) -> None: ...

    def as_dict(self) -> dict[str, Any]: ...

    def rows(self) -> list[tuple[str, str]]: ...

    def item_lines(self, report: Any) -> list[str]: ...


class NoTally:
    """A job whose decisions report nothing of their own."""

    def add(self, report: Any) -> None:
        pass

    def counts(self) -> dict[str, int]:
        return {}

    def restore(self, counts: Mapping[str, Any]) -> None:
        pass

    def as_dict(self) -> dict[str, Any]:
        return {}

    def rows(self) -> list[tuple[str, str]]:
        return []

    def item_lines(self, report: Any) -> list[str]:
        return []


@dataclass(frozen=True)
class ToolExtras:
    """What a tool adds to its runs' stats: a tally of its job's reports, and what it
    records of itself (its versions) in the stats file and the ledger."""

    tally: Callable[[], Tally] = NoTally
    recorded: Mapping[str, Any] = field(default_factory=dict)


@dataclass
class RunStats:
    run_id: str
    tool: str
    environment: str
    dry_run: bool
    project: str
    database: str
    collection: str
    started_at: datetime = field(default_factory=utc_now)
    finished_at: datetime | None = None
    status: RunStatus = RunStatus.RUNNING
    batches: int = 0
    processed: int = 0
    updated: int = 0
    would_update: int = 0
    skipped: int = 0
    vanished: int = 0  # deleted by someone else while the run went on
    left_subset: int = 0  # moved out of the run's --where by someone else before written
    conflicts_retried: int = 0
    errors: list[dict[str, str]] = field(default_factory=list)
    errors_not_listed: int = 0  # a resumed run's earlier errors beyond what the ledger keeps
    tally: Tally = field(default_factory=NoTally)  # the tool's own counts of its reports
    checkpoint: str | None = None  # the last document ID fully done
    shard: Shard | None = None
    target_field: str | None = None  # the field the job writes (a task's: the paths it returns)
    # What the tool records of itself in the stats file and the ledger (its versions).
    recorded: dict[str, Any] = field(default_factory=dict)
    state: GateState = GateState.RUNNING  # while running: writing, throttled or paused
    held_because: str | None = None  # while throttled or paused: why, or by whom
    total: int | None = None  # the items to go through: the count (a shard's: its range's)
    # (when, processed) since a minute ago, and the one before: items/s over the last
    # minute, for a status read from another console.
    recent: list[tuple[datetime, int]] = field(default_factory=list)
    throttled_seconds: float = 0.0  # the whole run's, earlier sessions included
    throttle_spells: int = 0
    paused_seconds: float = 0.0
    # Time spent reading and writing, the whole run's: not held, not between sessions.
    active_seconds: float = 0.0
    stopped_because: str | None = None  # why a run stopped early, for the ledger
    parts: list[Part] | None = None  # parallel reads: each part's range and checkpoint
    volume: WriteVolume = field(default_factory=WriteVolume)  # a dry run's: backfill.cost
    estimate: dict[str, Any] | None = None  # a dry run's estimate of the real run

    def note_progress(self, now: datetime | None = None) -> None:
        """Keep how far the run is now, and what the last minute's rate needs."""
        moment = now or utc_now()
        if len(self.recent) > 1 and moment - self.recent[-2][0] < RATE_STEP:
            del self.recent[-1]  # a few points a minute are enough: the newest moves on
        self.recent.append((moment, self.processed))
        window_start = moment - RATE_WINDOW
        while len(self.recent) > 1 and self.recent[1][0] <= window_start:
            del self.recent[0]

    def add_error(self, doc_id: str, message: str) -> None:
        self.errors.append({"id": doc_id, "error": message})

    @property
    def error_count(self) -> int:
        return len(self.errors) + self.errors_not_listed

    @property
    def duration_seconds(self) -> float:
        end = self.finished_at or utc_now()
        return max(0.0, (end - self.started_at).total_seconds())

    @property
    def success_rate(self) -> float:
        """Share of processed items that ended without error; skipped items succeed."""
        if self.processed == 0:
            return 100.0
        return round(100.0 * (self.processed - self.error_count) / self.processed, 2)

    @property
    def items_per_second(self) -> float:
        duration = self.duration_seconds
        return round(self.processed / duration, 1) if duration > 0 else 0.0

    def to_dict(self) -> dict[str, Any]:
        return {
            "run_id": self.run_id,
            "tool": self.tool,
            "status": self.status,
            "environment": self.environment,
            "dry_run": self.dry_run,
            "project": self.project,
            "database": self.database,
            "collection": self.collection,
            "target_field": self.target_field,
            **self.recorded,
            "started_at": iso(self.started_at),
            "finished_at": iso(self.finished_at),
            "duration_seconds": round(self.duration_seconds, 3),
            "items_per_second": self.items_per_second,
            "batches": self.batches,
            "total_processed": self.processed,
            "total_updated": self.updated,
            "total_would_update": self.would_update,
            "total_skipped": self.skipped,
            "total_vanished": self.vanished,
            "total_left_subset": self.left_subset,
            "total_errors": self.error_count,
            "conflicts_retried": self.conflicts_retried,
            "success_rate": self.success_rate,
            "checkpoint": self.checkpoint,
            "parts": None if self.parts is None else [p.to_dict() for p in self.parts],
            "shard": None if self.shard is None else str(self.shard),
            "errors": self.errors,
            **self.tally.as_dict(),
            "throttled_seconds": round(self.throttled_seconds, 1),
            "throttle_spells": self.throttle_spells,
            "paused_seconds": round(self.paused_seconds, 1),
            "stopped_because": self.stopped_because,
            **({"estimate": self.estimate} if self.estimate is not None else {}),
        }

    def write_file(self, output_dir: Path, prefix: str) -> Path:
        """`<prefix>_YYYYMMDD_HHMMSS.json` in output_dir; never overwrites an older file."""
        output_dir.mkdir(parents=True, exist_ok=True)
        stamp = file_stamp(self.finished_at or utc_now())
        path = output_dir / f"{prefix}_{stamp}.json"
        suffix = 1
        while path.exists():
            suffix += 1
            path = output_dir / f"{prefix}_{stamp}_{suffix}.json"
        write_json(path, self.to_dict())
        return path


def write_json(path: Path, data: dict[str, Any]) -> None:
    """Written whole or not at all: a file that is read while being written is never torn."""
    partial = path.with_name(path.name + ".partial")
    partial.write_text(json.dumps(data, indent=2, ensure_ascii=False, default=str) + "\n")
    partial.replace(path)
