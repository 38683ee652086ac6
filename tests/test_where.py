"""--where: a canary on one user's items, then the full run, then the canary's exact undo;
each tool as an operator types it, on the emulator, checked by what the database holds."""

from __future__ import annotations

import json
import os
import re
import signal
from typing import Any

import pytest

from backfill.ledger import DEFAULT_LEDGER_COLLECTION
from backfill.runner import Runner, RunSettings
from backfill.stats import RunStats
from backfill.target_field import TargetField
from backfill.where import narrowed, parse_where
from normalizer import FACETS, normalize_item
from run_backfill_production import main as backfill
from tests.conftest import Database
from tests.helpers import (
    ROLLBACK,
    SCRIPT,
    VALIDATION,
    VOCABULARY,
    control,
    dead_address,
    start,
    wait_for,
)
from tools.sample_data import make_wardrobe
from wardrobe.jobs import BackfillJob, RollbackJob


def seed_users(db: Database, count: int = 600) -> dict[str, str]:
    """Items of ten users, u0 to u9; returns each item's user."""
    items = [(doc_id, {**item, "userId": f"u{i % 10}"})
             for i, (doc_id, item) in enumerate(make_wardrobe(count))]
    db.seed(items)
    return {doc_id: item["userId"] for doc_id, item in items}


def normalized_ids(db: Database) -> set[str]:
    return {doc_id for doc_id, item in db.documents().items()
            if isinstance(item.get("normalized"), dict)}


@pytest.mark.slow
def test_a_canary_on_one_user_then_the_full_run_then_the_canary_s_exact_undo(
        db: Database) -> None:
    users = seed_users(db)
    u5 = {doc_id for doc_id, user in users.items() if user == "u5"}
    seeded = db.documents()
    canary = db.run_tool(SCRIPT, ["--yes", "--json", "--job-id", "canary",
                                    "--where", "userId=u5"])
    assert canary.returncode == 0, canary.stderr
    assert f"📊 Items in wardrobe where userId = u5: {len(u5)}" in canary.stderr
    assert normalized_ids(db) == u5
    assert json.loads(canary.stdout)["total_updated"] == len(u5)
    assert db.documents(DEFAULT_LEDGER_COLLECTION)["canary"]["settings"]["where"] == [
        "userId=u5"]

    checked = db.run_tool(VALIDATION, ["--where", "userId=u5", "--all"])
    assert checked.returncode == 0, checked.stderr
    assert f"📊 Coverage: {len(u5)} of {len(u5)} items where userId = u5 carry a " \
           "`normalized` map (100.0%)" in checked.stderr
    sampled = db.run_tool(VALIDATION, ["--where", "userId=u5", "--sample-size", "20"])
    assert sampled.returncode == 0, sampled.stderr
    assert "Checked:            20 (sample)" in sampled.stdout
    whole = db.run_tool(VALIDATION, ["--all"])
    assert whole.returncode == 1 and f"{len(u5)} of 600 items carry" in whole.stderr

    full = db.run_tool(SCRIPT, ["--yes", "--json"])
    assert full.returncode == 0, full.stderr
    stats = json.loads(full.stdout)
    assert (stats["total_updated"], stats["total_skipped"]) == (600 - len(u5), len(u5))
    db.assert_normalized()

    undo = db.run_tool(ROLLBACK, ["--yes", "--run-id", "canary"])
    assert undo.returncode == 0, undo.stderr
    assert normalized_ids(db) == set(users) - u5
    now = db.documents()
    assert {doc_id: now[doc_id] for doc_id in u5} == {doc_id: seeded[doc_id] for doc_id in u5}


@pytest.mark.paced  # its first run's own pace, which its resume carries on
@pytest.mark.slow
def test_a_resume_keeps_the_subset_and_refuses_another(db: Database) -> None:
    users = seed_users(db, 1200)
    u3 = {doc_id for doc_id, user in users.items() if user == "u3"}
    process, log = start(db, db.env, "--job-id", "bf-w", "--where", "userId=u3",
                         "--batch-size", "10", "--max-writes-per-second", "20")
    wait_for(log, "Batch 1:")
    process.send_signal(signal.SIGINT)
    assert process.wait(timeout=60) == 130, log.read_text()
    assert normalized_ids(db) < u3
    shown = control(db, "status", "bf-w")
    assert shown.stdout.startswith("Run bf-w: backfill of wardrobe where userId=u3, "
                                   "interrupted, ")
    other = db.run_tool(SCRIPT, ["--yes", "--resume", "bf-w", "--where", "userId=u4"])
    assert other.returncode == 2
    assert ("❌ run bf-w was started with --where userId=u3; this resume says userId=u4: a "
            "resume carries the same run on") in other.stderr
    resumed = db.run_tool(SCRIPT, ["--yes", "--resume", "bf-w"])
    assert resumed.returncode == 0, resumed.stderr
    assert f"📊 Items in wardrobe where userId = u3: {len(u3)}" in resumed.stderr
    assert normalized_ids(db) == u3


