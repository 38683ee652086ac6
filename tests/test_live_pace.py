"""Changing a live run's pace from another console, and the status an operator plans with:
each run is a real process on the emulator; `set` and `status` are typed beside it."""

from __future__ import annotations

import re
import time

import pytest

from backfill.ledger import DEFAULT_LEDGER_COLLECTION
from backfill.logs import LOG_FILE_NAME
from tests.conftest import Database
from tests.helpers import control, eventually, start, wait_for
from tools.sample_data import make_wardrobe

pytestmark = pytest.mark.paced  # the tools keep their own pace here

POLL = ("--control-poll-seconds", "0.2")


def entry(db: Database, run_id: str) -> dict:
    return db.documents(DEFAULT_LEDGER_COLLECTION)[run_id]


@pytest.mark.slow
def test_a_slow_run_sped_up_finishes_within_seconds_and_status_shows_its_eta(
        db: Database) -> None:
    db.seed(make_wardrobe(1000))
    process, log = start(db, db.env, "--job-id", "bf-slow", "--max-writes-per-second", "50",
                         "--batch-size", "50", *POLL)
    wait_for(log, "Batch 2:")
    # 50 writes/s: the 900-odd items left would take 18 s more.
    # A quarter done: the last minute is mostly writing, not the run's start.
    status = eventually(lambda: (s := control(db, "status", "bf-slow")).exit_code == 0 and
                        re.search(r" (2[5-9]|[3-9]\d)\.\d% of 1,000", s.stdout) and s,
                        "a status a quarter done")
    assert "pace: 50 writes/s, 4 batches in flight per task" in status.stdout
    [outlook] = re.findall(r"(\d+\.\d)% of 1,000; ([\d.]+) items/s over the last minute; "
                           r"ETA (\w+) at this pace", status.stdout)
    assert 25 <= float(outlook[1]) <= 75, status.stdout
    done = control(db, "set", "--writes-per-second", "0", "bf-slow")
    changed = time.monotonic()
    assert done.exit_code == 0, done.output
    assert done.stdout.startswith("Run bf-slow: pace set: write rate unpaced.")
    assert process.wait(timeout=60) == 0, log.read_text()
    assert time.monotonic() - changed < 6, log.read_text()
    assert "🎚  Pace set by " in log.read_text() and ": unpaced" in log.read_text()
    run_log = (db.output_dir / LOG_FILE_NAME).read_text()
    assert "🎚  Pace set by " in run_log
    db.assert_normalized()
    recorded = entry(db, "bf-slow")
    [change] = recorded["pace_changes"]
    assert change["writes_per_second"] == 0 and "@" in change["by"] and change["at"]
    assert recorded["settings"]["max_writes_per_second"] == 0
    assert recorded["total"] == 1000 and recorded["counts"]["processed"] == 1000


@pytest.mark.slow
def test_a_fast_run_slowed_down_writes_at_the_new_rate_and_a_resume_keeps_it(
        db: Database) -> None:
    db.seed(make_wardrobe(3000))
    process, log = start(db, db.env, "--job-id", "bf-fast", "--batch-size", "20",
                         "--max-writes-per-second", "400", *POLL)
    wait_for(log, "Batch 3:")
    assert control(db, "set", "--writes-per-second", "60", "--parallel-batches", "2",
                   "bf-fast").exit_code == 0
    wait_for(log, "🎚  Pace set by ")
    assert "60 writes/s, 2 batches in flight" in log.read_text()
    time.sleep(1.0)  # the batches already sent land
    before, at = db.count_where_map(), time.monotonic()
    time.sleep(4.0)
    rate = (db.count_where_map() - before) / (time.monotonic() - at)
    assert 30 <= rate <= 90, rate
    status = control(db, "status", "bf-fast")
    assert "pace: 60 writes/s, 2 batches in flight per task (last set by " in status.stdout
    process.send_signal(2)
    assert process.wait(timeout=60) == 130, log.read_text()
    resumed, resumed_log = start(db, db.env, "--resume", "bf-fast", *POLL)
    wait_for(resumed_log, "Batch ")
    # The resume goes on at the pace last set: 60 writes/s, not the 400 it started with.
    before, at = db.count_where_map(), time.monotonic()
    time.sleep(3.0)
    assert (db.count_where_map() - before) / (time.monotonic() - at) <= 90
    assert control(db, "set", "--writes-per-second", "0").exit_code == 0
    assert resumed.wait(timeout=60) == 0, resumed_log.read_text()
    db.assert_normalized()
    assert [c.get("writes_per_second") for c in entry(db, "bf-fast")["pace_changes"]] == [60, 0]


@pytest.mark.slow
def test_a_sharded_run_s_tasks_each_take_their_share_of_a_new_rate(db: Database) -> None:
    db.seed(make_wardrobe(2000))
    tasks = [start(db, db.env, "--job-id", "job-p", "--shard", f"{i}/2", "--batch-size", "20",
                   "--max-writes-per-second", "40", *POLL) for i in range(2)]
    for _, log in tasks:
        wait_for(log, "Batch 1:")
    status = control(db, "status", "job-p")
    assert "whole run: " in status.stdout and "% of " in status.stdout, status.stdout
    done = control(db, "set", "--writes-per-second", "600", "job-p")
    assert done.exit_code == 0, done.output
    assert "shared by its 2 shards" in done.stdout
    for process, log in tasks:
        assert process.wait(timeout=60) == 0, log.read_text()
        assert "600 writes/s (this task's share: 300 writes/s)" in log.read_text()
    db.assert_normalized()


@pytest.mark.parametrize("args, message", [
    (["set", "--writes-per-second", "-1"], "-1.0 is not in the range x>=0"),
    (["set", "--writes-per-second", "nan"], "'nan' is not a finite number"),
    (["set", "--writes-per-second", "inf"], "'inf' is not a finite number"),
    (["set", "--parallel-batches", "0"], "0 is not in the range 1<=x<=16"),
    (["set", "--parallel-batches", "17"], "17 is not in the range 1<=x<=16"),
    (["set"], "set needs --writes-per-second N or --parallel-batches N"),
    (["pause", "--parallel-batches", "2"], "--writes-per-second and --parallel-batches go "
                                          "with set"),
])
def test_bad_pace_values_are_refused_and_nothing_is_written(
        db: Database, args: list[str], message: str) -> None:
    done = control(db, *args, "bf-none")
    assert done.exit_code == 2 and message in done.output, done.output
    assert db.documents(DEFAULT_LEDGER_COLLECTION) == {}


@pytest.mark.slow
def test_a_run_that_is_not_running_gets_no_pace(db: Database) -> None:
    db.seed(make_wardrobe(30))
    process, log = start(db, db.env, "--job-id", "bf-done")
    assert process.wait(timeout=60) == 0, log.read_text()
    before = entry(db, "bf-done")
    done = control(db, "set", "--writes-per-second", "100", "bf-done")
    assert done.exit_code == 2
    assert "run bf-done is completed, not running: a pace is set on a running run" in \
        done.output
    assert entry(db, "bf-done") == before
