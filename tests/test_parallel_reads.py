"""Reads in parallel: the range in parts, each read by a cursor of its own, each with its
own checkpoint; on the real emulator, with the backfill as a real process."""

from __future__ import annotations

import itertools
import json
import threading
from collections.abc import Iterator
from typing import Any

import pytest

from backfill import pager
from backfill.shards import split_range
from run_backfill_production import main as backfill
from scripts.backfill_validation import main as validate
from tests.conftest import Database
from tests.helpers import ledger, start, via, wait_for
from tools.sample_data import make_wardrobe
from tools.tcp_proxy import TcpProxy


def test_parts_cover_the_range_exactly() -> None:
    parts = split_range("B", "x", 4)
    assert parts[0].from_id == "B" and parts[-1].before_id == "x"
    assert all(a.before_id == b.from_id for a, b in itertools.pairwise(parts))
    assert split_range(None, None, 1) == [pager.Part(None, None)]


@pytest.mark.slow
def test_kill_9_and_resume_with_parallel_reads(db: Database, proxy: TcpProxy) -> None:
    db.seed(make_wardrobe(3000))
    proxy.delay = 0.02
    env = via(db, proxy)
    process, log = start(db, env, "--batch-size", "50", "--parallel-reads", "4")
    wait_for(log, "Batch 8:")
    process.kill()
    process.wait()
    [entry] = ledger(db)
    assert len(entry["parts"]) == 4 and entry["status"] == "running"
    recorded = entry["counts"]["processed"]
    assert 0 < recorded < 3000
    proxy.delay = 0.0
    process, log = start(db, env, "--resume", "--json")
    assert process.wait(timeout=120) == 0, log.read_text()
    stats = json.loads(process.stdout.read())  # type: ignore[union-attr]
    [entry] = ledger(db)
    # Counts exact: what the ledger had, plus each part read on after its own checkpoint.
    assert entry["counts"]["processed"] == stats["total_processed"] == 3000
    assert stats["total_updated"] + stats["total_skipped"] == 3000
    db.assert_normalized()


class AllAtOnce:
    """Wraps the pager's cursor: the first `parties` cursors each wait, before their first
    page, until all of them are reading. Readers one after the other never all get there:
    the barrier breaks and the run fails."""

    def __init__(self, parties: int) -> None:
        self.parties, self.calls = parties, itertools.count(1)
        self.barrier = threading.Barrier(parties, timeout=30)

    def __call__(self, *args: Any, **kwargs: Any) -> Iterator[Any]:
        if next(self.calls) <= self.parties:
            self.barrier.wait()
        yield from REAL_ITER_PAGES(*args, **kwargs)


REAL_ITER_PAGES = pager.iter_pages


@pytest.mark.parametrize("tool", ["dry run", "validation"])
@pytest.mark.slow
def test_validation_and_the_dry_run_read_in_parallel(db: Database, tool: str,
                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    db.seed(make_wardrobe(700))
    if tool == "validation":
        assert db.invoke(backfill, ["--yes"]).exit_code == 0
    monkeypatch.setattr(pager, "iter_pages", AllAtOnce(8))
    if tool == "dry run":
        result = db.invoke(backfill, ["--dry-run", "--json", "--parallel-reads", "8"])
        assert result.exit_code == 0, result.output
        assert json.loads(result.stdout)["total_would_update"] == 700
    else:
        result = db.invoke(validate, ["--all", "--json", "--parallel-reads", "8"])
        assert result.exit_code == 0, result.output
        assert json.loads(result.stdout)["checked"] == 700