@pytest.mark.slow
def test_typed_values_nested_paths_and_several_conditions(db: Database) -> None:
    db.seed([("a", {"style": ["goth"], "count": 3, "meta": {"owner": "u1"}}),
             ("b", {"style": ["goth"], "count": "3", "meta": {"owner": "u1"}}),
             ("c", {"style": ["goth"], "count": 3, "meta": {"owner": "u2"}}),
             ("d", {"style": ["goth"], "count": 3.0, "active": True}),
             ("e", {"style": ["goth"], "count": 1, "active": True})])
    done = db.run_tool(SCRIPT, ["--yes", "--where", "count:=3", "--where",
                                  "meta.owner=u1"])
    assert done.returncode == 0, done.stderr
    assert "📊 Items in wardrobe where count = 3 and meta.owner = u1: 1" in done.stderr
    assert normalized_ids(db) == {"a"}
    done = db.run_tool(SCRIPT, ["--yes", "--where", "active:=true"])
    assert done.returncode == 0, done.stderr
    assert normalized_ids(db) == {"a", "d", "e"}
    removed = db.run_tool(ROLLBACK, ["--yes", "--where", "count:=3"])
    assert removed.returncode == 0, removed.stderr
    assert normalized_ids(db) == {"e"}
    nobody = db.run_tool(SCRIPT, ["--yes", "--where", "userId=nobody"])
    assert nobody.returncode == 0, nobody.stderr
    assert "⚠️  No item where userId = nobody. A value is compared as a string" in \
        nobody.stderr
    assert not [e for e in db.documents(DEFAULT_LEDGER_COLLECTION).values()
                if e.get("settings", {}).get("where") == ["userId=nobody"]]


@pytest.mark.slow
def test_the_vocabulary_report_and_a_sharded_run_on_a_subset(db: Database) -> None:
    users = seed_users(db)
    u7 = {doc_id for doc_id, user in users.items() if user == "u7"}
    report = db.run_tool(VOCABULARY, ["--where", "userId=u7"])
    assert report.returncode == 0, report.stderr
    assert f"Vocabulary of {len(u7)} items of wardrobe" in report.stdout
    tasks = [start(db, db.env, "--job-id", "job-w", "--shard", f"{i}/2", "--where",
                   "userId=u7") for i in range(2)]
    for process, log in tasks:
        assert process.wait(timeout=60) == 0, log.read_text()
    assert normalized_ids(db) == u7
    shards = sorted(int(re.search(r"IDs from .*: (\d+) items", log.read_text()).group(1))
                    for _, log in tasks)
    assert sum(shards) == len(u7)
    other = start(db, db.env, "--job-id", "job-w", "--shard", "0/2")
    assert other[0].wait(timeout=60) == 2
    assert "run job-w has --where ['userId=u7'], this task []" in other[1].read_text()
    for doc_id, item in db.documents().items():
        if doc_id in u7:
            assert {f: item["normalized"][f] for f in FACETS} == normalize_item(item)


@pytest.mark.parametrize("where, problem", [
    ("userId", "there is no `=`"),
    ("=u1", "the field is empty"),
    (":=3", "the field is empty"),
    ("a..b=1", "'a..b' is not a field path of plain names"),
    ("user id=1", "'user id' is not a field path of plain names"),
    ("__name__=x", "'__name__' is reserved by Firestore"),
    ("count:=three", "'three' is not JSON"),
])
@pytest.mark.parametrize("script", [SCRIPT, ROLLBACK, VALIDATION, VOCABULARY])
@pytest.mark.slow
def test_a_bad_where_is_exit_2_before_anything_is_read(
        db: Database, script: str, where: str, problem: str) -> None:
    env = {**db.env, "FIRESTORE_EMULATOR_HOST": dead_address()}
    done = db.run_tool(script, ["--yes"] * (script in (SCRIPT, ROLLBACK)) +
                         ["--where", where], env=env)
    assert done.returncode == 2, done.stderr
    assert f"❌ --where {where!r}: {problem}" in done.stderr


