"""Every bad input is one line and exit 2 before anything is read or written; the prompt
and signals; a collection that is not there; CSV cells that a spreadsheet would run."""

from __future__ import annotations

import csv
import json
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from run_backfill_production import main as backfill
from scripts.backfill_rollback import main as rollback
from scripts.backfill_validation import main as validate
from scripts.vocabulary_report import main as vocabulary
from tests.conftest import REPO, Database
from tests.helpers import dead_address
from tools.sample_data import make_wardrobe

TOOLS = {"backfill": backfill, "rollback": rollback, "validation": validate,
         "vocabulary": vocabulary}


def refused(tool: Any, args: list[str], project: str = "wardrobe-prod") -> str:
    """Run a tool where no database listens (a read would be exit 3): it must say one line
    and exit 2."""
    env = {"FIRESTORE_EMULATOR_HOST": dead_address(),
           "GOOGLE_CLOUD_PROJECT": project}
    result = CliRunner().invoke(tool, [*args, "--max-retry-seconds", "1"], env=env)
    assert result.exit_code == 2, result.output
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and result.stdout == "", result.output
    return lines[0]


LONG = "x" * 1501


@pytest.mark.parametrize(("args", "message"), [
    (["--resume", ""], "❌ --resume '' is not a valid Firestore ID: it is empty"),
    (["--resume", "a/b"], "❌ --resume 'a/b' is not a valid Firestore ID: it holds a `/`"),
    (["--resume", ".."], "❌ --resume '..' is not a valid Firestore ID: `.` and `..` are not "
                         "IDs"),
    (["--job-id", "__run__"], "❌ --job-id '__run__' is not a valid Firestore ID: IDs of the "
                              "form __...__ are reserved"),
    (["--job-id", LONG], f"❌ --job-id {LONG[:80]!r} is not a valid Firestore ID: it is 1501 "
                         "bytes, over Firestore's 1500"),
    (["--collection", "a/b"], "❌ --collection 'a/b' is not a valid Firestore ID: it holds a "
                              "`/`"),
    (["--collection", ""], "❌ --collection '' is not a valid Firestore ID: it is empty"),
    (["--ledger-collection", "."], "❌ --ledger-collection '.' is not a valid Firestore ID: "
                                   "`.` and `..` are not IDs"),
    (["--ledger-collection", "wardrobe"], "❌ --ledger-collection 'wardrobe' is the "
     "collection being processed: the ledger needs a collection of its own"),
    (["--database", "Prod_DB"], "❌ --database 'Prod_DB' is not a Firestore database ID: "
     "(default), or 4 to 63 lowercase letters, digits and hyphens, starting with a letter"),
    (["--project", "My Project"], "❌ the project 'My Project' (from --project) is not a "
     "Google Cloud project ID: 6 to 30 lowercase letters, digits and hyphens, starting with "
     "a letter"),
    (["--shard", "0/99999999999999999999"], "❌ --shard takes INDEX/COUNT in digits, like "
     "0/4, not '0/99999999999999999999'"),
    (["--shard", "0/200000"], "❌ --shard takes INDEX/COUNT in digits, like 0/4, not "
                              "'0/200000'"),
    (["--shard", "0/1001", "--job-id", "j"], "❌ --shard 0/1001: INDEX must be 0 to COUNT-1, "
                                             "COUNT 1 to 1000"),
    (["--shard", "1_0/20"], "❌ --shard takes INDEX/COUNT in digits, like 0/4, not '1_0/20'"),
    (["--shard", "١/٢"], "❌ --shard takes INDEX/COUNT in digits, like 0/4, not '١/٢'"),
    (["--shard", "+0/+2"], "❌ --shard takes INDEX/COUNT in digits, like 0/4, not '+0/+2'"),
])
def test_bad_names_and_ids_of_the_writing_tools(args: list[str], message: str) -> None:
    assert refused(backfill, args) == message
    assert refused(rollback, args) == message


