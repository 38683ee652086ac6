"""A stop obeyed at once whatever the pace, SIGTERM ending like Ctrl-C, paces that cannot
work refused (and a recorded one never blocking a resume), and a status that tells what
the run will do: each run a real process on the emulator, the control typed beside it."""

from __future__ import annotations

import json
import re
import signal
import time

import pytest

from backfill.errors import ExitCode
from backfill.ledger import DEFAULT_LEDGER_COLLECTION
from run_backfill_production import main as backfill
from scripts.backfill_rollback import main as rollback
from tests.conftest import Database
from tests.helpers import (
    SLOW_RUN,
    control,
    eventually,
    leases,
    ledger_entry,
    start,
    wait_for,
)
from tools.sample_data import make_wardrobe

pytestmark = pytest.mark.paced  # the tools keep their own pace here

@pytest.mark.slow
def test_a_stop_after_the_pace_was_cut_is_obeyed_within_the_poll_and_status_says_so(
        db: Database) -> None:
    """Before: at 0.5 writes/s the batches in flight kept waiting for their rate slot
    (40 s each), the run went on long after the stop, and status said `ETA`."""
    db.seed(make_wardrobe(400))
    process, log = start(db, db.env, "--job-id", "bf-cut", *SLOW_RUN,
                         "--control-poll-seconds", "3")
    wait_for(log, "Batch 2:")
    assert control(db, "set", "--writes-per-second", "0.5", "bf-cut").exit_code == 0
    wait_for(log, "🎚  Pace set by ")
    assert control(db, "stop", "bf-cut").exit_code == 0
    stopped = time.monotonic()
    shown = control(db, "status", "bf-cut").stdout
    assert "running, stopping by " in shown, shown
    assert "; stopping: a stop by " in shown and " at this pace" not in shown, shown
    assert process.wait(timeout=60) == ExitCode.INTERRUPTED, log.read_text()
    # The control's poll (3 s) and one batch's commit, not the slots' 40 s.
    assert time.monotonic() - stopped < 10, log.read_text()
    recorded = ledger_entry(db, "bf-cut")
    assert recorded["status"] == "interrupted"
    assert recorded["stopped_because"].startswith("stopped by ")
    assert leases(db) == []


@pytest.mark.slow
def test_sigterm_while_a_stop_stands_still_ends_with_the_final_record(db: Database) -> None:
    """Before: a SIGTERM after a Ctrl-C was taken for a second Ctrl-C: exit at once, the
    ledger left `running`, the lease held, no summary, no resume command."""
    db.seed(make_wardrobe(400))
    process, log = start(db, db.env, "--job-id", "bf-term", *SLOW_RUN)
    wait_for(log, "Batch 2:")
    process.send_signal(signal.SIGINT)
    process.send_signal(signal.SIGTERM)
    assert process.wait(timeout=60) == ExitCode.INTERRUPTED, log.read_text()
    text = log.read_text()
    assert "SIGTERM: the run is stopping already (SIGINT)" in text, text
    assert "To continue from the checkpoint:" in text and "--resume bf-term" in text, text
    recorded = ledger_entry(db, "bf-term")
    assert recorded["status"] == "interrupted" and recorded["stopped_because"] == "SIGINT"
    assert leases(db) == []


@pytest.mark.parametrize("tool, args, message", [
    ("control", ["set", "--writes-per-second", "1e-300", "bf-none"],
     "Invalid value for '--writes-per-second': '1e-300' writes/s is too slow to work: "
     "0 (unpaced) or at least 0.1."),
    ("control", ["set", "--writes-per-second", "0.01", "bf-none"], "too slow to work"),
    ("backfill", ["--max-writes-per-second", "1e-300"],
     "Invalid value for '--max-writes-per-second': '1e-300' writes/s is too slow to work"),
    ("backfill", ["--max-retry-seconds", "1e300"],
     "Invalid value for '--max-retry-seconds': 1e+300 is not in the range 0<=x<=86400."),
])
def test_a_number_that_cannot_work_is_one_line_and_exit_2(
        db: Database, tool: str, args: list[str], message: str) -> None:
    """Before: `set --writes-per-second 1e-300` was taken, and the run died at its next
    batch with an OverflowError; a retry budget of 1e300 s overflowed on resume."""
    db.seed(make_wardrobe(5))
    done = control(db, *args) if tool == "control" else db.invoke(backfill, [*args, "--yes"])
    assert done.exit_code == 2, done.output
    lines = done.output.strip().splitlines()
    assert len(lines) == 1 and message in lines[0], done.output
    assert db.documents(DEFAULT_LEDGER_COLLECTION) == {}
    assert db.count_where_map() == 0


