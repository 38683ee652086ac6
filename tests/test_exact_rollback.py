"""Undoing exactly one backfill run from its journal, on the real emulator."""

from __future__ import annotations

import json
from typing import Any

from google.cloud.firestore_v1 import DELETE_FIELD

from backfill.journal import written_at_ns
from normalizer import NORMALIZED_VERSION
from run_backfill_production import main as backfill
from scripts.backfill_rollback import main as rollback
from tests.conftest import Database

OLD_MAP = {"style": ["casual"], "occasion": [], "mood": [], "season": ["all"],
           "normalized_at": "2024-05-01T10:00:00Z", "normalized_version": "0.9",
           "extra": {"nested": [1, 2.5, None, "x"]}}


def items() -> dict[str, dict[str, Any]]:
    seeded: dict[str, dict[str, Any]] = {}
    for n in range(45):
        item: dict[str, Any] = {"style": ["Boho", "Casual"][n % 2:], "name": f"tee {n}",
                                "createdAt": "2023-01-01"}
        if n % 3 == 1:
            item["normalized"] = None
        elif n % 3 == 2:
            item["normalized"] = {**OLD_MAP, "style": [f"old{n}"]}
        seeded[f"i{n:03d}"] = item
    return seeded


def run_ids(db: Database) -> list[str]:
    return [r["run_id"] for r in db.documents("_backfill_runs").values()
            if r.get("tool") == "backfill" and r.get("kind") != "lease"]


def test_undo_restores_exactly_what_the_run_replaced(db: Database) -> None:
    seeded = items()
    db.seed(seeded)
    before = db.documents()
    assert db.invoke(backfill, ["--batch-size", "10"]).exit_code == 0
    [first_run] = run_ids(db)
    journal = db.client.collection("_backfill_runs").document(first_run).collection("journal")
    assert len(list(journal.stream())) == 5  # one journal write per batch of 10, no more

    # After the run: the app rewrites one item's normalized (a change the skip rule lets
    # be, so the next run does not touch it); another run adds new items.
    wardrobe = db.client.collection(db.collection)
    wardrobe.document("i007").update({"normalized.normalized_at": "2030-01-01T00:00:00Z"})
    db.seed({"new1": {"style": ["Goth"]}, "new2": {"style": ["Edgy"]}})
    assert db.invoke(backfill, ["--batch-size", "10"]).exit_code == 0
    after_runs = db.documents()

    dry = db.invoke(rollback, ["--run-id", first_run, "--dry-run", "--json"])
    assert dry.exit_code == 1, dry.output  # i007 would be left as it is, and says so
    assert json.loads(dry.stdout)["total_would_update"] == 44
    assert db.documents() == after_runs

    result = db.invoke(rollback, ["--run-id", first_run, "--environment", "production"],
                       input="YES\n")
    assert result.exit_code == 1  # one item could not be undone, and says so
    assert "✗ i007: normalized changed after the run; left as is" in result.stdout
    docs = db.documents()
    for doc_id, item in before.items():
        if doc_id == "i007":
            assert docs[doc_id] == after_runs[doc_id]  # never clobbered
        else:
            assert docs[doc_id] == item, doc_id  # byte for byte, absent, null or old map
    # The other run's changes stay.
    assert docs["new1"]["normalized"]["style"] == ["gothic"]
    assert docs["new1"]["normalized"]["normalized_version"] == NORMALIZED_VERSION

    again = db.invoke(rollback, ["--run-id", first_run, "--json"])
    assert again.exit_code == 1, again.output
    stats = json.loads(again.stdout)
    assert stats["total_updated"] == 0 and stats["total_errors"] == 1
    assert db.documents() == docs


def test_undo_needs_a_backfill_run_of_this_collection(db: Database) -> None:
    db.seed({"a": {"style": ["Goth"]}})
    result = db.invoke(rollback, ["--run-id", "backfill-nope"])
    assert result.exit_code == 2
    assert "no backfill run 'backfill-nope' of collection 'wardrobe'" in result.stderr
    result = db.invoke(rollback, ["--run-id", "x", "--shard", "0/2", "--job-id", "j"])
    assert result.exit_code == 2 and "takes no --shard or --job-id" in result.stderr


def test_list_runs(db: Database) -> None:
    db.seed({"a": {"style": ["Goth"]}})
    assert db.invoke(backfill, ["--environment", "staging", "--job-id", "bf-list"]
                     ).exit_code == 0
    assert db.invoke(rollback, ["--job-id", "rb-list"]).exit_code == 0
    result = db.invoke(rollback, ["--list-runs"])
    assert result.exit_code == 0
    lines = result.stdout.splitlines()
    assert lines[1].split()[:3] == ["run", "ID", "tool"]
    rollback_line, backfill_line = lines[2:4]  # newest first
    # run ID, tool, environment, field, who, started, status, processed, written, errors
    rolled, filled = rollback_line.split(), backfill_line.split()
    assert rolled[:4] + rolled[6:] == ["rb-list", "rollback", "development", "normalized",
                                       "completed", "1", "1", "0"]
    assert filled[:4] + filled[6:] == ["bf-list", "backfill", "staging", "normalized",
                                       "completed", "1", "1", "0"]
    assert rolled[4] == filled[4] != "sharded" and "@" in rolled[4]


