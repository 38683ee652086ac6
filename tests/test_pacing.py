"""How fast a run writes: the pacing options end to end (seen in the documents' own update
times), each shard at its share, the ramp frozen while the gate is closed, pacing off;
and --parallel-batches, the batches a run has in flight at once. On the real emulator."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable
from typing import Any, ClassVar

import pytest

from backfill import writing_run
from backfill.ratelimit import WriteRateLimiter
from backfill.runner import Runner
from backfill.throttle import Gate
from run_backfill_production import main as backfill
from tests.conftest import Database

pytestmark = pytest.mark.paced  # the tools keep their own pace here


class RecordedLimiter(WriteRateLimiter):
    """The run's own pacer, unchanged, remembered with what it waited."""

    made: ClassVar[list[RecordedLimiter]] = []

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.waited = 0.0
        RecordedLimiter.made.append(self)

    def acquire(self, operations: int) -> float:
        wait = super().acquire(operations)
        self.waited += wait
        return wait


@pytest.fixture
def limiters(monkeypatch: pytest.MonkeyPatch) -> list[RecordedLimiter]:
    RecordedLimiter.made = []
    monkeypatch.setattr(writing_run, "WriteRateLimiter", RecordedLimiter)
    return RecordedLimiter.made


def write_span(db: Database) -> float:
    """Seconds from the first item written to the last, by the database's own clock."""
    written = {doc_id for doc_id, item in db.documents().items() if "normalized" in item}
    times = [t for doc_id, t in db.update_times().items() if doc_id in written]
    return (max(times) - min(times)).total_seconds()


@pytest.mark.parametrize(("args", "items", "rate"), [
    (["--max-writes-per-second", "100", "--initial-writes-per-second", "100"], 150, 100),
    (["--initial-writes-per-second", "50"], 100, 50),
], ids=["ceiling", "initial rate"])
@pytest.mark.slow
def test_writes_are_paced_at_the_rate_asked(db: Database, limiters: list[RecordedLimiter],
                                            args: list[str], items: int, rate: float) -> None:
    db.seed({f"i{n:03d}": {"style": ["Goth"]} for n in range(items)})
    result = db.invoke(backfill, [*args, "--batch-size", "25", "--parallel-reads", "1"])
    assert result.exit_code == 0, result.output
    [limiter] = limiters
    assert limiter.rate() == rate
    # The first batch goes at once; each further one waits its share of a second (one
    # batch of slack: the first commit may land later than it was let through).
    assert write_span(db) >= (items - 2 * 25) / rate
    assert limiter.waited > 0


@pytest.mark.slow
def test_each_shard_paces_itself_at_its_share(db: Database,
                                              limiters: list[RecordedLimiter]) -> None:
    db.seed({f"i{n:03d}": {"style": ["Goth"]} for n in range(100)})
    result = db.invoke(backfill, ["--job-id", "paced", "--shard", "0/2", "--json",
                                  "--max-writes-per-second", "100",
                                  "--initial-writes-per-second", "100", "--batch-size", "10",
                                  "--parallel-reads", "1"])
    assert result.exit_code == 0, result.output
    written = json.loads(result.stdout)["total_updated"]
    [limiter] = limiters
    assert (limiter.initial, limiter.ceiling) == (50, 50)  # two shards: half each
    assert written > 20 and write_span(db) >= (written - 2 * 10) / 50


def test_a_ceiling_of_zero_turns_pacing_off(db: Database,
                                            limiters: list[RecordedLimiter]) -> None:
    db.seed({f"i{n:03d}": {"style": ["Goth"]} for n in range(100)})
    # At 1 write a second this would take minutes: with pacing off it waits for nothing.
    result = db.invoke(backfill, ["--max-writes-per-second", "0",
                                  "--initial-writes-per-second", "1", "--batch-size", "10"])
    assert result.exit_code == 0, result.output
    [limiter] = limiters
    assert not limiter.enabled and limiter.waited == 0.0
    assert sum("normalized" in d for d in db.documents().values()) == 100


def test_the_ramp_does_not_go_on_while_the_gate_is_closed() -> None:
    now = [0.0]
    limiter = WriteRateLimiter(initial=500, ceiling=10_000, clock=lambda: now[0])
    gate = Gate(limiter=limiter, clock=lambda: now[0])
    now[0] = 100.0
    gate.throttle("the backend answered 503")
    now[0] = 700.0  # ten minutes held: the ramp would have raised the rate twice
    gate.throttle(None)
    assert limiter.rate(now[0]) == 500
    now[0] = 700.0 + 200.0  # 300 s of writing in all: the first step of the ramp
    assert limiter.rate(now[0]) == 750
    paused = WriteRateLimiter(initial=500, ceiling=10_000, clock=lambda: now[0])
    gate = Gate(limiter=paused, clock=lambda: now[0])
    gate.pause("paused by ops@host")
    now[0] += 600
    gate.pause(None)
    assert paused.rate(now[0]) == 500


class InFlight:
    """Wraps the runner's commit of a batch: counts the commits running at once. The first
    `together` of them wait for each other: fewer batches in flight break the barrier."""

    def __init__(self, together: int) -> None:
        self.together, self.started, self.running, self.most = together, 0, 0, 0
        self.lock = threading.Lock()
        self.barrier = threading.Barrier(together, timeout=30)

    def wrap(self, commit: Callable[..., Any]) -> Callable[..., Any]:
        def counted(runner: Runner, to_write: Any) -> Any:
            with self.lock:
                self.started += 1
                self.running += 1
                self.most = max(self.most, self.running)
                first = self.started <= self.together
            try:
                if first and self.together > 1:
                    self.barrier.wait()
                else:
                    time.sleep(0.05)  # time for a second batch to overlap, if it could
                return commit(runner, to_write)
            finally:
                with self.lock:
                    self.running -= 1

        return counted


@pytest.mark.parametrize("batches", [1, 3])
def test_parallel_batches_is_the_number_of_batches_in_flight(
        db: Database, monkeypatch: pytest.MonkeyPatch, batches: int) -> None:
    db.seed({f"i{n:03d}": {"style": ["Goth"]} for n in range(80)})
    flight = InFlight(batches)
    monkeypatch.setattr(Runner, "_commit", flight.wrap(Runner._commit))
    result = db.invoke(backfill, ["--parallel-batches", str(batches), "--batch-size", "10",
                                  "--parallel-reads", "1", "--json"])
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["total_updated"] == 80
    assert flight.started == 8 and flight.most == batches
