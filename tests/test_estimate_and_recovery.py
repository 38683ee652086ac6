"""A dry run's estimate of the real run, checked against what the real run then does on
the emulator; the documented counting rules by hand; the point-in-time recovery line."""

from __future__ import annotations

import json
import threading
from datetime import UTC, datetime
from types import SimpleNamespace
from typing import Any

import pytest
from google.api_core import exceptions as gexc

from backfill.cost import paced_seconds
from backfill.ledger import DEFAULT_LEDGER_COLLECTION
from backfill.logs import LOG_FILE_NAME
from backfill.recovery import recovery_line
from backfill.target import Target
from backfill.volume import index_entries, storage_bytes
from normalizer import FACETS
from tests.conftest import Database
from tests.helpers import ROLLBACK, SCRIPT
from tools.sample_data import make_wardrobe

pytestmark = pytest.mark.paced  # the tools keep their own pace here


def dry_estimate(db: Database, *args: str) -> tuple[dict[str, Any], str]:
    done = db.run_tool(SCRIPT, ["--dry-run", "--json", "--quiet", *args])
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout)["estimate"], done.stderr


@pytest.mark.slow
def test_the_estimate_agrees_with_what_the_real_run_then_does(db: Database) -> None:
    db.seed(make_wardrobe(2000))
    pace = ["--max-writes-per-second", "100"]
    estimate, console = dry_estimate(db, *pace)
    assert "💰 Estimate of the real run:" in console
    assert f"   writes:        {estimate['writes']:,} (" in console
    # 2,000 items at 100 writes/s, in 4 parts: all but the last batch paid for.
    assert 15 <= estimate["seconds"] <= 20, estimate
    default, _ = dry_estimate(db)
    assert default["seconds"] < 10  # 500 writes/s: a few seconds

    done = db.run_tool(SCRIPT, ["--yes", "--json", "--quiet", "--job-id", "bf-est", *pace])
    assert done.returncode == 0, done.stderr
    stats = json.loads(done.stdout)
    written = stats["total_updated"]
    assert written == estimate["items_written"] == estimate["writes"] - \
        estimate["overhead_writes"]
    journal = db.client.collection(DEFAULT_LEDGER_COLLECTION).document("bf-est") \
        .collection("journal")
    assert len(list(journal.list_documents())) == estimate["journal_documents"] > 0
    assert abs(stats["duration_seconds"] - estimate["seconds"]) <= 0.2 * estimate["seconds"]
    assert estimate["deletes"] == 2 and estimate["reads"] >= 2000
    # Every written map's entries, by the documented rules (arrays: one per element;
    # normalized_at and normalized_version: an ascending and a descending each).
    expected = sum(sum(len(item["normalized"][f]) for f in FACETS) + 4
                   for item in db.documents().values())
    assert estimate["index_entries"] == expected


@pytest.mark.slow
def test_a_rollback_s_field_deletes_are_writes(db: Database) -> None:
    db.seed(make_wardrobe(300))
    assert db.run_tool(SCRIPT, ["--yes", "--quiet"]).returncode == 0
    done = db.run_tool(ROLLBACK, ["--dry-run", "--json", "--quiet"])
    assert done.returncode == 0, done.stderr
    estimate = json.loads(done.stdout)["estimate"]
    assert estimate["items_written"] == 300 and estimate["journal_documents"] == 0
    assert estimate["index_entries"] == 0 and estimate["deletes"] == 2


def test_index_entries_and_bytes_by_the_documented_rules_by_hand() -> None:
    # A map: each non-array, non-map subfield 2 (ascending, descending), each array
    # element 1 (array-contains), map subfields recursively.
    normalized = {"style": ["goth", "casual"], "occasion": ["party"], "mood": [],
                  "season": ["winter"], "normalized_at": "2026-12-02T10:00:00Z",
                  "normalized_version": 2}
    assert index_entries(normalized) == 2 + 1 + 0 + 1 + 2 + 2
    assert index_entries({"a": {"b": 1, "c": ["x", "y", "x"]}, "d": None}) == 2 + 2 + 2
    # Strings: UTF-8 bytes + 1; integers 8; maps: their fields + 32.
    assert storage_bytes({"tag": "goth", "n": 3}) == 32 + (4 + 5) + (2 + 8)
    assert storage_bytes(["été"]) == len("été".encode()) + 1


