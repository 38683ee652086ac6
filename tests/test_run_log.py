"""The run log as an operator watches it: `tail -f backfill_production.log` from a second
console shows each batch line as the console does, and a run killed with -9 leaves its
start line and every batch line it said. The backfill as a real process, on the
emulator."""

from __future__ import annotations

import re
import signal

from backfill.logs import LOG_FILE_NAME
from tests.conftest import Database
from tests.helpers import eventually, start, wait_for
from tools.sample_data import make_wardrobe

SLOW = ("--batch-size", "20", "--parallel-reads", "1", "--initial-writes-per-second", "40",
        "--max-writes-per-second", "40")


def batch_lines(text: str) -> list[str]:
    return re.findall(r"Batch \d+: [^\n]*", text)


def test_the_log_has_each_batch_line_while_the_run_goes_on_and_after_kill_9(
        db: Database) -> None:
    """Before: the log was buffered 200 lines at a time: with 3 batch lines on the console
    the log file was empty (not even the start line), and kill -9 lost all of it."""
    db.seed(make_wardrobe(600))  # 30 batches at 40 writes/s: about 15 s
    process, stderr = start(db, db.env, "--job-id", "bf-log", *SLOW)
    run_log = db.output_dir / LOG_FILE_NAME
    wait_for(stderr, "Batch 3:")

    def in_log() -> bool:
        said = batch_lines(stderr.read_text())
        logged = run_log.read_text() if run_log.exists() else ""
        return all(line in logged for line in said)

    # Within a second of the console, while the run still goes on.
    eventually(in_log, lambda: f"the batch lines said are not in the log:\n"
               f"{run_log.read_text() if run_log.exists() else '(no log)'}", timeout=1.0)
    assert process.poll() is None, "the run ended before its log was looked at"
    wait_for(stderr, "Batch 5:")
    process.kill()
    assert process.wait(timeout=30) == -signal.SIGKILL
    logged = run_log.read_text()
    assert " INFO backfill bf-log: start [DEVELOPMENT] " in logged, logged
    said = batch_lines(stderr.read_text())
    assert len(said) >= 5
    assert [line for line in said if line not in logged] == [], logged
