"""Any backfill as a Task (backfill.task), through `python3 -m backfill`, on the emulator:
the examples' dry run, run, re-run, validation and exact undo; a task that races the app;
bad tasks refused in one line."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from google.cloud import firestore

from backfill import Task
from backfill.commands.task import run_task
from backfill.errors import ConfigurationError
from tests.conftest import REPO, Database
from tests.helpers import Backend, caller_free, start, wait_for
from tools.sample_data import make_wardrobe

EXAMPLES = REPO / "examples"
USERS = {
    "u1": {"email": "Ann@Example.COM", "name": "Ann", "settings": {"theme": "dark"}},
    "u2": {"email": "bob@example.com", "emailLower": "bob@example.com", "name": "Bob",
           "settings": {"plan": "pro"}},
    "u3": {"name": "No Email"},
    "u4": {"email": "CAROL@x.org", "emailLower": "stale", "name": "Carol"},
}


def backfill(db: Database, args: list[str], cwd: Path = EXAMPLES,
             input: str | None = None) -> subprocess.CompletedProcess[str]:
    """`python3 -m backfill ARGS` as typed in the folder of the task's module."""
    env = {**db.env, "PYTHONPATH": str(REPO)}
    return subprocess.run([sys.executable, "-m", "backfill", *args, "--output-dir",
                           str(db.output_dir)], cwd=cwd, env=env, input=input,
                          capture_output=True, text=True, timeout=120)


def test_a_task_runs_dry_then_for_real_then_again_and_is_undone_exactly(db: Database) -> None:
    db.seed(USERS, collection="users")
    before = db.documents("users")
    dry = backfill(db, ["run", "lowercase_emails:LowercaseEmails", "--dry-run"])
    assert dry.returncode == 0, dry.stderr
    assert "Would update" in dry.stderr and "emailLower" in dry.stderr
    assert db.documents("users") == before  # a dry run writes nothing
    real = backfill(db, ["run", "lowercase_emails:LowercaseEmails", "--yes"])
    assert real.returncode == 0, real.stderr
    after = db.documents("users")
    assert after["u1"] == {**before["u1"], "emailLower": "ann@example.com"}
    assert after["u4"] == {**before["u4"], "emailLower": "carol@x.org"}
    assert after["u2"] == before["u2"] and after["u3"] == before["u3"]
    stats = json.loads(db.stats_files("task_stats")[-1].read_text())
    assert (stats["total_updated"], stats["total_skipped"]) == (2, 2)
    valid = backfill(db, ["validate", "lowercase_emails:LowercaseEmails"])
    assert valid.returncode == 0, valid.stderr
    assert "0 of 4 sampled items still need work" in valid.stdout
    again = backfill(db, ["run", "lowercase_emails:LowercaseEmails", "--yes"])
    assert again.returncode == 0 and db.documents("users") == after
    assert json.loads(db.stats_files("task_stats")[-1].read_text())["total_updated"] == 0
    undo = backfill(db, ["rollback", "--run-id", stats["run_id"], "--collection", "users",
                         "--yes"])
    assert undo.returncode == 0, undo.stderr
    assert db.documents("users") == before  # u4's stale value back, u1's field gone


def test_validation_counts_the_items_a_task_would_still_change(db: Database) -> None:
    db.seed(USERS, collection="users")
    result = backfill(db, ["validate", "lowercase_emails:LowercaseEmails",
                           "--sample-size", "10"])
    assert result.returncode == 1
    assert "2 of 4 sampled items still need work" in result.stdout
    assert "u1: would write emailLower" in result.stderr