def test_the_write_ramp_s_time() -> None:
    assert paced_seconds(2000, 500, 500, 100) == 15.0  # a 100 writes/s ceiling
    assert paced_seconds(2000, 500, 500, 10_000) == 3.0  # the ramp's start: 500/s
    assert paced_seconds(2000, 500, 500, 0) == 0.0  # unpaced
    # 150,000 in the first 5 minutes at 500/s, the rest at 750/s.
    assert paced_seconds(200_500, 500, 500, 10_000) == pytest.approx(300 + 50_000 / 750)
    assert paced_seconds(2000, 500, 500, 100, share=2) == 30.0  # a shard's half


# The emulator does not serve the Firestore Admin API: the recovery check is tested with
# a test double of the admin client, answering as the API would.
TARGET = Target("production", "wardrobe-prod", "(default)", "wardrobe", None, "ADC")


class FakeAdmin:
    def __init__(self, answer: Any) -> None:
        self.answer = answer
        self.asked: list[str] = []

    def get_database(self, *, name: str, timeout: float, retry: Any) -> Any:
        self.asked.append(name)
        if isinstance(self.answer, Exception):
            raise self.answer
        if self.answer == "hang":
            threading.Event().wait(30)
        return self.answer


def line_for(answer: Any, seconds: float = 4.0) -> str:
    admin = FakeAdmin(answer)
    line = recovery_line(TARGET, lambda target: admin, seconds=seconds)
    assert admin.asked == ["projects/wardrobe-prod/databases/(default)"]
    return line


def test_the_recovery_line_in_its_three_forms() -> None:
    earliest = datetime(2026, 11, 24, 10, 15, 42, tzinfo=UTC)
    assert line_for(SimpleNamespace(point_in_time_recovery_enablement=1,
                                    earliest_version_time=earliest)) == \
        "🛟 Point-in-time recovery: on (earliest version 2026-11-24T10:15Z)"
    assert line_for(SimpleNamespace(point_in_time_recovery_enablement=2)) == (
        "🛟 Point-in-time recovery: off: before the run, export what it changes: gcloud "
        "firestore export gs://BUCKET/before-backfill --collection-ids=wardrobe "
        "--project=wardrobe-prod")
    assert line_for(gexc.PermissionDenied("no")) == (
        "🛟 Point-in-time recovery: could not be checked (permission denied: the service "
        "account needs datastore.databases.getMetadata, in roles/datastore.viewer or "
        "roles/datastore.owner)")
    assert line_for(gexc.ServiceUnavailable("down")) == \
        "🛟 Point-in-time recovery: could not be checked (ServiceUnavailable)"


@pytest.mark.slow
def test_an_admin_api_that_hangs_delays_nothing_much() -> None:
    started = datetime.now(UTC)
    assert line_for("hang", seconds=0.5) == \
        "🛟 Point-in-time recovery: could not be checked (no answer within 0.5s)"
    assert (datetime.now(UTC) - started).total_seconds() < 2


@pytest.mark.slow
def test_a_production_run_says_its_way_back_before_the_prompt_and_in_the_log(
        db: Database) -> None:
    db.seed(make_wardrobe(20))
    line = "🛟 Point-in-time recovery: could not be checked (the emulator does not serve " \
           "the Admin API)"
    done = db.run_tool(SCRIPT, ["--environment", "production", "--quiet"], input="no\n")
    assert done.returncode == 1
    assert line in done.stderr
    assert done.stderr.index(line) < done.stderr.index("Type 'YES' to continue")
    done = db.run_tool(SCRIPT, ["--environment", "production", "--yes", "--quiet"])
    assert done.returncode == 0, done.stderr
    assert line in (db.output_dir / LOG_FILE_NAME).read_text()
    dry = db.run_tool(SCRIPT, ["--environment", "production", "--dry-run", "--quiet"])
    assert dry.stderr.index("💰 Estimate of the real run:") < dry.stderr.index(line)
