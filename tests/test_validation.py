"""Validation's promises that the round trip does not reach: each reason, the kinds of
`normalized_at`, what coverage counts, which sampling method runs when, and --run-id;
on the real emulator."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

import pytest

from backfill import sampling
from run_backfill_production import main as backfill
from scripts.backfill_validation import main as validate
from tests.conftest import Database
from tests.helpers import auto_ids

GOOD_FACETS = {"style": ["gothic"], "occasion": [], "mood": [], "season": ["all"]}
EXACT = "exact: reservoir over a keys-only scan of every item"
WINDOWS = "random windows of the ID key space (every item equally likely)"


def report(db: Database, *args: str) -> tuple[int, dict[str, Any]]:
    result = db.invoke(validate, ["--json", *args])
    return result.exit_code, json.loads(result.stdout)


def test_each_kind_of_normalized_gets_its_reason(db: Database) -> None:
    stored_at = datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC)
    db.seed({
        "string": {"style": ["Goth"], "normalized": "oops"},
        "list": {"style": ["Goth"], "normalized": ["gothic"]},
        "number": {"style": ["Goth"], "normalized": 7},
        "null": {"style": ["Goth"], "normalized": None},
        "missing": {"style": ["Goth"]},
        # A Firestore timestamp (as another writer may store it) is a valid normalized_at.
        "timestamp": {"style": ["Goth"], "normalized": {
            **GOOD_FACETS, "normalized_at": stored_at, "normalized_version": "1.0"}},
        "iso": {"style": ["Goth"], "normalized": {
            **GOOD_FACETS, "normalized_at": "2025-10-07T22:23:34.573156",
            "normalized_version": "1.0"}},
        "bad-time": {"style": ["Goth"], "normalized": {
            **GOOD_FACETS, "normalized_at": "yesterday", "normalized_version": "1.0"}},
    })
    code, found = report(db, "--all")
    assert code == 1
    assert {e["id"]: e["reasons"] for e in found["invalid_items"]} == {
        "string": ["not_a_map"], "list": ["not_a_map"], "number": ["not_a_map"],
        "null": ["null"], "missing": ["missing"], "bad-time": ["bad_timestamp"]}
    assert (found["checked"], found["valid"]) == (8, 2)
    # Coverage counts maps only: not the string, the list, the number, null or absent.
    assert found["coverage"] == {"total": 8, "normalized": 3, "percent": 37.5}


def test_the_sampling_method_follows_the_collections_size_and_the_option(
        db: Database, monkeypatch: pytest.MonkeyPatch) -> None:
    ids = auto_ids(200, 3)
    db.seed([(doc_id, {"style": ["Goth"]}) for doc_id in ids])
    # A small collection: the exact scan, one read per item.
    code, found = report(db, "--sample-size", "40", "--seed", "1")
    assert code == 1 and found["sample_method"] == EXACT
    assert found["sample_reads"] >= 200 and found["checked"] == 40
    # A large one (here: past a lowered limit): random windows, reads follow the sample.
    monkeypatch.setattr(sampling, "EXACT_LIMIT", 100)
    code, found = report(db, "--sample-size", "40", "--seed", "1")
    assert code == 1 and found["sample_method"] == WINDOWS
    assert found["sample_reads"] < 200 and 40 <= found["checked"] <= 70
    # Asked for, the exact method scans every key once, whatever the size.
    code, found = report(db, "--sample-size", "40", "--seed", "1", "--exact-sample")
    assert found["sample_method"] == EXACT and found["sample_reads"] >= 200
    assert found["checked"] == 40


@pytest.mark.slow
def test_a_uniform_sample_says_what_it_shows_about_the_whole_collection(
        db: Database, monkeypatch: pytest.MonkeyPatch) -> None:
    db.seed([(doc_id, {"style": ["Goth"]}) for doc_id in auto_ids(300, 5)])
    assert db.invoke(backfill, ["--yes"]).exit_code == 0
    result = db.invoke(validate, ["--sample-size", "100", "--seed", "2", "--exact-sample"])
    assert result.exit_code == 0, result.output
    assert ("Estimate:           0 invalid of 100 sampled: at most 3.0% of the 300 items are "
            "invalid (95% confidence)") in result.stdout
    code, found = report(db, "--sample-size", "100", "--seed", "2", "--exact-sample")
    assert code == 0 and found["estimate"]["invalid_items_at_most"] == 9
    # Random windows draw every item equally likely too: the bound holds for them.
    monkeypatch.setattr(sampling, "EXACT_LIMIT", 100)
    code, found = report(db, "--sample-size", "50", "--seed", "2")
    assert code == 0 and found["sample_method"] == WINDOWS
    assert found["estimate"]["sampled"] == found["checked"] >= 50
    assert found["estimate"]["invalid"] == 0


@pytest.mark.parametrize("field", ["metadata.normalized", "normalized"])
def test_run_id_checks_the_field_that_run_wrote(db: Database, field: str) -> None:
    db.seed({f"i{n}": {"style": ["Goth"], "metadata": {"k": n}} for n in range(12)})
    assert db.invoke(backfill, ["--target-field", field, "--job-id", "bf-field"]
                     ).exit_code == 0
    code, found = report(db, "--all", "--run-id", "bf-field")
    assert code == 0, found
    assert found["target_field"] == field and found["valid"] == 12
    assert found["recorded_run"]["target_field"] == field
    other = "normalized" if field != "normalized" else "metadata.normalized"
    code, found = report(db, "--all", "--target-field", other)
    assert code == 1 and found["invalid_by_reason"] == {"missing": 12}


def test_validation_says_the_environment_it_read_not_its_default(db: Database) -> None:
    """Before: `🔎 Validating wardrobe [development] (read-only)` right after a production
    run, and `"environment": "development"` in the report."""
    db.seed({f"item{i}": {"style": ["Goth"]} for i in range(12)})
    unknown = db.invoke(validate, ["--all"])
    assert "🔎 Validating wardrobe [environment not given (--environment)] (read-only)" in \
        unknown.stderr
    ran = db.invoke(backfill, ["--environment", "production", "--yes", "--job-id", "bf-p"])
    assert ran.exit_code == 0, ran.output
    code, found = report(db, "--all")
    assert (code, found["environment"]) == (0, "production")
    shown = db.invoke(validate, ["--all"]).stderr
    assert "🔎 Validating wardrobe [production, as run bf-p recorded it] (read-only)" in shown
    given = db.invoke(validate, ["--all", "--environment", "staging"]).stderr
    assert "🔎 Validating wardrobe [staging] (read-only)" in given