@pytest.mark.parametrize("tool", ["backfill", "rollback", "validation", "vocabulary"])
@pytest.mark.parametrize("option", ["--max-retry-seconds"])
@pytest.mark.parametrize("value", ["nan", "inf", "NaN"])
def test_nan_and_inf_are_refused(tool: str, option: str, value: str) -> None:
    env = {"FIRESTORE_EMULATOR_HOST": dead_address(),
           "GOOGLE_CLOUD_PROJECT": "wardrobe-prod"}
    result = CliRunner().invoke(TOOLS[tool], [option, value], env=env)
    assert result.exit_code == 2
    assert result.stderr == (f"❌ Invalid value for '{option}': {value!r} is not a finite "
                             "number. (--help lists the options)\n")


@pytest.mark.parametrize("option", ["--max-writes-per-second", "--initial-writes-per-second",
                                    "--throttle-interval", "--max-throttle-seconds"])
def test_nan_for_the_pacing_options_is_refused(option: str) -> None:
    result = CliRunner().invoke(backfill, [option, "nan"])
    assert result.exit_code == 2 and "is not a finite number" in result.stderr


def test_run_ids_of_validation_are_checked() -> None:
    assert refused(validate, ["--run-id", "a/b"]) == (
        "❌ --run-id 'a/b' is not a valid Firestore ID: it holds a `/`")
    assert refused(rollback, ["--run-id", "__x__"]) == (
        "❌ --run-id '__x__' is not a valid Firestore ID: IDs of the form __...__ are "
        "reserved")


@pytest.mark.parametrize("tool", ["backfill", "rollback", "validation", "vocabulary"])
def test_an_output_dir_that_cannot_be_used_is_refused_first(tool: str, tmp_path: Path) -> None:
    a_file = tmp_path / "stats.json"
    a_file.write_text("{}")
    assert refused(TOOLS[tool], ["--output-dir", str(a_file)]) == (
        f"❌ --output-dir {str(a_file)!r} cannot be used: it is a file, not a folder")
    under = a_file / "out"
    assert refused(TOOLS[tool], ["--output-dir", str(under)]) == (
        f"❌ --output-dir {str(under)!r} cannot be used: a part of it is a file, not a folder")


def test_a_bad_output_dir_leaves_the_database_and_the_ledger_untouched(db: Database,
                                                                      tmp_path: Path) -> None:
    db.seed(make_wardrobe(20))
    before = db.update_times()
    a_file = tmp_path / "file"
    a_file.write_text("")
    result = CliRunner().invoke(backfill, ["--yes", "--output-dir", str(a_file)], env=db.env)
    assert result.exit_code == 2
    assert db.update_times() == before
    assert db.documents("_backfill_runs") == {}


def test_the_ledger_cannot_be_the_collection(db: Database) -> None:
    db.seed(make_wardrobe(20))
    before = db.update_times()
    result = db.invoke(backfill, ["--ledger-collection", "wardrobe", "--yes"])
    assert result.exit_code == 2
    assert db.update_times() == before


@pytest.mark.slow
def test_a_closed_stdin_at_the_prompt_aborts(db: Database) -> None:
    db.seed(make_wardrobe(20))
    before = db.update_times()
    done = subprocess.run(
        [sys.executable, "run_backfill_production.py", "--environment", "production",
         "--output-dir", str(db.output_dir)], cwd=REPO, env=db.env, stdin=subprocess.DEVNULL,
        capture_output=True, text=True, timeout=60, pass_fds=())
    assert done.returncode == 1, done.stderr
    closed = subprocess.run(
        f"{sys.executable} run_backfill_production.py --environment production "
        f"--output-dir {db.output_dir} <&-", shell=True, cwd=REPO, env=db.env,
        capture_output=True, text=True, timeout=60)
    assert closed.returncode == 1, closed.stderr
    assert closed.stderr.strip().endswith("❌ Aborted: nothing was written (the answer was "
                                          "not YES).")
    assert "Traceback" not in closed.stderr
    assert db.update_times() == before


