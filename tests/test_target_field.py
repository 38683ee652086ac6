"""--target-field: the normalized map where the wardrobe app reads it (metadata.normalized),
on items shaped like the app's, next to hostile parents; on the real emulator."""

from __future__ import annotations

import base64
import json
import random
from collections.abc import Iterator
from typing import Any

import pytest
from click.testing import CliRunner, Result
from google.cloud.firestore_v1 import DELETE_FIELD

from backfill.ledger import DEFAULT_LEDGER_COLLECTION
from normalizer import FACETS, normalize_item
from run_backfill_production import main as backfill
from scripts.backfill_rollback import main as rollback
from scripts.backfill_validation import main as validate
from tests.conftest import Database
from tests.helpers import dead_address
from tools.tcp_proxy import TcpProxy

APP_FIELD = "metadata.normalized"
HOSTILE = {"meta-null": None, "meta-string": "legacy", "meta-list": ["a", {"b": 1}],
           "meta-number": 42}


def app_item(n: int) -> dict[str, Any]:
    """An item as the app writes it: a metadata map of its own, tags in several shapes."""
    styles = [["Boho", "casual"], "Street Style, Goth", ["MINIMAL"], ["preppy", "Y2K"]]
    return {
        "id": f"app-{n}", "userId": f"u{n % 3}", "name": f"Item {n}", "type": "top",
        "style": styles[n % 4], "occasion": ["Office", "Date Night"][n % 2:],
        "mood": ["chill"] if n % 2 else ["Confident", "cozy"], "season": ["all"],
        "metadata": {
            "styleTags": ["Classic"], "occasionTags": ["Everyday"],
            "colorAnalysis": {"dominant": ["navy", "white"], "palette": {"navy": 0.7,
                                                                         "white": 0.3}},
            "naturalDescription": f"A navy top, number {n}",
            "detections": [{"label": "shirt", "box": [0.1, 0.2, 0.5, 0.9]}],
        },
        "createdAt": "2024-03-01T10:00:00Z",
    }


def app_items() -> dict[str, dict[str, Any]]:
    items = {f"app-{n:02d}": app_item(n) for n in range(16)}
    items["no-metadata"] = {"style": ["Boho"], "occasion": ["gym"], "mood": ["happy"]}
    for doc_id, parent in HOSTILE.items():
        items[doc_id] = {"style": ["Casual"], "occasion": ["Work"], "mood": ["calm"],
                         "metadata": parent}
    return items


def app_reads(item: dict[str, Any], facet: str) -> list[str]:
    """The app's outfit filters: metadata.normalized.<facet> when a non-empty list, else
    the raw field, lowercased."""
    metadata = item.get("metadata")
    stored = metadata.get("normalized", {}).get(facet) if isinstance(metadata, dict) else None
    if isinstance(stored, list) and stored:
        return stored
    raw = item.get(facet) or []
    return [str(t).lower() for t in ([raw] if isinstance(raw, str) else raw)]


def without(item: dict[str, Any], path: str) -> dict[str, Any]:
    """A copy of the item without the field at `path`."""
    copy = json.loads(json.dumps(item, default=str))
    *parents, last = path.split(".")
    holder = copy
    for key in parents:
        holder = holder.get(key) if isinstance(holder, dict) else None
    if isinstance(holder, dict):
        holder.pop(last, None)
    return copy


