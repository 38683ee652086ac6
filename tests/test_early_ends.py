"""What a person sees when a run ends early: one clear line for the end, and the line of a
Ctrl-C at the YES prompt on a line of its own. The tools as real processes, on the
emulator."""

from __future__ import annotations

import signal
import subprocess
import sys

import pytest

from backfill.cli import CONFIRMATION_PROMPT
from backfill.errors import ExitCode
from backfill.logs import LOG_FILE_NAME
from tests.conftest import Database
from tests.helpers import REPO, SCRIPT, SLOW_RUN, Terminal, leases, ledger_entry, start, wait_for
from tools.sample_data import make_wardrobe


@pytest.mark.slow
def test_ctrl_c_during_a_run_is_one_line_and_the_resume_command_is_the_last(
        db: Database) -> None:
    """Before: `❌ Stopped: interrupted` in the summary, and `❌ stopped on request` after
    the resume command."""
    db.seed(make_wardrobe(400))
    process, log = start(db, db.env, "--batch-size", "20", "--max-writes-per-second", "100")
    wait_for(log, "Batch 1:")
    process.send_signal(signal.SIGINT)
    assert process.wait(timeout=60) == ExitCode.INTERRUPTED, log.read_text()
    assert process.stdout is not None
    seen = process.stdout.read().splitlines() + log.read_text().splitlines()
    assert [line for line in seen if "❌" in line] == [
        "❌ Stopped: interrupted: wardrobe backfill [WRITES]"]
    assert "Stopped because:    SIGINT" in seen
    assert log.read_text().splitlines()[-1].startswith("↩️  To continue from the checkpoint: ")


def test_ctrl_c_at_the_yes_prompt_says_so_on_a_line_of_its_own(db: Database) -> None:
    """Before: `... Type 'YES' to continue: ❌ Interrupted.` on the prompt's line."""
    db.seed(make_wardrobe(20))
    before = db.update_times()
    log = db.output_dir.parent / "stderr.txt"
    with log.open("w") as err:
        process = subprocess.Popen(
            [sys.executable, SCRIPT, "--environment", "production", "--output-dir",
             str(db.output_dir)], cwd=REPO, env=db.env, stdin=subprocess.PIPE,
            stdout=subprocess.PIPE, stderr=err, text=True)
        wait_for(log, "Type 'YES'")
        process.send_signal(signal.SIGINT)
        assert process.wait(timeout=30) == ExitCode.INTERRUPTED
    lines = log.read_text().splitlines()
    assert lines[-2:] == [CONFIRMATION_PROMPT, "❌ Interrupted."]
    assert db.update_times() == before


def test_sighup_ends_the_run_as_sigterm_does(db: Database) -> None:
    """Before: `kill -HUP` (the terminal closed, the ssh session dropped) killed the run
    with exit 129: the ledger still `running`, the lease held, no resume command."""
    db.seed(make_wardrobe(400))
    process, stderr = start(db, db.env, "--job-id", "bf-hup", *SLOW_RUN)
    wait_for(stderr, "Batch 2:")
    process.send_signal(signal.SIGHUP)
    assert process.wait(timeout=60) == ExitCode.INTERRUPTED, stderr.read_text()
    recorded = ledger_entry(db, "bf-hup")
    assert recorded["status"] == "interrupted" and recorded["stopped_because"] == "SIGHUP"
    assert leases(db) == []
    run_log = (db.output_dir / LOG_FILE_NAME).read_text()
    assert "to continue from the checkpoint: " in run_log and "--resume bf-hup" in run_log
    assert "--resume bf-hup" in stderr.read_text().splitlines()[-1]


def test_a_console_that_is_gone_does_not_fail_the_run(db: Database) -> None:
    """Before: `... 2>&1 | head -7` ended the run `failed`, exit 1, "stopped because:
    unexpected BrokenPipeError", without a resume command. The console is a view: the run
    goes on, and its log says so and keeps the rest."""
    db.seed(make_wardrobe(300))
    process = subprocess.Popen(
        [sys.executable, SCRIPT, "--yes", "--quiet", "--output-dir", str(db.output_dir),
         "--job-id", "bf-pipe", *SLOW_RUN], cwd=REPO, env=db.env, stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT)
    assert process.stdout is not None
    seen = [process.stdout.readline() for _ in range(7)]  # `| head -7`
    process.stdout.close()
    assert not any(b"Batch 15:" in line for line in seen), seen  # it had more to say
    assert process.wait(timeout=60) == ExitCode.OK
    recorded = ledger_entry(db, "bf-pipe")
    assert recorded["status"] == "completed", recorded.get("stopped_because")
    db.assert_normalized()
    run_log = (db.output_dir / LOG_FILE_NAME).read_text()
    assert ("can no longer be written to (Broken pipe): the run goes on; from here on, "
            "only this log says what it does") in run_log
    assert "Batch 15: " in run_log and "finished completed: 300 processed" in run_log


def test_ctrl_d_at_the_yes_prompt_says_so_on_a_line_of_its_own(db: Database) -> None:
    """Before: `... Type 'YES' to continue: ❌ Aborted: ...` on the prompt's line, when
    the terminal's standard input ended (Ctrl-D) instead of a typed line."""
    db.seed(make_wardrobe(20))
    before = db.update_times()
    terminal = Terminal([sys.executable, SCRIPT, "--environment", "production", "--quiet",
                         "--output-dir", str(db.output_dir)], db.env)
    terminal.read_until(b"Type 'YES'")
    terminal.type(b"\x04")  # Ctrl-D at the start of the line: end of input
    code, screen = terminal.finish(timeout=30)
    assert code == ExitCode.ITEM_ERRORS  # aborted at the prompt
    lines = screen.replace("\r", "").splitlines()
    assert "❌ Aborted: nothing was written (the answer was not YES)." in lines, lines
    assert db.update_times() == before