@pytest.mark.slow
def test_sigterm_at_the_prompt_exits_130(db: Database, tmp_path: Path) -> None:
    db.seed(make_wardrobe(20))
    before = db.update_times()
    log = tmp_path / "stderr.txt"
    with log.open("w") as err:
        process = subprocess.Popen(
            [sys.executable, "run_backfill_production.py", "--environment", "production",
             "--output-dir", str(db.output_dir)], cwd=REPO, env=db.env,
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=err, text=True)
        deadline = time.monotonic() + 30
        while "Type 'YES'" not in log.read_text():
            assert time.monotonic() < deadline, log.read_text()
            time.sleep(0.05)
        process.send_signal(signal.SIGTERM)
        assert process.wait(timeout=30) == 130
    assert log.read_text().strip().endswith("❌ Interrupted.")
    assert db.update_times() == before


def test_an_empty_or_missing_collection_is_said(db: Database) -> None:
    db.seed(make_wardrobe(5))
    for args in (["--collection", "wardrob", "--environment", "production"],
                 ["--collection", "wardrob", "--dry-run"]):
        result = db.invoke(backfill, args)
        assert result.exit_code == 0, result.output
        assert "Type 'YES'" not in result.stderr
        assert ("⚠️  Collection 'wardrob' is empty or does not exist in project "
                f"{db.project}, database (default). Collections there: wardrobe") in result.stderr
    assert db.documents("_backfill_runs") == {}


@pytest.mark.parametrize("how", [["--sample-size", "10"], ["--all"]])
def test_validating_an_empty_or_missing_collection_is_not_a_success(
        db: Database, how: list[str]) -> None:
    """Nothing to validate is not valid: a mistyped name is exit 2, with the collections
    there are, and no report that says all is well."""
    db.seed(make_wardrobe(5))
    result = db.invoke(validate, ["--collection", "wardrobes", *how])
    assert result.exit_code == 2, result.output
    assert result.stderr.strip().splitlines()[-1] == (
        f"❌ Collection 'wardrobes' is empty or does not exist in project {db.project}, "
        "database (default). Collections there: wardrobe: nothing to validate")
    assert not list(db.output_dir.glob("validation_report_*.json"))


def test_csv_cells_never_run_as_formulas(db: Database) -> None:
    db.seed({"f1": {"style": ["=1+1", "+SUM(A1)", "@cmd", "-2+3"]},
             "f2": {"occasion": ["\t=2+3"]}})
    result = db.invoke(vocabulary, [])
    assert result.exit_code == 0, result.output
    [path] = db.output_dir.glob("vocabulary_report_*.csv")
    with path.open(newline="", encoding="utf-8") as handle:
        cells = [cell for row in csv.reader(handle) for cell in row]
    assert cells and not any(cell.startswith(("=", "+", "-", "@", "\t", "\r"))
                             for cell in cells)
    assert "'=1+1" in cells
    json.loads(next(db.output_dir.glob("vocabulary_report_*.json")).read_text())


def test_validation_calls_invisible_characters_malformed(db: Database) -> None:
    db.seed({"v1": {"style": ["Boho"], "normalized": {
        "style": ["\ufeffbohemian"], "occasion": [], "mood": [], "season": ["all"],
        "normalized_at": "2026-01-01T00:00:00Z", "normalized_version": "1.0"}}})
    result = db.invoke(validate, ["--all", "--json"])
    assert result.exit_code == 1
    assert json.loads(result.stdout)["invalid_items"] == [
        {"id": "v1", "reasons": ["malformed_facets"]}]
    assert db.invoke(backfill, []).exit_code == 0  # not skipped: rewritten clean
    assert db.documents()["v1"]["normalized"]["style"] == ["bohemian"]