def test_a_run_on_metadata_normalized_feeds_the_apps_read_rule(db: Database) -> None:
    seeded = app_items()
    db.seed(seeded)
    before, times = db.documents(), db.update_times()
    db_env_run = CliRunner().invoke(
        backfill, ["--environment", "production", "--yes", "--json", "--batch-size", "7",
                   "--output-dir", str(db.output_dir)],
        env={**db.env, "BACKFILL_TARGET_FIELD": APP_FIELD}, catch_exceptions=False)
    assert db_env_run.exit_code == 1, db_env_run.output  # the hostile parents are listed
    stats = json.loads(db_env_run.stdout)
    assert stats["target_field"] == APP_FIELD
    assert {e["id"] for e in stats["errors"]} == set(HOSTILE)
    assert {e["error"] for e in stats["errors"]} >= {
        "metadata holds 'legacy', not a map: metadata.normalized not written (the app's "
        "value is left as it is)"}
    assert stats["total_updated"] == len(seeded) - len(HOSTILE)
    after, times_after = db.documents(), db.update_times()
    for doc_id, item in before.items():
        if doc_id in HOSTILE:
            assert after[doc_id] == item and times_after[doc_id] == times[doc_id]
            continue
        assert "normalized" not in after[doc_id]
        assert without(after[doc_id], APP_FIELD) == without(item, APP_FIELD) or (
            doc_id == "no-metadata" and without(after[doc_id], "metadata") == item)
        expected = normalize_item(item)
        for facet in ("style", "occasion", "mood"):
            assert app_reads(after[doc_id], facet) == expected[facet], (doc_id, facet)
        assert {f: after[doc_id]["metadata"]["normalized"][f] for f in FACETS} == expected
    assert set(after["no-metadata"]["metadata"]) == {"normalized"}  # created, holding only it

    # Validation on that field: every item the run could write is valid; a corrupted one
    # is caught.
    checked = db.invoke(validate, ["--all", "--target-field", APP_FIELD, "--json"])
    assert checked.exit_code == 1, checked.output  # the hostile parents have none
    report = json.loads(checked.stdout)
    assert {e["id"] for e in report["invalid_items"]} == set(HOSTILE)
    assert report["invalid_by_reason"] == {"missing": len(HOSTILE)}
    db.client.collection(db.collection).document("app-03").update(
        {"metadata.normalized.style": ["Casual Wear"]})
    checked = db.invoke(validate, ["--all", "--target-field", APP_FIELD, "--json"])
    assert {"id": "app-03", "reasons": ["malformed_facets"]} in json.loads(
        checked.stdout)["invalid_items"]
    db.client.collection(db.collection).document("app-03").update(
        {"metadata.normalized.style": after["app-03"]["metadata"]["normalized"]["style"]})

    # The exact undo restores every item byte for byte, the parent the run created too.
    run_id = stats["run_id"]
    listed = db.invoke(rollback, ["--list-runs"])
    assert run_id in listed.stdout and APP_FIELD in listed.stdout.split(run_id)[1].split("\n")[0]
    undone = db.invoke(rollback, ["--run-id", run_id, "--yes", "--environment", "production"])
    assert undone.exit_code == 0, undone.output
    assert "🏷  Field: metadata.normalized" in undone.stderr
    assert db.documents() == before
    assert all(db.update_times()[h] == times[h] for h in HOSTILE)


def test_remove_everywhere_removes_only_the_target(db: Database) -> None:
    seeded = app_items()
    for doc_id in ("app-00", "app-01"):
        seeded[doc_id]["normalized"] = {"style": ["kept"]}  # a top-level map stays
    db.seed(seeded)
    args = ["--target-field", APP_FIELD, "--yes"]
    assert db.invoke(backfill, args).exit_code == 1  # the hostile parents
    written = db.documents()
    removed = db.invoke(rollback, [*args, "--json"])
    assert removed.exit_code == 0, removed.output
    assert json.loads(removed.stdout)["total_updated"] == len(seeded) - len(HOSTILE)
    for doc_id, item in db.documents().items():
        assert item == without(written[doc_id], APP_FIELD), doc_id
    assert db.documents()["app-00"]["normalized"] == {"style": ["kept"]}


@pytest.mark.parametrize("path", [
    "style", "metadata", "metadata.styleTags", "metadata.occasionTags.x", "season.x",
    "", "a..b", "__name__", "1st", "meta data", "a.b.c.d.e.f.g.h.i", "`x`"])
@pytest.mark.parametrize("tool", [backfill, validate, rollback], ids=["backfill", "validation",
                                                                       "rollback"])
def test_a_bad_target_field_is_exit_2_before_anything_is_read(path: str, tool: Any) -> None:
    # Nothing listens on the database's address: a read would fail with exit 3, not 2.
    env = {"FIRESTORE_EMULATOR_HOST": dead_address(), "GOOGLE_CLOUD_PROJECT": "proj-p"}
    args = ["--target-field", path, "--max-retry-seconds", "1"]
    result = CliRunner().invoke(tool, args if tool is validate else [*args, "--dry-run"],
                                env=env)
    assert result.exit_code == 2, result.output
    message = result.stderr.strip()
    assert message.startswith(f"❌ --target-field {path!r} ")
    if path in ("style", "metadata", "metadata.styleTags", "metadata.occasionTags.x",
                "season.x"):
        assert "overlaps the source field" in message
        assert message.endswith("writing there would replace what the app wrote")
    else:
        assert "is not a field path of plain names joined by dots" in message


def invoke(args: list[str], env: dict[str, str], command: Any = backfill) -> Result:
    return CliRunner().invoke(command, args, env=env, catch_exceptions=False)