@pytest.mark.slow
def test_a_recorded_rate_that_cannot_work_never_blocks_a_resume(db: Database) -> None:
    """Before: the resume crashed (OverflowError, exit 1) every time, `set` on the
    interrupted run was refused and a resume with another rate was refused too."""
    db.seed(make_wardrobe(200))
    process, log = start(db, db.env, "--job-id", "bf-tiny", *SLOW_RUN)
    wait_for(log, "Batch 1:")
    process.send_signal(signal.SIGINT)
    assert process.wait(timeout=60) == ExitCode.INTERRUPTED, log.read_text()
    # What an older version recorded after `set --writes-per-second 1e-300`.
    db.client.collection(DEFAULT_LEDGER_COLLECTION).document("bf-tiny").update({
        "pace.writes_per_second": 1e-300, "settings.max_writes_per_second": 1e-300,
        "settings.initial_writes_per_second": 1e-300})
    refused = db.invoke(backfill, ["--resume", "bf-tiny", "--yes"])
    assert refused.exit_code == 2, refused.output
    assert refused.stderr.strip().splitlines()[-1] == (
        "❌ run bf-tiny has --max-writes-per-second 1e-300 recorded, which cannot work: set "
        "a pace that can (backfill_control.py set --writes-per-second N bf-tiny), then resume")
    other = db.invoke(backfill, ["--resume", "bf-tiny", "--yes", "--max-writes-per-second",
                                 "100"])
    assert other.exit_code == 2
    assert "to change its pace first: backfill_control.py set --writes-per-second 100.0 " \
           "bf-tiny)" in other.stderr, other.stderr
    done = control(db, "set", "--writes-per-second", "0", "bf-tiny")
    assert done.exit_code == 0, done.output
    assert done.stdout.startswith("Run bf-tiny (interrupted): pace set: write rate unpaced. "
                                  "Its resume carries it on.")
    resumed = db.invoke(backfill, ["--resume", "bf-tiny", "--yes"])
    assert resumed.exit_code == 0, resumed.output
    db.assert_normalized()
    assert ledger_entry(db, "bf-tiny")["status"] == "completed"


@pytest.mark.slow
def test_status_shares_and_times_what_the_run_will_do_at_the_pace_in_force(
        db: Database) -> None:
    """Before: `% of 600` for a run limited to 200, and right after `set` cut the pace to
    2 writes/s an ETA of seconds, at the last minute's 40 items/s."""
    db.seed(make_wardrobe(600))
    process, log = start(db, db.env, "--job-id", "bf-lim", "--limit", "200", *SLOW_RUN,
                         "--control-poll-seconds", "0.2")
    wait_for(log, "Batch 2:")
    shown = eventually(lambda: (s := control(db, "status", "bf-lim").stdout) and
                       "% of " in s and s, "a status with a share")
    assert re.search(r" \d+\.\d% of 200;", shown), shown
    assert control(db, "set", "--writes-per-second", "2", "bf-lim").exit_code == 0
    wait_for(log, "🎚  Pace set by ")
    shown = control(db, "status", "bf-lim").stdout
    found = re.search(r"(\d+\.\d)% of 200; [\d.]+ items/s over the last minute; ETA (\d+)m"
                      r"(\d+)s at this pace", shown)
    assert found is not None, shown
    left = 200 * (1 - float(found.group(1)) / 100)
    eta = 60 * int(found.group(2)) + int(found.group(3))
    assert left / 2 * 0.9 <= eta <= left / 2 * 1.1, shown
    assert control(db, "set", "--writes-per-second", "0", "bf-lim").exit_code == 0
    assert process.wait(timeout=60) == 0, log.read_text()
    assert ledger_entry(db, "bf-lim")["total"] == 200


@pytest.mark.slow
def test_status_without_a_run_id_counts_the_pause_going_on(db: Database) -> None:
    """Before: `paused 0.0s` 3 s into a pause, when no RUN_ID was given."""
    db.seed(make_wardrobe(400))
    process, log = start(db, db.env, "--job-id", "bf-held", *SLOW_RUN,
                         "--control-poll-seconds", "0.2")
    wait_for(log, "Batch 2:")
    assert control(db, "pause").exit_code == 0
    wait_for(log, "⏸  Paused (paused by ")
    time.sleep(3.0)
    shown = control(db, "status").stdout
    paused = re.search(r"paused (\d+\.\d)s$", shown, re.MULTILINE)
    assert paused is not None and float(paused.group(1)) >= 2.5, shown
    process.send_signal(signal.SIGINT)
    assert process.wait(timeout=60) == ExitCode.INTERRUPTED, log.read_text()


def test_status_with_no_run_running_shows_the_latest_run(db: Database) -> None:
    """Before: exit 2, "no running run of collection ..." after a run completed."""
    db.seed(make_wardrobe(30))
    assert db.invoke(backfill, ["--job-id", "bf-old", "--yes"]).exit_code == 0
    assert db.invoke(backfill, ["--job-id", "bf-new", "--yes"]).exit_code == 0
    shown = control(db, "status")
    assert shown.exit_code == 0, shown.output
    assert shown.stdout.startswith(f"Run bf-new: backfill of {db.collection}, completed, ")
    assert "30 processed, 0 written, 0 errors" in shown.stdout
    nothing = control(db, "status", "--collection", "other")
    assert nothing.exit_code == 2
    assert "no run of collection 'other' in the ledger" in nothing.output