def test_deleted_nested_fields_come_back_with_their_values_on_undo(db: Database) -> None:
    items = {"a": {"legacyColor": "red", "metadata": {"oldTags": ["x"], "keep": 1}},
             "b": {"metadata": {"oldTags": {"deep": True}}},
             "c": {"style": "boho"}}
    db.seed(items)
    dry = backfill(db, ["run", "drop_legacy_fields:DropLegacyFields", "--dry-run"])
    assert dry.returncode == 0 and db.documents() == items, dry.stderr
    assert 'Would update a: {"legacyColor": "<deleted>", "metadata.oldTags": "<deleted>"}' \
        in dry.stderr
    run = backfill(db, ["run", "drop_legacy_fields:DropLegacyFields", "--yes"])
    assert run.returncode == 0, run.stderr
    done = {"a": {"metadata": {"keep": 1}}, "b": {"metadata": {}}, "c": {"style": "boho"}}
    assert db.documents() == done
    stats = json.loads(db.stats_files("task_stats")[-1].read_text())
    again = backfill(db, ["run", "drop_legacy_fields:DropLegacyFields", "--yes"])
    assert again.returncode == 0 and db.documents() == done, again.stderr
    undo = backfill(db, ["rollback", "--run-id", stats["run_id"], "--yes"])
    assert undo.returncode == 0, undo.stderr
    assert db.documents() == items


def test_a_task_reads_another_collection_and_sets_several_fields(db: Database) -> None:
    db.seed(USERS, collection="users")
    db.seed({"i1": {"userId": "u1"}, "i2": {"userId": "u1"}, "i3": {"userId": "u2"}})
    dry = backfill(db, ["run", "fill_plan_defaults:FillPlanDefaults", "--dry-run"])
    assert dry.returncode == 0 and db.documents("users") == USERS, dry.stderr
    assert "Not in it: what the task itself reads through self.client" in dry.stderr
    run = backfill(db, ["run", "fill_plan_defaults:FillPlanDefaults", "--yes"])
    assert run.returncode == 0, run.stderr
    users = db.documents("users")
    assert users["u1"] == {**USERS["u1"], "settings": {"theme": "dark", "plan": "free"},
                           "itemCount": 2}
    assert users["u2"] == {**USERS["u2"], "itemCount": 1}  # its plan kept
    assert users["u3"] == {**USERS["u3"], "settings": {"plan": "free"}, "itemCount": 0}
    run_id = json.loads(db.stats_files("task_stats")[-1].read_text())["run_id"]
    again = backfill(db, ["run", "fill_plan_defaults:FillPlanDefaults", "--yes"])
    assert again.returncode == 0 and db.documents("users") == users, again.stderr
    undo = backfill(db, ["rollback", "--run-id", run_id, "--collection", "users", "--yes"])
    assert undo.returncode == 0, undo.stderr
    assert db.documents("users") == USERS  # u3's settings map, made by the run, gone too


GUIDE = REPO / "docs" / "tasks.md"


def test_the_guides_task_runs_as_the_guide_says_in_a_folder_of_its_own(
        db: Database, tmp_path: Path) -> None:
    """The guide's example task and commands, as a reader copies them into a new folder."""
    code = re.search(r"```python\n(# migrations/user_ids.py\n.*?)```", GUIDE.read_text(),
                     re.DOTALL)
    assert code is not None
    (tmp_path / "migrations").mkdir()
    (tmp_path / "migrations" / "user_ids.py").write_text(code.group(1))
    items = {"a": {"uid": "u1", "style": "boho"}, "b": {"ownerId": "u2", "userId": "old"},
             "c": {"userId": "u3"}, "d": {"user_id": "u4", "userId": "u4"}}
    db.seed(items)
    spec = "migrations.user_ids:UnifyUserId"
    dry = backfill(db, ["run", spec, "--dry-run"], cwd=tmp_path)
    assert dry.returncode == 0 and db.documents() == items, dry.stderr
    run = backfill(db, ["run", spec, "--yes"], cwd=tmp_path)
    assert run.returncode == 0, run.stderr
    done = db.documents()
    assert done == {"a": {**items["a"], "userId": "u1"}, "b": {**items["b"], "userId": "u2"},
                    "c": items["c"], "d": items["d"]}
    valid = backfill(db, ["validate", spec], cwd=tmp_path)
    assert valid.returncode == 0 and "0 of 4 sampled items still need work" in valid.stdout
    again = backfill(db, ["run", spec, "--yes"], cwd=tmp_path)
    assert again.returncode == 0 and db.documents() == done, again.stderr
    run_id = next(stats["run_id"] for stats in map(json.loads, (
        path.read_text() for path in db.stats_files("task_stats"))) if not stats["dry_run"])
    undo = backfill(db, ["rollback", "--run-id", run_id, "--yes"], cwd=tmp_path)
    assert undo.returncode == 0, undo.stderr
    assert db.documents() == items