def test_resume_keeps_the_runs_target_field(db: Database) -> None:
    db.seed(app_items())
    first = db.invoke(backfill, ["--target-field", APP_FIELD, "--yes", "--job-id", "bf-1",
                                 "--batch-size", "5", "--parallel-reads", "1"])
    assert first.exit_code == 1, first.output  # the hostile parents
    # As a killed run leaves it: still `running` in the ledger, at a checkpoint; the items
    # after it lose their field meanwhile.
    db.client.collection(DEFAULT_LEDGER_COLLECTION).document("bf-1").update(
        {"status": "running", "checkpoint": "app-04"})
    for doc_id in ("app-07", "app-12"):
        db.client.collection(db.collection).document(doc_id).update(
            {"metadata.normalized": DELETE_FIELD})
    refused = db.invoke(backfill, ["--resume", "bf-1", "--target-field", "normalized",
                                   "--yes"])
    assert refused.exit_code == 2
    assert refused.stderr.strip().splitlines()[-1] == (
        "❌ run bf-1 was started with --target-field metadata.normalized; this resume says "
        "normalized: a resume carries the same run on (leave the option out, or start a new "
        "run)")
    resumed = db.invoke(backfill, ["--resume", "bf-1", "--yes"])
    assert resumed.exit_code == 1, resumed.output  # the hostile parents
    assert "🏷  Field: metadata.normalized" in resumed.stderr
    assert all("normalized" in db.documents()[d]["metadata"] for d in ("app-07", "app-12"))
    assert not any("normalized" in item for item in db.documents().values())
    ledger = db.documents(DEFAULT_LEDGER_COLLECTION)["bf-1"]
    assert ledger["target_field"] == APP_FIELD and ledger["status"] == "completed"


# --- Items of the real app's shape: a 700 KB image inside the document ---------------------

def real_items(count: int) -> Iterator[tuple[str, dict[str, Any]]]:
    """As exported from the app's production: a base64 image in the document, a top-level
    `normalized` from the previous script (naive utcnow().isoformat()), a
    metadata.normalized from a later one, raw tags already lowercase."""
    rng = random.Random(7)
    image = "data:image/jpeg;base64," + base64.b64encode(rng.randbytes(525_000)).decode()
    for n in range(count):
        item: dict[str, Any] = {"name": f"Item {n}", "imageUrl": image, "userId": "u1",
                                "style": ["casual"], "occasion": ["everyday"],
                                "mood": ["casual"], "season": ["all"],
                                "metadata": {"styleTags": ["casual"], "colorAnalysis": {
                                    "dominant": ["black"]}}}
        facets = normalize_item(item)
        if n % 2 == 0:  # written by earlier scripts, up to date by the rules
            item["normalized"] = {**facets, "normalized_at": "2025-10-07T22:23:34.573156",
                                  "normalized_version": "1.0"}
            item["metadata"]["normalized"] = {**facets, "normalized_at": "2025-10-09T17:46:05",
                                              "normalized_version": "1.0"}
        else:  # written, then the tags changed
            item["normalized"] = {**facets, "style": ["old"],
                                  "normalized_at": "2025-10-07T22:23:34.573156",
                                  "normalized_version": "1.0"}
        yield f"item{n:03d}", item


@pytest.mark.slow
def test_items_with_an_image_inside_every_tool_with_both_fields(db: Database) -> None:
    count = 60
    items = list(real_items(count))
    for start in range(0, count, 4):  # a request carries at most 4 MiB
        db.seed(items[start:start + 4])
    images = {doc_id: item["imageUrl"] for doc_id, item in db.documents().items()}
    with TcpProxy(db.emulator.host) as proxy:
        env = {**db.env, "FIRESTORE_EMULATOR_HOST": proxy.host}
        out = ["--output-dir", str(db.output_dir)]
        for field in ("normalized", APP_FIELD):
            steps: list[tuple[Any, list[str], int]] = [
                (backfill, ["--dry-run"], 0),
                (backfill, ["--yes"], 0),
                (validate, ["--sample-size", "20"], 0),
                (validate, ["--all"], 0),
                (backfill, ["--yes"], 0),  # everything is up to date now
                (rollback, ["--dry-run"], 0),
            ]
            for command, args, code in steps:
                start = proxy.bytes_received
                result = invoke([*args, "--target-field", field, "--environment",
                                 "production", *out], env, command)
                assert result.exit_code == code, (field, args, result.output)
                # Every read carries a field mask: far less than one image per item.
                assert proxy.bytes_received - start < 1_000_000, (field, args)
            last = json.loads(sorted(db.output_dir.glob("backfill_stats_*.json"))[-1]
                              .read_text())
            assert (last["total_updated"], last["total_skipped"]) == (0, count)
    after = db.documents()
    assert {doc_id: item["imageUrl"] for doc_id, item in after.items()} == images
