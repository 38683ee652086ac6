"""At any size: write requests and journal documents are cut by bytes, so that no run is
ever stuck on a request or a document that is too big; on the real emulator, which
enforces the 1 MiB document limit and a 4 MiB request size."""

from __future__ import annotations

import json
from typing import Any

import pytest
from google.cloud.firestore_v1.bulk_batch import BulkWriteBatch

from backfill.writer import MAX_REQUEST_BYTES, Write, request_chunks
from run_backfill_production import main as backfill
from scripts.backfill_rollback import main as rollback
from tests.conftest import Database


def seed_in_small_commits(db: Database, items: list[tuple[str, dict[str, Any]]],
                          per_commit: int) -> None:
    for start in range(0, len(items), per_commit):
        db.seed(items[start:start + per_commit])


@pytest.mark.slow
def test_a_journal_of_large_previous_values_is_split_and_undone_exactly(db: Database) -> None:
    old = {"style": [f"old-style-term-{n:04d}" for n in range(150)], "occasion": [],
           "mood": [], "season": ["all"], "normalized_version": "0.9", "note": "x" * 100}
    assert len(json.dumps(old)) > 3000
    items = [(f"i{n:04d}", {"style": ["Boho"], "normalized": {**old, "n": n}})
             for n in range(1000)]
    seed_in_small_commits(db, items, 200)
    before = db.documents()
    result = db.invoke(backfill, ["--job-id", "bf-big", "--json"])
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["total_updated"] == 1000
    journal = list(db.client.collection("_backfill_runs").document("bf-big")
                   .collection("journal").stream())
    assert len(journal) >= 4  # a batch of 500 journals over 1 MiB: several documents
    undone = db.invoke(rollback, ["--run-id", "bf-big", "--json"])
    assert undone.exit_code == 0, undone.output
    assert db.documents() == before


@pytest.mark.slow
def test_items_with_a_thousand_terms_are_written_in_requests_that_fit(db: Database) -> None:
    terms = [f"Style Term Number {n:04d}" for n in range(1000)]
    # 300 items of about 22 kB of tags each: one page, several requests of 3 MiB at most.
    items = [(f"t{n:03d}", {"style": terms, "name": f"item {n}"}) for n in range(300)]
    seed_in_small_commits(db, items, 50)
    before = db.documents()
    result = db.invoke(backfill, ["--job-id", "bf-terms", "--json", "--max-retry-seconds",
                                  "5"])
    assert result.exit_code == 0, result.output
    stats = json.loads(result.stdout)
    assert (stats["total_processed"], stats["total_updated"]) == (300, 300)
    db.assert_normalized()
    assert db.invoke(rollback, ["--run-id", "bf-terms"]).exit_code == 0
    assert db.documents() == before


def test_previous_values_from_small_to_near_the_document_limit(db: Database) -> None:
    sizes = {"tiny": 10, "kb": 1_000, "100kb": 100_000, "600kb": 600_000,
             "750kb": 750_000, "950kb": 950_000}
    items = [(name, {"style": ["Goth"], "normalized": {"blob": "z" * size}})
             for name, size in sizes.items()]
    seed_in_small_commits(db, items, 1)
    before = db.documents()
    result = db.invoke(backfill, ["--job-id", "bf-sizes", "--json"])
    assert result.exit_code == 1, result.output  # the two that cannot be journaled
    stats = json.loads(result.stdout)
    errors = {e["id"]: e["error"] for e in stats["errors"]}
    assert set(errors) == {"750kb", "950kb"}
    assert all(message.startswith("its previous normalized (") and
               message.endswith("is too large to journal: not written (an undo could not "
                                "restore it)") for message in errors.values())
    after = db.documents()
    assert after["750kb"] == before["750kb"] and after["950kb"] == before["950kb"]
    assert all("blob" not in after[name]["normalized"] for name in ("tiny", "kb", "100kb",
                                                                     "600kb"))
    assert db.invoke(rollback, ["--run-id", "bf-sizes"]).exit_code == 0
    assert db.documents() == before


def encoded_request_bytes(db: Database, writes: list[Write]) -> int:
    """What the client library itself encodes for these writes: the protobuf bytes of a
    BatchWrite request (measured independently of the tool's own estimate)."""
    batch = BulkWriteBatch(db.client)
    for write in writes:
        batch.update(write.reference, write.fields)
    return sum(type(pb).pb(pb).ByteSize() for pb in batch._write_pbs)


def test_requests_are_cut_by_count_and_by_bytes(db: Database) -> None:
    ref = db.client.collection("w").document("x")
    small = [Write(ref, {"normalized": {"style": ["a"]}}, None)] * 1200
    assert [len(c) for c in request_chunks(small)] == [500, 500, 200]
    big = [Write(ref, {"normalized": {"style": ["t" * 1000] * 100}}, None)] * 100
    assert encoded_request_bytes(db, big) > 9_000_000  # 100 writes of about 100 kB
    chunks = request_chunks(big)
    assert len(chunks) > 1 and [i for c in chunks for i in c] == list(range(100))
    assert all(encoded_request_bytes(db, [big[i] for i in c]) <= 3 * 1024 * 1024
               for c in chunks)
    assert MAX_REQUEST_BYTES == 3 * 1024 * 1024  # the README's figure


def test_a_write_the_database_refuses_is_an_item_error_and_the_run_goes_on(
        db: Database) -> None:
    # The emulator enforces Firestore's 1 MiB per document: this item is at the limit,
    # so that its normalized map cannot be added to it.
    items = [(f"i{n:02d}", {"style": ["Goth"]}) for n in range(20)]
    items.insert(10, ("i09-big", {"style": ["Goth"], "a": "x" * 600_000,
                                  "b": "y" * 448_450}))
    seed_in_small_commits(db, items, 1)
    before = db.documents()
    times = db.update_times()
    result = db.invoke(backfill, ["--json", "--batch-size", "5", "--parallel-reads", "1"])
    assert result.exit_code == 1, result.output
    stats = json.loads(result.stdout)
    assert [e["id"] for e in stats["errors"]] == ["i09-big"]
    assert "maximum entity size is 1048576 bytes" in stats["errors"][0]["error"]
    assert (stats["total_processed"], stats["total_updated"]) == (21, 20)
    after = db.documents()
    assert after["i09-big"] == before["i09-big"]
    assert db.update_times()["i09-big"] == times["i09-big"]
    assert all(after[f"i{n:02d}"]["normalized"]["style"] == ["gothic"] for n in range(20))
