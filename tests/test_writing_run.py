"""A writing run's life through its one object, without click: open, interrupt, fail,
resume and complete, each end with its status and reason in the ledger, the stats file
and what the reporter was told. On the real emulator."""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest

from backfill.batch import BatchOutcome, Job
from backfill.errors import DatabaseError, RunInterrupted
from backfill.lease import LeaseLost
from backfill.ledger import DEFAULT_LEDGER_COLLECTION, Ledger
from backfill.lifecycle import Outcome
from backfill.options import RESUME_LATEST, RunOptions
from backfill.stats import RunStats
from backfill.status import GateState, RunStatus
from backfill.target import make_client, resolve_target
from backfill.target_field import TargetField
from backfill.throttle import ThrottledTooLong
from backfill.writing_run import WritingRun
from tests.conftest import Database
from tests.helpers import dead_address, ledger
from tools.tcp_proxy import TcpProxy
from wardrobe.jobs import BackfillJob
from wardrobe.tool import RULES


class Told:
    """A reporter that keeps what the run told it; `on_batch` lets a test act mid-run."""

    def __init__(self, on_batch: Callable[[BatchOutcome], None] = lambda outcome: None):
        self.lines: list[str] = []
        self.batches: list[int] = []
        self.gates: list[GateState] = []
        self.ended: tuple[RunStats, str | None] | None = None
        self.on_batch = on_batch

    def said(self, line: str) -> None:
        self.lines.append(line)

    @contextmanager
    def progress(self, total: int, done: int) -> Iterator[Callable[[int], None]]:
        yield lambda items: None

    def batch_done(self, outcome: BatchOutcome, dry_run: bool, held: str | None) -> str:
        self.batches.append(outcome.number)
        self.on_batch(outcome)
        return f"batch {outcome.number}"

    def gate_changed(self, state: GateState, why: str | None) -> str:
        self.gates.append(state)
        return f"gate {state}"

    def finished(self, stats: RunStats, extra: dict[str, str],
                 resume_command: str | None) -> None:
        self.ended = (stats, resume_command)


def make_job(options: RunOptions, field: TargetField | None, client: Any) -> Job:
    assert field is not None
    return BackfillJob(field, force=options.force)


def writing_run(db: Database, told: Told, host: str | None = None,
                **overrides: Any) -> WritingRun:
    settings: dict[str, Any] = {
        "environment": "development", "project": None, "database": "(default)",
        "collection": db.collection, "batch_size": 10, "output_dir": db.output_dir,
        "quiet": True, "as_json": False, "max_retry_seconds": 5.0, "parallel_reads": 1,
        "parallel_batches": 1, "control_poll_seconds": 0.05, "heartbeat_seconds": 0.05,
        **overrides}
    options = RunOptions(**settings, explicit=frozenset(overrides), field_rules=RULES)
    env = {"FIRESTORE_EMULATOR_HOST": host or db.emulator.host,
           "GOOGLE_CLOUD_PROJECT": db.project}
    target = resolve_target(environment=options.environment, project=None,
                            database=options.database, collection=options.collection, env=env)
    run = WritingRun("backfill", make_job, options, None, target, make_client(target), told,
                     lambda options, run_id, shard: f"resume {run_id}", "backfill_stats")
    assert run.open()
    return run


def stats_file(db: Database) -> dict[str, Any]:
    [path] = sorted(Path(db.output_dir).glob("backfill_stats_*.json"))[-1:]
    return dict(json.loads(path.read_text()))


def test_a_run_opens_runs_and_completes(db: Database) -> None:
    db.seed({f"i{n:02d}": {"style": ["Goth"]} for n in range(30)})
    told = Told()
    run = writing_run(db, told, job_id="bf-life")
    assert run.execute() == Outcome(RunStatus.COMPLETED, None, 0)
    [entry] = ledger(db)
    assert (entry["status"], entry["stopped_because"]) == (RunStatus.COMPLETED, None)
    assert told.batches == [1, 2, 3] and told.ended is not None
    stats, resume = told.ended
    assert (stats.status, stats.updated, resume) == (RunStatus.COMPLETED, 30, None)
    assert "lease-wardrobe" not in db.documents(DEFAULT_LEDGER_COLLECTION)


