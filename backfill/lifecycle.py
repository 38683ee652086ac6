"""A run's life as data: its statuses, the moves between them, and how it ended.

Modelled on maintenance_tasks' `Run`: the statuses are declared once (backfill.status),
the moves allowed between them are a table, and each move is a method of its own that
checks the table. Nothing else sets a run's status.

    (new)                 -> running      begin: a new run, or a shard of a sharded run
    running, interrupted, -> running      resume: `--resume`, the same `--job-id`, an
    failed                                engine's retry (a run killed -9 is `running`)
    running               -> completed    complete: every item was seen (errors or not)
    running               -> interrupted  interrupt(reason): a signal, the control's stop
    running               -> failed       fail(reason): the database, the lease, the
                                          health gate, a defect
    (new)                 -> sharded      the entry of a sharded run, when its first shard
                                          joins
    sharded               -> completed    its last shard completed

Pure: the engine (backfill.writing_run) records what a move says in the ledger; the CLI
turns the `Outcome` into an exit code.
"""

from __future__ import annotations

from dataclasses import dataclass

from backfill.status import RunStatus

# Where a run may go from each status (None: a run not recorded yet).
MOVES: dict[RunStatus | None, frozenset[RunStatus]] = {
    None: frozenset({RunStatus.RUNNING, RunStatus.SHARDED}),
    RunStatus.RUNNING: frozenset({RunStatus.RUNNING, RunStatus.COMPLETED,
                                  RunStatus.INTERRUPTED, RunStatus.FAILED}),
    RunStatus.INTERRUPTED: frozenset({RunStatus.RUNNING}),
    RunStatus.FAILED: frozenset({RunStatus.RUNNING}),
    RunStatus.SHARDED: frozenset({RunStatus.COMPLETED}),
    RunStatus.COMPLETED: frozenset(),
}


class InvalidMove(Exception):
    """A move the table does not allow: a defect of the engine, never an operator's."""


@dataclass(frozen=True)
class Outcome:
    """How a run that returned (rather than raised) ended: completed, with or without
    item errors; or not begun at all (an empty collection, a run already completed, a
    stop that stands), which is clean too."""

    status: RunStatus | None  # None: the run did not begin (nothing was recorded)
    reason: str | None = None
    item_errors: int = 0

    @property
    def clean(self) -> bool:
        return self.item_errors == 0


def not_begun(reason: str) -> Outcome:
    return Outcome(None, reason)


class RunLife:
    """The status of one run (or of one shard's part of a run) and why it ended."""

    def __init__(self, status: str | None = None) -> None:
        """`status`: as the ledger records it (None: a run not recorded yet)."""
        self.status = None if status is None else RunStatus(status)
        self.reason: str | None = None

    def _move(self, to: RunStatus, reason: str | None = None) -> RunStatus:
        if to not in MOVES[self.status]:
            raise InvalidMove(f"a run cannot go from {self.status or 'nothing'} to {to}")
        self.status, self.reason = to, reason
        return to

    @property
    def ended(self) -> bool:
        return self.status in (RunStatus.COMPLETED, RunStatus.INTERRUPTED, RunStatus.FAILED)

    def begin(self) -> RunStatus:
        """A new run (nothing recorded before), or a shard's part of one."""
        if self.status is not None:
            raise InvalidMove(f"a {self.status} run is resumed, not begun")
        return self._move(RunStatus.RUNNING)

    def resume(self) -> RunStatus:
        """An unfinished run carried on from its checkpoint."""
        if self.status is None:
            raise InvalidMove("a run not recorded yet is begun, not resumed")
        return self._move(RunStatus.RUNNING)

    def complete(self) -> RunStatus:
        """Every item was seen (a sharded run's entry completes with its shards)."""
        if self.status == RunStatus.SHARDED:
            raise InvalidMove("a sharded run completes with its last shard")
        return self._move(RunStatus.COMPLETED)

    def interrupt(self, reason: str) -> RunStatus:
        return self._move(RunStatus.INTERRUPTED, reason)

    def fail(self, reason: str) -> RunStatus:
        return self._move(RunStatus.FAILED, reason)

    def shard_joined(self) -> RunStatus:
        """A sharded run's own entry, made by its first shard."""
        return self._move(RunStatus.SHARDED)

    def shards_completed(self) -> RunStatus:
        """A sharded run, once its last shard completed."""
        if self.status != RunStatus.SHARDED:
            raise InvalidMove(f"only a sharded run completes with its shards, not a "
                              f"{self.status or 'new'} one")
        return self._move(RunStatus.COMPLETED)

    def outcome(self, item_errors: int) -> Outcome:
        if not self.ended:
            raise InvalidMove(f"a {self.status or 'new'} run has not ended")
        return Outcome(self.status, self.reason, item_errors)
