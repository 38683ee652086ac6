"""A run's life as plain objects (no emulator, no click): every move the table allows,
every move it refuses, and what each end gives."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from backfill.lifecycle import MOVES, InvalidMove, Outcome, RunLife
from backfill.status import RunStatus

# Each move by its method, and where it goes.
MOVE_METHODS: dict[str, tuple[Callable[[RunLife], object], RunStatus]] = {
    "begin": (RunLife.begin, RunStatus.RUNNING),
    "resume": (RunLife.resume, RunStatus.RUNNING),
    "complete": (RunLife.complete, RunStatus.COMPLETED),
    "interrupt": (lambda life: life.interrupt("SIGINT"), RunStatus.INTERRUPTED),
    "fail": (lambda life: life.fail("the database"), RunStatus.FAILED),
    "shard_joined": (RunLife.shard_joined, RunStatus.SHARDED),
    "shards_completed": (RunLife.shards_completed, RunStatus.COMPLETED),
}
# What each method allows, beyond the table: a begin is only of a run not recorded yet,
# a resume only of one recorded, and only a sharded run completes with its shards.
ALLOWED = {
    (None, "begin"), (None, "shard_joined"),
    (RunStatus.RUNNING, "resume"), (RunStatus.RUNNING, "complete"),
    (RunStatus.RUNNING, "interrupt"), (RunStatus.RUNNING, "fail"),
    (RunStatus.INTERRUPTED, "resume"), (RunStatus.FAILED, "resume"),
    (RunStatus.SHARDED, "shards_completed"),
}
STATUSES = [None, *RunStatus]


@pytest.mark.parametrize("start", STATUSES)
@pytest.mark.parametrize("move", sorted(MOVE_METHODS))
def test_every_move_is_allowed_or_refused_as_the_table_says(
        start: RunStatus | None, move: str) -> None:
    method, goes_to = MOVE_METHODS[move]
    life = RunLife(start)
    if (start, move) in ALLOWED:
        assert goes_to in MOVES[start]
        method(life)
        assert life.status == goes_to
    else:
        with pytest.raises(InvalidMove):
            method(life)
        assert life.status == start  # a refused move changes nothing


def test_a_completed_run_goes_nowhere() -> None:
    assert MOVES[RunStatus.COMPLETED] == frozenset()


def test_each_end_gives_its_status_reason_and_errors() -> None:
    done = RunLife()
    done.begin()
    done.complete()
    assert done.outcome(item_errors=3) == Outcome(RunStatus.COMPLETED, None, 3)
    assert not done.outcome(3).clean and done.outcome(0).clean
    stopped = RunLife("interrupted")  # as the ledger records it
    stopped.resume()
    stopped.interrupt("stopped by ops@host (backfill_control.py stop)")
    assert stopped.outcome(0) == Outcome(RunStatus.INTERRUPTED,
                                         "stopped by ops@host (backfill_control.py stop)")
    failed = RunLife("running")  # killed -9: still running in the ledger
    failed.resume()
    failed.fail("the lease was taken over")
    assert (failed.status, failed.reason) == (RunStatus.FAILED, "the lease was taken over")


def test_a_run_that_has_not_ended_has_no_outcome() -> None:
    life = RunLife()
    life.begin()
    with pytest.raises(InvalidMove, match="has not ended"):
        life.outcome(0)