RACING_TASK = '''
from backfill import Task

class Racing(Task):
    """Lower-cases emails; the first time it meets u1, the app changes u1's email first."""
    collection = "users"
    reads = ("email", "emailLower")
    raced = set()

    def changes(self, doc_id, data):
        if doc_id == "u1" and not Racing.raced:
            Racing.raced.add(doc_id)
            self.client.collection("users").document("u1").update({"email": "New@Mail.io"})
        if isinstance(data.get("email"), str) and data.get("emailLower") != data["email"].lower():
            return {"emailLower": data["email"].lower()}
        return None
'''


def test_an_edit_the_app_makes_during_the_run_is_never_lost(db: Database,
                                                          tmp_path: Path) -> None:
    (tmp_path / "racing.py").write_text(RACING_TASK)
    db.seed(USERS, collection="users")
    run = backfill(db, ["run", "racing:Racing", "--yes"], cwd=tmp_path)
    assert run.returncode == 0, run.stderr
    u1 = db.documents("users")["u1"]
    assert (u1["email"], u1["emailLower"]) == ("New@Mail.io", "new@mail.io")
    stats = json.loads(db.stats_files("task_stats")[-1].read_text())
    assert stats["conflicts_retried"] == 1


BAD_TASKS = '''
from backfill import Task

class NotATask:
    pass

class NoCollection(Task):
    def changes(self, doc_id, data):
        return None

class ReturnsAList(Task):
    collection = "users"
    def changes(self, doc_id, data):
        return ["email"] if doc_id == "u1" else None

class BadPath(Task):
    collection = "users"
    def changes(self, doc_id, data):
        return {"a..b": 1} if doc_id == "u2" else None
'''


@pytest.mark.parametrize(("spec", "message"), [
    ("missing_module:X", "task missing_module:X: module 'missing_module' could not be "
                         "imported: ModuleNotFoundError: No module named 'missing_module'"),
    ("bad:Nowhere", "task bad:Nowhere: module bad has no class 'Nowhere'"),
    ("bad:NotATask", "task bad:NotATask: module bad has a non-Task class 'NotATask'"),
    ("bad:NoCollection", "task bad:NoCollection: no collection"),
    ("bad", "task 'bad' is not MODULE:CLASS"),
])
def test_a_task_that_cannot_be_loaded_is_one_line_and_exit_2(
        db: Database, tmp_path: Path, spec: str, message: str) -> None:
    (tmp_path / "bad.py").write_text(BAD_TASKS)
    result = backfill(db, ["run", spec, "--dry-run"], cwd=tmp_path)
    assert result.returncode == 2
    assert message in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1


def test_a_task_that_returns_no_mapping_or_a_bad_path_is_an_item_error(
        db: Database, tmp_path: Path) -> None:
    (tmp_path / "bad.py").write_text(BAD_TASKS)
    db.seed(USERS, collection="users")
    before = db.documents("users")
    for spec, doc_id, why in [("bad:ReturnsAList", "u1", "changes() returned list, not a "
                                                         "mapping or None"),
                              ("bad:BadPath", "u2", "changes() returned a bad path")]:
        result = backfill(db, ["run", spec, "--yes"], cwd=tmp_path)
        assert result.returncode == 1, result.stderr
        stats = json.loads(db.stats_files("task_stats")[-1].read_text())
        assert stats["total_processed"] == 4
        assert [error["id"] for error in stats["errors"]] == [doc_id]
        assert why in stats["errors"][0]["error"]
    assert db.documents("users") == before