def test_writes_a_stop_kept_from_being_sent_are_not_counted_nor_left_to_undo(
        db: Database) -> None:
    """Batches waiting for their rate slot when the stop comes were journaled but never
    sent: the journal records that they did not land. Before: the run's resume, after
    another run had written those items, counted them as its own updates (750 for 550
    written), and the exact undo listed each as an error."""
    db.seed(make_wardrobe(1000))
    process, log = start(db, db.env, "--job-id", "bf-a", "--batch-size", "50",
                         "--parallel-reads", "1", "--max-writes-per-second", "100",
                         "--initial-writes-per-second", "100", "--control-poll-seconds",
                         "0.2")
    wait_for(log, "Batch 3:")
    assert control(db, "stop", "bf-a").exit_code == 0
    assert process.wait(timeout=60) == ExitCode.INTERRUPTED, log.read_text()
    written_by_a = db.count_where_map()
    other = db.invoke(backfill, ["--job-id", "bf-b", "--max-writes-per-second", "0"])
    assert other.exit_code == 0, other.output
    resumed = db.invoke(backfill, ["--resume", "bf-a", "--json"])
    assert resumed.exit_code == 0, resumed.output
    assert json.loads(resumed.stdout)["total_updated"] == written_by_a
    # bf-a's exact undo would give back what bf-a wrote, and nothing of bf-b's.
    undo = db.invoke(rollback, ["--run-id", "bf-a", "--dry-run", "--json"])
    assert undo.exit_code == 0, undo.output
    stats = json.loads(undo.stdout)
    assert (stats["total_would_update"], stats["errors"]) == (written_by_a, [])


def eta_of(shown: str) -> tuple[float, float]:
    """The items left and the ETA in seconds, from a status's outlook line."""
    found = re.search(r"(\d+\.\d)% of ([\d,]+); [\d.,]+ items/s over the last minute; ETA "
                      r"(?:(\d+)m)?(\d+)s at this pace", shown)
    assert found is not None, shown
    total = int(found.group(2).replace(",", ""))
    left = total * (1 - float(found.group(1)) / 100)
    return left, 60 * int(found.group(3) or 0) + int(found.group(4))


def test_status_times_a_raised_pace_at_that_pace(db: Database) -> None:
    """Before: at 5 writes/s, right after `set --writes-per-second 100` the ETA was the
    last minute's 5 items/s (about 2 minutes for a run that ended seconds later)."""
    db.seed(make_wardrobe(600))
    process, log = start(db, db.env, "--job-id", "bf-up", "--batch-size", "10",
                         "--parallel-reads", "1", "--initial-writes-per-second", "5",
                         "--max-writes-per-second", "5", "--control-poll-seconds", "0.2")
    wait_for(log, "Batch 2:")
    assert control(db, "set", "--writes-per-second", "100", "bf-up").exit_code == 0
    wait_for(log, "🎚  Pace set by ")
    left, eta = eta_of(control(db, "status", "bf-up").stdout)
    assert eta <= left / 100 * 1.2 + 1, (left, eta)
    assert process.wait(timeout=60) == 0, log.read_text()


def test_status_times_a_run_going_on_after_a_pause_at_its_pace(db: Database) -> None:
    """Before: right after `continue` from a pause, the ETA was at the last minute's rate,
    the pause in it: twice as long as the run then took."""
    db.seed(make_wardrobe(600))
    process, log = start(db, db.env, "--job-id", "bf-on", "--batch-size", "10",
                         "--parallel-reads", "1", "--initial-writes-per-second", "20",
                         "--max-writes-per-second", "20", "--control-poll-seconds", "0.2")
    wait_for(log, "Batch 3:")
    assert control(db, "pause", "bf-on").exit_code == 0
    wait_for(log, "⏸  Paused (paused by ")
    time.sleep(6.0)
    assert control(db, "continue", "bf-on").exit_code == 0
    wait_for(log, "▶️  Going on")
    shown = eventually(lambda: (s := control(db, "status", "bf-on").stdout) and
                       " at this pace" in s and s, "a status with an ETA")
    left, eta = eta_of(shown)
    assert left / 20 * 0.8 - 1 <= eta <= left / 20 * 1.2 + 1, (left, eta, shown)
    assert process.wait(timeout=90) == 0, log.read_text()


def test_the_control_says_when_a_task_obeys_as_the_run_polls(db: Database) -> None:
    """Before: "Every task obeys within 10 seconds" (and "applies it within 10 seconds"),
    while a task reads its control every 5 s by default."""
    db.seed(make_wardrobe(400))
    process, log = start(db, db.env, "--job-id", "bf-say", *SLOW_RUN)
    wait_for(log, "Batch 1:")
    paused = control(db, "pause", "bf-say")
    assert paused.stdout == ("Run bf-say: pause requested: nothing new is read or written "
                             "until `continue`. Every task obeys within its control poll "
                             "(5 s by default).\n")
    paced = control(db, "set", "--writes-per-second", "100", "bf-say")
    assert paced.stdout == ("Run bf-say: pace set: write rate 100 writes/s (no ramp-up from "
                            "now on). Every task applies it within its control poll (5 s by "
                            "default).\n")
    assert control(db, "stop", "bf-say").exit_code == 0
    assert process.wait(timeout=60) == ExitCode.INTERRUPTED, log.read_text()
