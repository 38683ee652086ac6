"""Validation and rollback, end to end on the real emulator: the runbook's steps 3 and 4."""

from __future__ import annotations

import json
from collections import Counter
from typing import Any

import pytest
from google.cloud.firestore_v1 import DELETE_FIELD

from backfill import sampling
from run_backfill_production import main as backfill
from scripts.backfill_rollback import main as rollback
from scripts.backfill_validation import main as validate
from tests.conftest import Database
from tests.helpers import VALIDATION, auto_ids
from tools.sample_data import make_wardrobe


def without_normalized(docs: dict[str, dict[str, Any]]) -> dict[str, dict[str, Any]]:
    return {i: {k: v for k, v in d.items() if k != "normalized"} for i, d in docs.items()}


@pytest.mark.slow
def test_round_trip(db: Database) -> None:
    items = make_wardrobe(150)
    db.seed(items)
    original = db.documents()
    assert db.invoke(backfill, ["--yes", "--environment", "production"]).exit_code == 0

    result = db.invoke(validate, ["--all", "--json"])
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    assert report["coverage"] == {"total": 150, "normalized": 150, "percent": 100.0}
    assert (report["checked"], report["valid"], report["invalid"]) == (150, 150, 0)

    # Corrupt a few items, each in its own way.
    ids = sorted(original)
    ref = db.client.collection("wardrobe")
    ref.document(ids[0]).update({"normalized.style": ["Casual"]})
    ref.document(ids[1]).update({"normalized": None})
    ref.document(ids[2]).update({"normalized.normalized_at": DELETE_FIELD})
    ref.document(ids[3]).update({"style": ["Brand New Style"]})
    ref.document(ids[4]).update({"normalized.normalized_version": "0.9"})
    ref.document(ids[5]).update({"normalized": DELETE_FIELD})
    result = db.invoke(validate, ["--all", "--json"])
    assert result.exit_code == 1
    report = json.loads(result.stdout)
    assert {e["id"]: e["reasons"] for e in report["invalid_items"]} == {
        ids[0]: ["malformed_facets"],
        ids[1]: ["null"],
        ids[2]: ["bad_timestamp"],
        ids[3]: ["stale"],
        ids[4]: ["wrong_version"],
        ids[5]: ["missing"],
    }
    assert report["coverage"]["normalized"] == 148  # null and deleted are not maps
    assert f"✗ {ids[3]}: stale" in result.stderr
    assert list(db.output_dir.glob("validation_report_*.json"))

    before = db.update_times()
    result = db.invoke(rollback, ["--dry-run", "--environment", "production"])
    assert result.exit_code == 0
    assert db.update_times() == before
    assert "149 Would roll back" not in result.stderr  # IDs only, no field dump
    assert "Would roll back " in result.stderr
    stats = json.loads(db.stats_files("rollback_stats")[0].read_text())
    assert stats["total_would_update"] == 149  # every item but the one with no field

    result = db.invoke(rollback, ["--environment", "production", "--parallel-reads", "1"],
                       input="YES\n")
    assert result.exit_code == 0, result.output
    after = db.documents()
    assert all("normalized" not in d for d in after.values())
    expected = without_normalized(original)
    expected[ids[3]]["style"] = ["Brand New Style"]
    assert after == expected
    assert "Batch 1: 150 processed, 149 rolled back, 1 skipped, 0 errors" in result.stderr

    result = db.invoke(rollback, ["--yes", "--environment", "production", "--json"])
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["total_updated"] == 0  # idempotent

    result = db.invoke(validate, ["--json", "--sample-size", "10"])
    assert result.exit_code == 1
    assert json.loads(result.stdout)["coverage"]["percent"] == 0.0

    result = db.invoke(backfill, ["--json"])
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["total_updated"] == 150
    assert db.invoke(validate, ["--all"]).exit_code == 0