def test_a_resume_with_another_task_is_refused(db: Database) -> None:
    db.seed(USERS, collection="users")
    first = backfill(db, ["run", "lowercase_emails:LowercaseEmails", "--yes", "--limit", "1"])
    assert first.returncode == 0, first.stderr
    run_id = json.loads(db.stats_files("task_stats")[-1].read_text())["run_id"]
    db.client.collection("_backfill_runs").document(run_id).update({"status": "interrupted"})
    other = backfill(db, ["run", "fill_plan_defaults:FillPlanDefaults", "--yes",
                          "--resume", run_id])
    assert other.returncode == 2
    assert "lowercase_emails:LowercaseEmails" in other.stderr




@pytest.mark.slow
def test_a_task_and_the_wardrobe_backfill_never_write_at_once(db: Database,
                                                              backend: Backend) -> None:
    """One writer per collection, across tools: the wardrobe backfill, held at its gate,
    keeps the lease; a task on `wardrobe` is refused, and writes nothing."""
    db.seed(make_wardrobe(50))
    db.seed({"old": {"legacyColor": "red"}})
    seeded = db.update_times()
    backend.mode = "failing"
    first, log = start(db, db.env, "--throttle-url", backend.url, "--throttle-interval", "0.1")
    wait_for(log, "⏸  Throttled: ")
    second = backfill(db, ["run", "drop_legacy_fields:DropLegacyFields", "--yes"])
    assert second.returncode == 2, second.stderr
    assert re.search(r"❌ collection 'wardrobe' is being written by run backfill-\S+ ",
                     second.stderr.strip().splitlines()[-1])
    assert db.update_times() == seeded
    assert first.poll() is None, log.read_text()
    first.kill()
    first.wait()


class TitleNames(Task):
    """Names in title case (a task defined where a test or a scheduled job can use it)."""

    collection = "users"
    reads = ("name",)

    def changes(self, doc_id: str, data: dict[str, Any]) -> dict[str, Any] | None:
        name = data.get("name")
        return {"name": name.title()} if isinstance(name, str) and name != name.title() \
            else None


