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
from tests.conftest import Database
from tests.helpers import REPO, SCRIPT, start, wait_for
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
