"""A run's fixed cost, in database calls on its critical path: the lease and the run's
first ledger record go in one commit, made while the first pages are read; which writes
landed rides on the next journal commit or on the last one; the final record and the
lease given back are one commit. Each run is a real process, traced by tools/traced_run
(every database call, with its thread and times, and every line it printed)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from backfill.ledger import DEFAULT_LEDGER_COLLECTION
from backfill.status import RunStatus
from tests.conftest import Database
from tests.helpers import REPO, SCRIPT, ledger
from tools.sample_data import make_wardrobe

pytestmark = pytest.mark.slow  # every test here takes a second or more


def traced(db: Database, *args: str) -> tuple[int, dict[str, Any]]:
    trace = db.output_dir / "trace.json"
    done = subprocess.run(
        [sys.executable, "-m", "tools.traced_run", str(trace), SCRIPT, "--quiet",
         "--output-dir", str(db.output_dir), *args],
        cwd=REPO, env=db.env, capture_output=True, text=True, timeout=120)
    return done.returncode, json.loads(Path(trace).read_text())


def calls(trace: dict[str, Any]) -> list[dict[str, Any]]:
    return sorted((e for e in trace["events"] if "call" in e), key=lambda e: e["start"])


def said(trace: dict[str, Any], prefix: str) -> list[float]:
    return [e["start"] for e in trace["events"] if e.get("line", "").startswith(prefix)]


def journal_documents(db: Database, run_id: str) -> list[dict[str, Any]]:
    ref = db.client.collection(DEFAULT_LEDGER_COLLECTION).document(run_id)
    return [s.to_dict() or {} for s in ref.collection("journal").stream()]


def test_a_new_run_commits_its_lease_and_entry_once_and_ends_in_one_commit(
        db: Database) -> None:
    db.seed(make_wardrobe(1200))
    code, trace = traced(db, "--yes", "--batch-size", "200", "--parallel-reads", "2")
    assert code == 0
    done = calls(trace)
    # Before the first item write: the count, the lease read, one commit (the lease with
    # the run's entry), the page reads and the journal commits; nothing else.
    first_write = next(e["start"] for e in done if e["call"] == "BatchWrite")
    opening = [e for e in done if e["thread"].startswith("opening")]
    assert [e["call"] for e in opening if e["call"] == "Commit"] == ["Commit"]
    assert all(e["end"] <= first_write for e in opening if e["call"] == "Commit")
    before = [e for e in done if e["start"] < first_write and e["call"] == "Commit"]
    assert {e["thread"].split("_")[0] for e in before} <= {"opening", "batch"}
    # Reading began before the lease was committed: it did not wait for it.
    reads = [e["start"] for e in done if e["thread"].startswith("page")]
    assert min(reads) < opening[-1]["end"]
    # After the last item write: one commit, the final record with the lease given back.
    last_write_end = max(e["end"] for e in done if e["call"] == "BatchWrite")
    after = [e for e in done if e["start"] >= last_write_end]
    assert [e["call"] for e in after] == ["Commit"], after
    # That commit did record the end, gave the lease back and said which writes landed.
    [entry] = ledger(db)
    assert (entry["status"], entry["counts"]["updated"]) == (RunStatus.COMPLETED, 1200)
    assert f"lease-{db.collection}" not in db.documents(DEFAULT_LEDGER_COLLECTION)
    journal = journal_documents(db, entry["run_id"])
    assert sum(doc["count"] for doc in journal) == 1200
    assert all(doc["landed"] == "1" * doc["count"] for doc in journal)
    # Nothing was said before the count, and no batch before the lease was taken.
    assert said(trace, "📊")[0] <= said(trace, "Batch 1:")[0]
    assert opening[-1]["end"] <= said(trace, "Batch 1:")[0]


def test_an_all_skipped_rerun_writes_only_its_lease_and_records(db: Database) -> None:
    db.seed(make_wardrobe(600))
    assert traced(db, "--yes", "--batch-size", "200")[0] == 0
    times = db.update_times()
    code, trace = traced(db, "--yes", "--batch-size", "200")
    assert code == 0
    assert db.update_times() == times
    commits = [e for e in calls(trace) if e["call"] == "Commit"]
    batch_writes = [e for e in calls(trace) if e["call"] == "BatchWrite"]
    assert batch_writes == []
    # The lease with the entry, progress records in the background, the final record
    # with the lease given back: no journal, no commit of a batch.
    assert {e["thread"].split("_")[0] for e in commits} <= {"opening", "ledger", "MainThread"}
    assert [e["thread"] for e in commits if e["thread"] == "MainThread"] == ["MainThread"]
    entry = next(e for e in ledger(db) if e["counts"]["skipped"] == 600)
    assert entry["status"] == RunStatus.COMPLETED