def test_a_task_runs_from_python_and_returns_its_stats(db: Database,
                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    db.seed({"a": {"name": "ann lee"}, "b": {"name": "Bob"}}, collection="users")
    for name, value in db.env.items():
        monkeypatch.setenv(name, value)
    dry = run_task(TitleNames, dry_run=True, output_dir=db.output_dir)
    assert (dry.would_update, dry.updated, dry.status) == (1, 0, "completed")
    assert db.documents("users")["a"]["name"] == "ann lee"
    real = run_task(TitleNames, output_dir=db.output_dir)
    assert (real.updated, real.skipped, real.status) == (1, 1, "completed")
    assert db.documents("users")["a"]["name"] == "Ann Lee"
    with pytest.raises(ConfigurationError, match="is not MODULE:CLASS"):
        run_task("no-colon", output_dir=db.output_dir)


EDGE_TASKS = '''
import datetime
from backfill import DELETE_FIELD, SERVER_TIMESTAMP, Task
from google.cloud.firestore_v1 import Increment

class DeleteUnread(Task):
    collection = "things"
    reads = ("name",)
    def changes(self, doc_id, data):
        return {"legacy": DELETE_FIELD, "meta.old": DELETE_FIELD}

class Stamp(Task):
    collection = "things"
    reads = ("title",)
    def changes(self, doc_id, data):
        return {"updatedAt": SERVER_TIMESTAMP} if doc_id == "a" else None

class Typed(Task):
    collection = "things"
    def changes(self, doc_id, data):
        return {"since": datetime.datetime(2020, 1, 1, tzinfo=datetime.timezone.utc),
                "owner": self.client.collection("users").document(doc_id)}

class Unstorable(Task):
    collection = "things"
    def changes(self, doc_id, data):
        return {"v": {"a": object(), "b": {1: "x"}, "c": [[1]], "d": {"e": DELETE_FIELD},
                      "f": Increment(1)}[doc_id]} if doc_id != "ok" else {"v": 1}

class Exits(Task):
    collection = "things"
    def changes(self, doc_id, data):
        raise SystemExit(0)

class DeepParent(Task):
    collection = "things"
    def changes(self, doc_id, data):
        return {"x.y.z": 1}

class NeedsArguments(Task):
    collection = "things"
    def __init__(self, region):
        self.region = region
    def changes(self, doc_id, data):
        return None

class NoChanges(Task):
    collection = "things"

class RacingOutside(Task):
    """Reads only email, writes emailLower; the app changes u1's email first, once."""
    collection = "things"
    reads = ("email",)
    raced = set()
    def changes(self, doc_id, data):
        if doc_id == "u1" and not RacingOutside.raced:
            RacingOutside.raced.add(doc_id)
            self.client.collection("things").document("u1").update({"email": "New@Mail.io"})
        return {"emailLower": data["email"].lower()}

class Same(Task):
    collection = "things"
    reads = ("name",)
    def changes(self, doc_id, data):
        return {"name": data["name"]}

class DeleteTwoLarge(Task):
    collection = "things"
    reads = ("n",)
    def changes(self, doc_id, data):
        return {"big1": DELETE_FIELD, "big2": DELETE_FIELD}

class DeleteUnderString(Task):
    collection = "things"
    def changes(self, doc_id, data):
        return {"meta.a.b": DELETE_FIELD}

class Siblings(Task):
    collection = "things"
    def changes(self, doc_id, data):
        return {"made.b": 1, "made.c": 2}
'''


def _edge(db: Database, tmp_path: Path, args: list[str]) -> subprocess.CompletedProcess[str]:
    (tmp_path / "edge.py").write_text(EDGE_TASKS)
    return backfill(db, args, cwd=tmp_path)


def _last_run_id(db: Database) -> str:
    return str(next(stats["run_id"] for stats in map(json.loads, (
        path.read_text() for path in reversed(db.stats_files("task_stats"))))
        if not stats["dry_run"]))


def test_a_delete_of_fields_the_task_does_not_read_is_written_and_undone(
        db: Database, tmp_path: Path) -> None:
    items = {"a": {"name": "n", "legacy": "L", "meta": {"old": 1, "keep": 2}},
             "b": {"name": "m"}}
    db.seed(items, collection="things")
    run = _edge(db, tmp_path, ["run", "edge:DeleteUnread", "--yes"])
    assert run.returncode == 0, run.stderr
    assert db.documents("things") == {"a": {"name": "n", "meta": {"keep": 2}},
                                      "b": {"name": "m"}}
    assert json.loads(db.stats_files("task_stats")[-1].read_text())["total_updated"] == 1
    undo = _edge(db, tmp_path, ["rollback", "--run-id", _last_run_id(db), "--yes"])
    assert undo.returncode == 0, undo.stderr
    assert db.documents("things") == items


def test_a_server_time_is_undone_only_where_it_is_still_the_runs(
        db: Database, tmp_path: Path) -> None:
    old = datetime(2019, 1, 1, tzinfo=UTC)
    db.seed({"a": {"title": "t", "updatedAt": old}}, collection="things")
    run = _edge(db, tmp_path, ["run", "edge:Stamp", "--yes"])
    assert run.returncode == 0, run.stderr
    assert db.documents("things")["a"]["updatedAt"] > old
    run_id = _last_run_id(db)
    ref = db.client.collection("things").document("a")
    ref.update({"title": "edited"})  # another field: the run's time is still there
    undone = _edge(db, tmp_path, ["rollback", "--run-id", run_id, "--yes"])
    assert undone.returncode == 0, undone.stderr
    assert db.documents("things")["a"] == {"title": "edited", "updatedAt": old}
    again = _edge(db, tmp_path, ["run", "edge:Stamp", "--yes"])
    assert again.returncode == 0, again.stderr
    ref.update({"updatedAt": firestore.SERVER_TIMESTAMP})  # the app's own time, later
    apps = db.documents("things")["a"]["updatedAt"]
    kept = _edge(db, tmp_path, ["rollback", "--run-id", _last_run_id(db), "--yes"])
    assert kept.returncode == 1
    errors = json.loads(db.stats_files("rollback_stats")[-1].read_text())["errors"]
    assert errors == [{"id": "a", "error": "updatedAt changed after the run; left as is"}]
    assert db.documents("things")["a"]["updatedAt"] == apps


def test_times_and_references_read_back_as_written_so_a_re_run_writes_nothing(
        db: Database, tmp_path: Path) -> None:
    db.seed({"a": {"n": 1}}, collection="things")
    first = _edge(db, tmp_path, ["run", "edge:Typed", "--yes"])
    assert first.returncode == 0, first.stderr
    run_id = _last_run_id(db)
    again = _edge(db, tmp_path, ["run", "edge:Typed", "--yes"])
    assert again.returncode == 0, again.stderr
    assert json.loads(db.stats_files("task_stats")[-1].read_text())["total_updated"] == 0
    undo = _edge(db, tmp_path, ["rollback", "--run-id", run_id, "--yes"])
    assert undo.returncode == 0, undo.stderr
    assert db.documents("things") == {"a": {"n": 1}}


def test_a_value_firestore_cannot_store_is_an_item_error_and_the_run_goes_on(
        db: Database, tmp_path: Path) -> None:
    ids = ["a", "b", "c", "d", "f", "ok"]
    db.seed({doc_id: {"n": 1} for doc_id in ids}, collection="things")
    run = _edge(db, tmp_path, ["run", "edge:Unstorable", "--yes"])
    assert run.returncode == 1, run.stderr
    stats = json.loads(db.stats_files("task_stats")[-1].read_text())
    assert sorted(error["id"] for error in stats["errors"]) == ["a", "b", "c", "d", "f"]
    assert stats["total_updated"] == 1 and stats["status"] == "completed"
    assert db.documents("things")["ok"] == {"n": 1, "v": 1}
    assert "Traceback" not in run.stderr


def test_a_task_that_exits_is_an_item_error_not_a_silent_end(db: Database,
                                                             tmp_path: Path) -> None:
    db.seed({"a": {"n": 1}}, collection="things")
    run = _edge(db, tmp_path, ["run", "edge:Exits", "--yes"])
    assert run.returncode == 1, run.stderr
    errors = json.loads(db.stats_files("task_stats")[-1].read_text())["errors"]
    assert errors == [{"id": "a", "error": "changes() raised SystemExit: SystemExit(0)"}]


def test_the_undo_removes_the_maps_the_run_made_that_hold_nothing_else(
        db: Database, tmp_path: Path) -> None:
    db.seed({"a": {"n": 1}}, collection="things")
    run = _edge(db, tmp_path, ["run", "edge:DeepParent", "--yes"])
    assert run.returncode == 0, run.stderr
    db.client.collection("things").document("a").update({"x.other": 2})  # the app's
    undo = _edge(db, tmp_path, ["rollback", "--run-id", _last_run_id(db), "--yes"])
    assert undo.returncode == 0, undo.stderr
    assert db.documents("things") == {"a": {"n": 1, "x": {"other": 2}}}


@pytest.mark.parametrize(("spec", "message"), [
    ("edge:NeedsArguments", "task edge:NeedsArguments: NeedsArguments() failed: TypeError"),
    ("edge:NoChanges", "task edge:NoChanges: no changes(self, doc_id, data) method"),
])
def test_a_task_that_cannot_be_made_is_one_line_and_exit_2(
        db: Database, tmp_path: Path, spec: str, message: str) -> None:
    result = _edge(db, tmp_path, ["run", spec, "--dry-run"])
    assert result.returncode == 2
    assert message in result.stderr and len(result.stderr.strip().splitlines()) == 1


def test_validating_nothing_is_refused_and_json_is_a_report(db: Database) -> None:
    empty = backfill(db, ["validate", "lowercase_emails:LowercaseEmails"])
    assert empty.returncode == 2
    assert empty.stderr.strip().splitlines()[-1] == (
        f"❌ Collection 'users' is empty or does not exist in project {db.project}, database "
        "(default). Collections there: (none)")
    db.seed(USERS, collection="users")
    report = backfill(db, ["validate", "lowercase_emails:LowercaseEmails", "--json"])
    assert report.returncode == 1
    shown = json.loads(report.stdout)
    assert (shown["sampled"], shown["need_work"]) == (4, 2)
    assert {item["id"] for item in shown["items"]} == {"u1", "u4"}


@pytest.mark.slow
def test_the_guides_own_test_of_its_task_passes_with_the_plugin(tmp_path: Path) -> None:
    """The guide's task, its conftest and its test, as a reader copies them into a folder
    of their own: the plugin starts an emulator, run_task runs the task there."""
    blocks = re.findall(r"```python\n(.*?)```", GUIDE.read_text(), re.DOTALL)
    task = next(block for block in blocks if block.startswith("# migrations/user_ids.py"))
    conftest = next(block for block in blocks if block.startswith("pytest_plugins"))
    test = next(block for block in blocks if "def test_" in block)
    (tmp_path / "migrations").mkdir()
    (tmp_path / "migrations" / "user_ids.py").write_text(task)
    (tmp_path / "conftest.py").write_text(conftest)
    (tmp_path / "test_mine.py").write_text(test)
    result = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider",
                             "-p", "no:xdist", "test_mine.py"], cwd=tmp_path,
                            env={**caller_free(), "PYTHONPATH": f"{REPO}:{tmp_path}"},
                            capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "1 passed" in result.stdout