def test_rollback_deletes_null_too_and_nothing_else(db: Database) -> None:
    db.seed({"a": {"style": ["x"], "normalized": None}, "b": {"normalized": {"style": []}},
             "c": {"style": ["y"]}})
    result = db.invoke(rollback, ["--json"])
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["total_updated"] == 2
    assert db.documents() == {"a": {"style": ["x"]}, "b": {}, "c": {"style": ["y"]}}


def test_rollback_in_production_needs_yes(db: Database) -> None:
    db.seed({"a": {"normalized": None}})
    before = db.update_times()
    result = db.invoke(rollback, ["--environment", "production"], input="nope\n")
    assert result.exit_code == 1 and "Aborted" in result.stderr
    assert db.update_times() == before


@pytest.mark.slow
def test_validation_never_prompts_or_writes(db: Database) -> None:
    db.seed(make_wardrobe(40))
    before = db.update_times()
    done = db.run_tool(VALIDATION, ["--sample-size", "100", "--environment", "production"])
    assert done.returncode == 1  # nothing is normalized yet
    assert "Coverage: 0 of 40 items" in done.stderr
    assert "Checked:            40 (sample)" in done.stdout
    assert "Invalid:            40" in done.stdout and "missing: " in done.stdout
    assert db.update_times() == before


@pytest.mark.slow
def test_rollback_as_a_real_process(db: Database) -> None:
    db.seed({"a": {"normalized": {"style": []}, "name": "tee"}})
    done = db.run_script("scripts/backfill_rollback.py", ["--environment", "production"],
                         input="YES\n")
    assert done.returncode == 0, done.stderr
    assert db.documents() == {"a": {"name": "tee"}}


@pytest.mark.parametrize(("ids", "method"), [
    ([f"item{i:04d}" for i in range(400)], "exact: reservoir over a keys-only scan of every "
                                           "item"),
    (auto_ids(400, 5), "random windows of the ID key space (every item equally likely)"),
], ids=["sequential IDs", "auto IDs"])
@pytest.mark.slow
def test_samples_are_uniform_over_the_whole_id_range(
        db: Database, ids: list[str], method: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """The collection counts as large here (the exact method's limit lowered), so that
    auto IDs are drawn by random windows; sequential IDs fall back to the exact scan."""
    monkeypatch.setattr(sampling, "EXACT_LIMIT", 100)
    db.seed([(doc_id, {"n": n}) for n, doc_id in enumerate(ids)])
    rank = {doc_id: n for n, doc_id in enumerate(ids)}
    hits: Counter[int] = Counter()
    samples = set()
    for seed in range(40):
        result = db.invoke(validate, ["--sample-size", "20", "--seed", str(seed), "--json",
                                      "--batch-size", "100"])
        report = json.loads(result.stdout)
        assert report["sample_method"] == method
        drawn = [e["id"] for e in report["invalid_items"]]  # none normalized: all invalid
        assert len(drawn) == len(set(drawn)) >= 20
        samples.add(frozenset(drawn))
        hits.update(rank[doc_id] // 100 for doc_id in drawn)  # which quarter of the range
    # A quarter of the draws in each quarter of the range, give or take 4 SD (of a sample
    # drawn in windows of about 4 neighbours: twice a simple sample's): a sampler biased
    # to the start would fail this.
    total = sum(hits.values())
    assert all(0.15 <= hits[quarter] / total <= 0.35 for quarter in range(4)), hits
    assert len(samples) == 40  # every seed draws a sample of its own


def test_the_same_seed_draws_the_same_sample(db: Database) -> None:
    db.seed([(f"item{i:04d}", {"n": i}) for i in range(100)])
    draws = [json.loads(db.invoke(validate, ["--sample-size", "5", "--seed", "7", "--json"])
                        .stdout)["invalid_items"] for _ in range(2)]
    assert draws[0] == draws[1] and len(draws[0]) == 5


def test_all_and_sample_size_do_not_go_together(db: Database) -> None:
    result = db.invoke(validate, ["--all", "--sample-size", "5"])
    assert result.exit_code == 2
    assert "--all and --sample-size do not go together" in result.stderr
