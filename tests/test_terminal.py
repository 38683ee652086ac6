"""What a person sees in a real terminal: the tools run under a pseudo-terminal, so that
stderr is a TTY and the progress bar is drawn, as in the app's console."""

from __future__ import annotations

import re
import signal
import sys

import pytest

from tests.conftest import Database
from tests.helpers import SCRIPT, Terminal, printed_resume, start, wait_for
from tools.sample_data import make_wardrobe

pytestmark = pytest.mark.slow  # every test here takes a second or more

# tqdm's counter, as it draws it: "1234/2000 [" (with a total).
BAR_COUNT = re.compile(r"(\d+)/(\d+) \[")


def in_terminal(db: Database, argv: list[str]) -> tuple[int, str]:
    """Run `argv` on a pseudo-terminal; its exit code and everything it drew."""
    return Terminal(argv, db.env).finish()


def bar_counts(screen: str) -> list[tuple[int, int]]:
    return [(int(done), int(total)) for done, total in BAR_COUNT.findall(screen)]


@pytest.mark.paced  # its first run's own pace, which its resume carries on
def test_the_bar_counts_each_item_once_and_a_resume_starts_where_it_stood(
        db: Database) -> None:
    """Issue 31, case 9: the bar never passes its total, ends at it, and a resumed run's
    bar starts from what its earlier session did."""
    db.seed(make_wardrobe(1500))
    code, screen = in_terminal(db, [sys.executable, SCRIPT, "--yes", "--batch-size", "100",
                                    "--max-writes-per-second", "0", "--output-dir",
                                    str(db.output_dir)])
    assert code == 0, screen
    counts = bar_counts(screen)
    assert counts and all(done <= total == 1500 for done, total in counts), screen
    assert counts[-1] == (1500, 1500), screen[-2000:]
    assert "100%" in screen

    db.seed(make_wardrobe(1500, seed=2))
    process, log = start(db, db.env, "--job-id", "bf-tty", "--batch-size", "100",
                         "--parallel-reads", "1", "--max-writes-per-second", "300")
    wait_for(log, "Batch 5:")
    process.send_signal(signal.SIGINT)
    assert process.wait(timeout=60) == 130
    done_before = sum(int(n) for n in re.findall(r"Batch \d+: (\d+) processed",
                                                 log.read_text()))
    code, screen = in_terminal(db, [*printed_resume(log), "--yes"])
    assert code == 0, screen
    counts = bar_counts(screen)
    assert counts[0][0] == done_before and counts[0][1] == 3000, (done_before, counts[:3])
    assert all(done <= total for done, total in counts), counts
    assert counts[-1] == (3000, 3000), screen[-2000:]


def test_a_canary_s_bar_ends_at_its_limit(db: Database) -> None:
    """The bar's total is what the run will go through: --limit, if smaller than the
    count. (Before: a run of --limit 600 on 1,500 items ended at `40%| 600/1500`.)"""
    db.seed(make_wardrobe(1500))
    code, screen = in_terminal(db, [sys.executable, SCRIPT, "--yes", "--batch-size", "100",
                                    "--limit", "600", "--output-dir", str(db.output_dir)])
    assert code == 0, screen
    counts = bar_counts(screen)
    assert counts and all(total == 600 for _, total in counts), screen[-2000:]
    assert counts[-1] == (600, 600) and "100%" in screen