def test_a_conflict_retry_journals_what_the_write_replaces_outside_reads(
        db: Database, tmp_path: Path) -> None:
    db.seed({"u1": {"email": "Ann@X.io", "emailLower": "old-value"}}, collection="things")
    run = _edge(db, tmp_path, ["run", "edge:RacingOutside", "--yes"])
    assert run.returncode == 0, run.stderr
    assert db.documents("things")["u1"] == {"email": "New@Mail.io", "emailLower": "new@mail.io"}
    assert json.loads(db.stats_files("task_stats")[-1].read_text())["conflicts_retried"] == 1
    undo = _edge(db, tmp_path, ["rollback", "--run-id", _last_run_id(db), "--yes"])
    assert undo.returncode == 0, undo.stderr
    assert db.documents("things")["u1"] == {"email": "New@Mail.io", "emailLower": "old-value"}


def test_a_value_a_task_returns_that_is_there_already_is_not_written(
        db: Database, tmp_path: Path) -> None:
    db.seed({"a": {"name": "n"}}, collection="things")
    before = db.update_times("things")
    run = _edge(db, tmp_path, ["run", "edge:Same", "--yes"])
    assert run.returncode == 0, run.stderr
    stats = json.loads(db.stats_files("task_stats")[-1].read_text())
    assert (stats["total_updated"], stats["total_skipped"]) == (0, 1)
    assert db.update_times("things") == before