class AppMovesItems:
    """Wraps a tool's job: just after the run read an item, and before it writes it, the
    app moves the item to another user (out of the run's --where)."""

    def __init__(self, job: Any, db: Database, ids: set[str]) -> None:
        self.job, self.db, self.ids = job, db, ids
        self.tool, self.target, self.journaled = job.tool, job.target, job.journaled
        self.read_fields = job.read_fields

    def decide(self, doc_id: str, data: dict[str, Any]) -> Any:
        if doc_id in self.ids:
            self.ids.discard(doc_id)
            self.db.client.collection(self.db.collection).document(doc_id).update(
                {"userId": "u2"})
        return self.job.decide(doc_id, data)

    def page_source(self, *args: Any) -> Any:
        return self.job.page_source(*args)


@pytest.mark.parametrize("tool", ["backfill", "rollback"])
def test_an_item_the_app_moves_out_of_the_subset_mid_run_is_not_written(
        db: Database, tool: str) -> None:
    """The filter is checked again when an item is read again after a conflict: an item
    that is no longer the canary's is not the run's to write (issue 31, case 1)."""
    users = seed_users(db, 200)
    u1 = sorted(doc_id for doc_id, user in users.items() if user == "u1")
    if tool == "rollback":  # every item carries the field the rollback removes
        assert db.invoke(backfill, ["--max-writes-per-second", "0"]).exit_code == 0
    seeded = db.documents()
    moved = set(u1[::2])
    job = BackfillJob(TargetField("normalized")) if tool == "backfill" else \
        RollbackJob(TargetField("normalized"))
    stats = RunStats(run_id="r", tool=tool, environment="development", dry_run=False,
                     project=db.project, database="(default)", collection=db.collection)
    Runner(db.client, db.collection, AppMovesItems(job, db, set(moved)),
           RunSettings(batch_size=7, where=parse_where(["userId=u1"]))).run(
        stats, lambda _: None)
    after = db.documents()
    for doc_id, item in after.items():
        if doc_id in moved:  # the app's move stays, and nothing else changed
            assert item == {**seeded[doc_id], "userId": "u2"}, doc_id
        elif doc_id in u1:
            assert ("normalized" in item) is (tool == "backfill"), doc_id
        else:
            assert item == seeded[doc_id], doc_id
    assert (stats.conflicts_retried, stats.left_subset, stats.updated) == (
        len(moved), len(moved), len(u1) - len(moved))


@pytest.mark.parametrize("where", [
    "userId=" + "x" * 1499,  # 1,500 bytes as stored: the largest a query takes
    "userId:=" + json.dumps(list(range(187))),  # 1,496 bytes
    'userId:={"__x":1,"x__":2,"_x_":3}',  # not of the form __...__
])
def test_a_where_value_at_the_limits_is_taken_and_queried(db: Database, where: str) -> None:
    """What the checks let through, the database answers (no InvalidArgument)."""
    query = narrowed(db.client.collection(db.collection), parse_where([where]))
    assert list(query.limit(1).stream()) == []


UNICODE = "it holds text that is not valid Unicode (a lone surrogate such as \\ud800, or a " \
          "byte that is not UTF-8)"


@pytest.mark.parametrize("where, problem", [
    ("count:=99999999999999999999", "99999999999999999999 is out of Firestore's integer "
     "range (a 64-bit integer, -9223372036854775808 to 9223372036854775807)"),
    ('userId:="\\ud800"', UNICODE),
    (os.fsdecode(b"userId=caf\xe9"), UNICODE),  # Latin-1 typed in a UTF-8 console
    ('userId:={"__x__":1}', "the map key '__x__' is reserved by Firestore (keys of the "
     "form __...__)"),
    ('userId:=[1,{"a":{"__id__":2}}]', "the map key '__id__' is reserved by Firestore "
     "(keys of the form __...__)"),
    ("userId:=" + json.dumps(list(range(300))), "the value is too large to be used in a "
     "query (2,400 bytes as Firestore's index stores it; at most 1,500)"),
    ("userId=" + "é" * 750, "the value is too large to be used in a query (1,501 bytes "
     "as Firestore's index stores it; at most 1,500)"),
])
@pytest.mark.parametrize("script", [SCRIPT, ROLLBACK, VALIDATION, VOCABULARY])
@pytest.mark.slow
def test_a_where_value_that_is_no_firestore_value_is_one_line_and_exit_2(
        db: Database, script: str, where: str, problem: str) -> None:
    """Before: about 50 lines of traceback (ValueError: Value out of range,
    UnicodeEncodeError) and exit 1, once the tool had begun to read."""
    env = {**db.env, "FIRESTORE_EMULATOR_HOST": dead_address()}
    done = db.run_tool(script, ["--yes"] * (script in (SCRIPT, ROLLBACK)) +
                         ["--where", where], env=env)
    assert (done.returncode, done.stderr.strip()) == (2, (
        f"❌ --where {where!r}: {problem} (FIELD=VALUE, or FIELD:=JSON for a typed value)"))