def test_a_stop_interrupts_with_its_reason_and_a_resume_completes(db: Database) -> None:
    db.seed({f"i{n:02d}": {"style": ["Goth"]} for n in range(50)})
    run: WritingRun | None = None

    def stop_after_two(outcome: BatchOutcome) -> None:
        if outcome.number == 2 and run is not None:
            run.stop.request("SIGTERM")

    told = Told(stop_after_two)
    run = writing_run(db, told, job_id="bf-stop")
    with pytest.raises(RunInterrupted):
        run.execute()
    [entry] = ledger(db)
    assert (entry["status"], entry["stopped_because"]) == (RunStatus.INTERRUPTED, "SIGTERM")
    assert stats_file(db)["stopped_because"] == "SIGTERM"
    assert told.ended is not None and told.ended[1] == "resume bf-stop"
    assert 20 <= entry["counts"]["processed"] < 50
    # The resume completes the run; the reason of its earlier end stays in resumed_at.
    again = Told()
    assert writing_run(db, again, resume=RESUME_LATEST).execute() == Outcome(
        RunStatus.COMPLETED, None, 0)
    [entry] = ledger(db)
    assert (entry["status"], entry["stopped_because"]) == (RunStatus.COMPLETED, None)
    assert [r["after"] for r in entry["resumed_at"]] == ["SIGTERM"]
    assert entry["counts"]["processed"] == 50
    db.assert_normalized()


def test_the_controls_stop_is_its_reason(db: Database) -> None:
    db.seed({f"i{n:02d}": {"style": ["Goth"]} for n in range(200)})

    def stop_from_another_console(outcome: BatchOutcome) -> None:
        if outcome.number == 1:
            Ledger(db.client, DEFAULT_LEDGER_COLLECTION, run.options.policy).set_control(
                "bf-ctl", "stop")

    told = Told(stop_from_another_console)
    run = writing_run(db, told, job_id="bf-ctl", max_writes_per_second=50.0,
                      initial_writes_per_second=50.0)  # slow enough for the poll
    with pytest.raises(RunInterrupted):
        run.execute()
    [entry] = ledger(db)
    assert entry["status"] == RunStatus.INTERRUPTED
    assert entry["stopped_because"].startswith("stopped by ")
    assert entry["stopped_because"].endswith(" (backfill_control.py stop)")


def test_a_lease_taken_over_fails_the_run_with_its_reason(db: Database) -> None:
    db.seed({f"i{n:02d}": {"style": ["Goth"]} for n in range(200)})

    def taken_over(outcome: BatchOutcome) -> None:
        if outcome.number == 1:
            db.client.collection(DEFAULT_LEDGER_COLLECTION).document(
                "lease-wardrobe").update({"run_id": "bf-other"})

    run = writing_run(db, Told(taken_over), job_id="bf-lost", max_writes_per_second=50.0,
                      initial_writes_per_second=50.0)
    with pytest.raises(LeaseLost):
        run.execute()
    [entry] = [e for e in ledger(db) if e["run_id"] == "bf-lost"]
    assert entry["status"] == RunStatus.FAILED
    assert entry["stopped_because"] == ("the lease of collection 'wardrobe' is now held by "
                                        "run bf-other: this run stopped writing")


@pytest.mark.slow
def test_a_throttle_timeout_fails_the_run_with_its_reason(db: Database) -> None:
    db.seed({f"i{n:02d}": {"style": ["Goth"]} for n in range(20)})
    address = dead_address()
    run = writing_run(db, Told(), job_id="bf-thr", max_throttle_seconds=1.0,
                      throttle_url=(f"http://{address}/health",), throttle_interval=0.1)
    with pytest.raises(ThrottledTooLong):
        run.execute()
    [entry] = ledger(db)
    assert entry["status"] == RunStatus.FAILED
    assert entry["stopped_because"] == (
        f"throttled for more than 1s (--max-throttle-seconds): http://{address}/health did "
        "not answer (ConnectionRefusedError)")
    assert all("normalized" not in item for item in db.documents().values())


@pytest.mark.slow
def test_the_database_going_away_fails_the_run_and_its_end_is_short(
        db: Database, proxy: TcpProxy, monkeypatch: pytest.MonkeyPatch) -> None:
    db.seed({f"i{n:03d}": {"style": ["Goth"]} for n in range(300)})
    proxy.delay = 0.01
    monkeypatch.setenv("FIRESTORE_EMULATOR_HOST", proxy.host)  # the client library reads it

    def go_down(outcome: BatchOutcome) -> None:
        if outcome.number == 3:
            proxy.go_down()

    told = Told(go_down)
    run = writing_run(db, told, host=proxy.host, job_id="bf-down", max_retry_seconds=2.0)
    started = time.monotonic()
    with pytest.raises(DatabaseError) as failed:
        run.execute()
    # The failed batch's budget, then one short try for each closing step: not a fresh
    # 2 s budget for each, however many there are.
    assert time.monotonic() - started < 2 + 15
    assert "failed after retrying for 2s" in str(failed.value)
    assert told.ended is not None
    stats, resume = told.ended
    assert stats.status == RunStatus.FAILED and resume == "resume bf-down"
    assert stats.stopped_because == str(failed.value)
    assert stats_file(db)["stopped_because"] == str(failed.value)