def test_an_undo_removes_a_map_the_run_made_for_several_paths(db: Database,
                                                              tmp_path: Path) -> None:
    db.seed({"a": {"n": 1}}, collection="things")
    run = _edge(db, tmp_path, ["run", "edge:Siblings", "--yes"])
    assert run.returncode == 0 and db.documents("things")["a"]["made"] == {"b": 1, "c": 2}
    undo = _edge(db, tmp_path, ["rollback", "--run-id", _last_run_id(db), "--yes"])
    assert undo.returncode == 0, undo.stderr
    assert db.documents("things") == {"a": {"n": 1}}


def test_a_shard_never_joins_a_sharded_run_of_another_task(db: Database,
                                                           tmp_path: Path) -> None:
    db.seed({f"d{i}": {"name": "n"} for i in range(10)}, collection="things")
    first = _edge(db, tmp_path, ["run", "edge:Siblings", "--yes", "--job-id", "job-1",
                                 "--shard", "0/2"])
    assert first.returncode == 0, first.stderr
    other = _edge(db, tmp_path, ["run", "edge:Same", "--yes", "--job-id", "job-1",
                                 "--shard", "1/2"])
    assert other.returncode == 2
    assert "❌ run job-1 runs the task edge:Siblings, this task edge:Same" in other.stderr