def test_a_write_never_recorded_as_landed_is_undone_when_unchanged_since(
        db: Database) -> None:
    """Issue 31, case 8: a kill between a batch's write and the record of it leaves its
    entries without an outcome. The undo restores such a write when the item holds
    exactly what the run wrote and has not changed since (before: listed, left as is)."""
    db.seed(items())
    before = db.documents()
    assert db.invoke(backfill, ["--batch-size", "10", "--job-id", "bf-nl",
                                "--parallel-reads", "1"]).exit_code == 0
    # As a kill leaves the journal: the newest batch (items i040 to i044) has its entries,
    # and no outcome.
    journal = db.client.collection("_backfill_runs").document("bf-nl").collection("journal")
    newest = next(iter(journal.order_by("__name__").limit(1).stream()))
    journal.document(newest.id).update({"landed": DELETE_FIELD})
    result = db.invoke(rollback, ["--run-id", "bf-nl", "--json"])
    assert result.exit_code == 0, result.output
    stats = json.loads(result.stdout)
    assert (stats["total_processed"], stats["total_updated"], stats["errors"]) == (45, 45, [])
    assert db.documents() == before


def test_a_write_never_recorded_as_landed_on_an_item_changed_since_is_left_alone(
        db: Database) -> None:
    db.seed(items())
    before = db.documents()
    assert db.invoke(backfill, ["--batch-size", "10", "--job-id", "bf-nl",
                                "--parallel-reads", "1"]).exit_code == 0
    written = db.documents()
    # The newest batch (i040 to i044), without its outcome, as if written an hour ago:
    # its items changed (by the app, in other fields) long after the run's write.
    journal = db.client.collection("_backfill_runs").document("bf-nl").collection("journal")
    newest = next(iter(journal.order_by("__name__").limit(1).stream()))
    hour_ago = written_at_ns(newest.id) - 3600 * 10**9
    fields = {k: v for k, v in (newest.to_dict() or {}).items() if k != "landed"}
    journal.document(f"{2**63 - hour_ago:020d}-{newest.id.split('-', 1)[1]}").set(fields)
    journal.document(newest.id).delete()
    times = db.update_times()
    result = db.invoke(rollback, ["--run-id", "bf-nl", "--json"])
    assert result.exit_code == 1, result.output
    stats = json.loads(result.stdout)
    unrecorded = [f"i{n:03d}" for n in range(40, 45)]
    assert {e["id"]: e["error"] for e in stats["errors"]} == {
        doc_id: "the run's write of normalized was never recorded as landed; the item holds "
                "the value the run wrote but changed later; left as is"
        for doc_id in unrecorded}
    after, times_after = db.documents(), db.update_times()
    for doc_id in before:
        if doc_id in unrecorded:
            assert after[doc_id] == written[doc_id] and times_after[doc_id] == times[doc_id]
        else:
            assert after[doc_id] == before[doc_id], doc_id


def test_an_item_the_run_wrote_twice_is_undone_and_counted_once(db: Database) -> None:
    """A resume that writes items again (--force) journals them again; between the two
    writes the app put its own map on some. The undo gives each item back as it was
    before the run first touched it, or the app's map where the app wrote one; each item
    counted once, no item listed as an error. (Before: 120 processed for 60 items, the
    app's items listed as changed after the run.)"""
    db.seed({f"i{n:03d}": {"style": ["Boho"], "name": f"tee {n}"} for n in range(60)})
    seeded = db.documents()
    assert db.invoke(backfill, ["--job-id", "bf-2x", "--force", "--batch-size", "20",
                                "--parallel-reads", "1"]).exit_code == 0
    app = {f"i{n:03d}" for n in range(0, 60, 6)}
    for doc_id in app:
        db.client.collection(db.collection).document(doc_id).update({"normalized": OLD_MAP})
    runs = db.client.collection("_backfill_runs")
    runs.document("bf-2x").update({"status": "interrupted", "checkpoint": None,
                                   "parts": None})
    assert db.invoke(backfill, ["--resume", "bf-2x"]).exit_code == 0
    result = db.invoke(rollback, ["--run-id", "bf-2x", "--json"])
    assert result.exit_code == 0, result.output
    stats = json.loads(result.stdout)
    assert (stats["total_processed"], stats["total_updated"], stats["errors"]) == (60, 60, [])
    assert db.documents() == {doc_id: {**item, "normalized": OLD_MAP} if doc_id in app
                              else item for doc_id, item in seeded.items()}
