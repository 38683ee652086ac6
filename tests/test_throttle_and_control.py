"""Beside the live app: the run holds back while the backend's health check fails, and
any console can pause, continue or stop every task of a run; on the real emulator, with
the tools as real processes and a health endpoint served here."""

from __future__ import annotations

import json
import signal
import time
from pathlib import Path

import pytest

from backfill.ledger import DEFAULT_LEDGER_COLLECTION
from run_backfill_production import main as backfill
from scripts.backfill_rollback import main as rollback
from tests.conftest import Database
from tests.helpers import (
    Backend,
    control,
    eventually,
    ledger,
    settled,
    start,
    via,
    wait_for,
)
from tools.sample_data import make_wardrobe
from tools.tcp_proxy import TcpProxy

# Stops, pauses, gates and the throttle, on runs slow enough to catch: the tools keep
# their own pace here.
pytestmark = [pytest.mark.paced, pytest.mark.slow]


def test_a_failing_backend_holds_the_run_back_until_it_is_healthy(
        db: Database, proxy: TcpProxy, backend: Backend) -> None:
    db.seed(make_wardrobe(1500))
    proxy.delay = 0.01
    process, log = start(db, via(db, proxy), "--batch-size", "25", "--json",
                         "--throttle-url", backend.url, "--throttle-interval", "0.2")
    wait_for(log, "Batch 3:")
    backend.mode = "failing"
    wait_for(log, "⏸  Throttled: http://127.0.0.1:")
    held = settled(db.count_where_map, "the batches in flight")
    time.sleep(2.0)
    assert db.count_where_map() == held < 1500  # nothing written while it is unhealthy
    backend.mode = "healthy"
    assert process.wait(timeout=120) == 0, log.read_text()
    stats = json.loads(process.stdout.read())  # type: ignore[union-attr]
    # One spell at least (a loaded machine may answer a healthy probe too slowly once).
    assert stats["throttle_spells"] >= 1 and stats["throttled_seconds"] >= 3.0
    assert "answered 503" in log.read_text() and "▶️  Going on" in log.read_text()
    assert "s3cret" not in log.read_text()
    assert "s3cret" not in (db.output_dir / "backfill_production.log").read_text()
    db.assert_normalized()


def test_a_slow_backend_past_the_limit_stops_the_run_and_it_resumes(
        db: Database, backend: Backend) -> None:
    db.seed(make_wardrobe(200))
    seeded = db.update_times()
    backend.mode = "slow"
    process, log = start(db, db.env, "--throttle-url", backend.url, "--throttle-interval",
                         "0.2", "--throttle-max-latency-ms", "100", "--max-throttle-seconds",
                         "2")
    assert process.wait(timeout=60) == 3, log.read_text()
    err = log.read_text()
    assert "did not answer within 100 ms (--throttle-max-latency-ms)" in err
    assert "throttled for more than 2s" in err
    assert db.update_times() == seeded  # unhealthy from the start: nothing was written
    [entry] = ledger(db)
    assert entry["status"] == "failed"
    assert "throttled for more than 2s" in entry["stopped_because"]
    backend.mode = "healthy"
    resumed = db.invoke(backfill, ["--resume", "--yes", "--throttle-url", backend.url])
    assert resumed.exit_code == 0, resumed.output
    db.assert_normalized()


def wait_in_both(logs: list[Path], text: str, timeout: float = 90) -> None:
    for log in logs:
        wait_for(log, text, timeout=timeout)


def test_pause_continue_stop_reach_every_shard_of_a_run(db: Database, proxy: TcpProxy) -> None:
    db.seed(make_wardrobe(4000))
    proxy.delay = 0.05
    env = via(db, proxy)
    tasks = [start(db, env, "--job-id", "job-1", "--shard", f"{i}/2", "--batch-size", "25",
                   "--control-poll-seconds", "0.2") for i in range(2)]
    logs = [log for _, log in tasks]
    wait_in_both(logs, "Batch 2:")
    done = control(db, "pause")
    assert done.exit_code == 0, done.output
    assert done.stdout.startswith("Run job-1: pause requested")
    wait_in_both(logs, "⏸  Paused (paused by ")
    held = settled(db.count_where_map, "the batches in flight")
    time.sleep(3.0)
    assert db.count_where_map() == held < 4000
    status = control(db, "status", "job-1")
    assert "shard 0/2: running, paused" in status.stdout
    assert "shard 1/2: running, paused" in status.stdout
    assert control(db, "continue").exit_code == 0
    wait_in_both(logs, "▶️  Going on")
    eventually(lambda: db.count_where_map() > held, "something written after `continue`")
    assert control(db, "stop", "job-1").exit_code == 0
    for process, log in tasks:
        assert process.wait(timeout=30) == 130, log.read_text()
        assert "⏹  Stop requested by " in log.read_text()
    ledger = db.documents(DEFAULT_LEDGER_COLLECTION)
    shards = db.client.collection(DEFAULT_LEDGER_COLLECTION).document("job-1").collection(
        "shards").stream()
    stopped = [s.to_dict() for s in shards]
    assert {s["status"] for s in stopped} == {"interrupted"}
    assert all(s["stopped_because"].startswith("stopped by ") and
               s["stopped_because"].endswith(" (backfill_control.py stop)") for s in stopped)
    assert ledger["job-1"]["status"] == "sharded"
    proxy.delay = 0.0
    resumed = [start(db, env, "--resume", "job-1", "--shard", f"{i}/2") for i in range(2)]
    for process, log in resumed:
        assert process.wait(timeout=120) == 0, log.read_text()
    db.assert_normalized()
    run = db.documents(DEFAULT_LEDGER_COLLECTION)["job-1"]
    assert run["status"] == "completed" and run["counts"]["processed"] == 4000
    listed = db.invoke(rollback, ["--list-runs"])
    assert listed.exit_code == 0, listed.output
    [line] = [line for line in listed.stdout.splitlines() if line.startswith("job-1 ")]
    assert line.split()[6] == "completed"  # run ID, tool, environment, field, who, started


def test_list_runs_shows_a_live_run_throttled_then_paused(db: Database,
                                                          backend: Backend) -> None:
    db.seed(make_wardrobe(50))
    backend.mode = "failing"
    process, log = start(db, db.env, "--job-id", "bf-live", "--throttle-url", backend.url,
                         "--throttle-interval", "0.1", "--control-poll-seconds", "0.1")

    def listed_status() -> str:
        listed = db.invoke(rollback, ["--list-runs"])
        assert listed.exit_code == 0, listed.output
        [line] = [line for line in listed.stdout.splitlines() if line.startswith("bf-live ")]
        return line.split()[6]  # run ID, tool, environment, field, who, started, status

    wait_for(log, "⏸  Throttled: ")
    eventually(lambda: listed_status() == "running/throttled", "listed as throttled")
    assert control(db, "pause", "bf-live").exit_code == 0
    wait_for(log, "⏸  Paused (paused by ")
    eventually(lambda: listed_status() == "running/paused", "listed as paused")
    process.send_signal(signal.SIGINT)
    assert process.wait(timeout=60) == 130, log.read_text()
    assert listed_status() == "interrupted"