def test_an_undo_gives_back_every_path_of_items_whose_journal_takes_several_documents(
        db: Database, tmp_path: Path) -> None:
    """Earlier values past a journal document's budget: each item's entries stay in one
    journal document, so the undo meets each item once and gives back both fields."""
    items = {f"d{i}": {"n": i, "big1": "x" * 250_000, "big2": "y" * 250_000}
             for i in range(6)}
    db.seed(items, collection="things")
    run = _edge(db, tmp_path, ["run", "edge:DeleteTwoLarge", "--yes"])
    assert run.returncode == 0, run.stderr
    assert db.documents("things") == {doc_id: {"n": item["n"]} for doc_id, item in items.items()}
    journal = db.client.collection("_backfill_runs").document(_last_run_id(db)) \
        .collection("journal")
    assert len(list(journal.stream())) > 1
    undo = _edge(db, tmp_path, ["rollback", "--run-id", _last_run_id(db), "--yes"])
    assert undo.returncode == 0, undo.stderr
    assert db.documents("things") == items


def test_deleting_under_a_value_that_is_no_map_is_nothing_to_do(db: Database,
                                                                tmp_path: Path) -> None:
    db.seed({"a": {"meta": "text"}}, collection="things")
    run = _edge(db, tmp_path, ["run", "edge:DeleteUnderString", "--yes"])
    assert run.returncode == 0, run.stderr
    stats = json.loads(db.stats_files("task_stats")[-1].read_text())
    assert (stats["total_skipped"], stats["total_errors"]) == (1, 0)


def test_a_bare_resume_carries_on_only_a_run_of_the_same_task(db: Database,
                                                              tmp_path: Path) -> None:
    db.seed({"a": {"name": "n"}}, collection="things")
    first = _edge(db, tmp_path, ["run", "edge:Siblings", "--yes"])
    assert first.returncode == 0, first.stderr
    run_id = _last_run_id(db)
    db.client.collection("_backfill_runs").document(run_id).update({"status": "interrupted"})
    other = _edge(db, tmp_path, ["run", "edge:Same", "--yes", "--resume"])
    assert other.returncode == 2
    assert other.stderr.strip().splitlines()[-1] == (
        "❌ no unfinished run of the task edge:Same of collection 'things' to resume")
    listed = _edge(db, tmp_path, ["rollback", "--list-runs"])
    assert listed.returncode == 0 and run_id in listed.stdout


def test_run_task_refuses_what_the_command_refuses_before_reading(db: Database,
                                                                  monkeypatch: pytest.MonkeyPatch
                                                                  ) -> None:
    for name, value in db.env.items():
        monkeypatch.setenv(name, value)
    with pytest.raises(ConfigurationError, match="--batch-size"):
        run_task(TitleNames, batch_size=0, output_dir=str(db.output_dir))
    with pytest.raises(ConfigurationError, match="--no-such-option"):  # click words it by version
        run_task(TitleNames, no_such_option=1)

