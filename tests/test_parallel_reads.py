"""Reads in parallel: the range in parts, each read by a cursor of its own, each with its
own checkpoint; on the real emulator, with the backfill as a real process."""

from __future__ import annotations

import itertools
import json

from backfill.pager import Part
from backfill.shards import split_range
from tests.conftest import Database
from tests.test_reliability import ledger, start, via, wait_for
from tools.sample_data import make_wardrobe
from tools.tcp_proxy import TcpProxy


def test_parts_cover_the_range_exactly() -> None:
    parts = split_range("B", "x", 4)
    assert parts[0].from_id == "B" and parts[-1].before_id == "x"
    assert all(a.before_id == b.from_id for a, b in itertools.pairwise(parts))
    assert split_range(None, None, 1) == [Part(None, None)]


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


def test_validation_and_the_dry_run_read_in_parallel(db: Database) -> None:
    db.seed(make_wardrobe(700))
    dry = db.run_script("run_backfill_production.py", ["--dry-run", "--json",
                                                       "--parallel-reads", "8"])
    assert dry.returncode == 0, dry.stderr
    assert json.loads(dry.stdout)["total_would_update"] == 700
    assert db.run_script("run_backfill_production.py", ["--yes"]).returncode == 0
    checked = db.run_script("scripts/backfill_validation.py", ["--all", "--json",
                                                               "--parallel-reads", "8"])
    assert checked.returncode == 0, checked.stderr
    assert json.loads(checked.stdout)["checked"] == 700
