"""The backfill CLI against the real emulator: what an operator would check afterwards."""

from __future__ import annotations

import json
import re
import signal
import warnings
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from backfill.logs import (
    LOG_FILE_NAME,
    close_run_log,
    defer_warnings,
    open_run_log,
)
from normalizer import NORMALIZED_VERSION, build_normalized, normalize_item
from normalizer.item import format_timestamp
from run_backfill_production import main
from tests.conftest import Database
from tests.helpers import changed_documents, dead_address, eventually, start, wait_for
from tools.sample_data import make_wardrobe

PROMPT = "⚠️  You are about to modify PRODUCTION data. Type 'YES' to continue:"

MESSY: dict[str, dict[str, Any]] = {
    "null-normalized": {"style": ["Classic"], "normalized": None, "id": "x1"},
    "stale": {"style": ["Boho"], "normalized": {
        "style": ["casual"], "occasion": [], "mood": [], "season": ["all"],
        "normalized_at": "2024-01-01T00:00:00Z", "normalized_version": NORMALIZED_VERSION}},
    "malformed": {"occasion": "Gym", "normalized": "oops"},
    "old-version": {"mood": ["Chill"], "normalized": {
        "style": [], "occasion": [], "mood": ["relaxed"], "season": ["all"],
        "normalized_version": "0.1"}},
    "no-id-field": {"style": "Casual, Classic", "occasion": "Everyday"},
    "numbers-maps-nulls": {"style": [None, 3, {"a": 1}, "Y2K"], "occasion": 42, "mood": None,
                           "season": {"x": "summer"}},
    "fallback": {"style": [], "metadata": {"styleTags": ["Streetwear"], "camera": "x"}},
    "empty": {"name": "Plain tee", "createdAt": "2023-01-01"},
}
# The spec's tables applied by hand (not by the code under test) to MESSY.
MESSY_EXPECTED = {
    "null-normalized": {"style": ["classic"], "occasion": [], "mood": [], "season": ["all"]},
    "stale": {"style": ["bohemian"], "occasion": [], "mood": [], "season": ["all"]},
    "malformed": {"style": [], "occasion": ["workout"], "mood": [], "season": ["all"]},
    "old-version": {"style": [], "occasion": [], "mood": ["relaxed"], "season": ["all"]},
    "no-id-field": {"style": ["casual", "classic"], "occasion": ["everyday"], "mood": [],
                    "season": ["all"]},
    "numbers-maps-nulls": {"style": ["y2k"], "occasion": [], "mood": [], "season": ["all"]},
    "fallback": {"style": ["streetwear"], "occasion": [], "mood": [], "season": ["all"]},
    "empty": {"style": [], "occasion": [], "mood": [], "season": ["all"]},
}


def test_dry_run_reads_everything_and_writes_nothing(db: Database) -> None:
    db.seed(make_wardrobe(120))
    before = db.update_times()
    result = db.invoke(main, ["--dry-run", "--environment", "production", "--batch-size", "50",
                              "--parallel-reads", "1"])
    assert result.exit_code == 0, result.output
    assert db.update_times() == before
    assert "🚀 Starting wardrobe backfill [DRY RUN]" in result.stderr
    assert "Batch 1: 50 processed, 50 would update, 0 skipped, 0 errors" in result.stderr
    assert "Batch 3: 20 processed" in result.stderr
    assert "Would update " in result.stderr
    assert PROMPT not in result.stderr
    stats = json.loads(db.stats_files("backfill_stats")[0].read_text())
    assert stats["dry_run"] is True
    assert (stats["total_processed"], stats["total_would_update"], stats["total_updated"]) == (
        120, 120, 0)


def test_production_run_asks_and_writes_only_on_yes(db: Database) -> None:
    db.seed(MESSY)
    before = db.documents()
    result = db.invoke(main, ["--environment", "production"], input="YES\n")
    assert result.exit_code == 0, result.output
    assert PROMPT in result.stderr
    assert "Items in wardrobe: 8" in result.stderr
    after = db.documents()
    assert set(after) == set(before)
    for doc_id, item in before.items():
        # Only `normalized` changes; every other field is as it was.
        assert {k: v for k, v in after[doc_id].items() if k != "normalized"} == {
            k: v for k, v in item.items() if k != "normalized"}
        written = after[doc_id]["normalized"]
        assert {f: written[f] for f in MESSY_EXPECTED[doc_id]} == MESSY_EXPECTED[doc_id]
        assert set(written) == {"style", "occasion", "mood", "season", "normalized_at",
                                "normalized_version"}
        assert written["normalized_version"] == NORMALIZED_VERSION == "1.0"
        assert datetime.fromisoformat(written["normalized_at"].replace("Z", "+00:00")) <= \
            datetime.now(UTC)


@pytest.mark.parametrize("answer", ["no\n", "yes\n", "YES please\n", "", "\n"],
                         ids=["no", "lowercase", "more", "end-of-input", "empty"])
def test_anything_but_yes_aborts_and_writes_nothing(db: Database, answer: str) -> None:
    db.seed(MESSY)
    before = db.update_times()
    result = db.invoke(main, ["--environment", "production"], input=answer)
    assert result.exit_code == 1
    assert "Aborted: nothing was written" in result.stderr
    assert db.update_times() == before
    assert db.stats_files("backfill_stats") == []


def test_yes_flag_skips_the_prompt_and_other_environments_do_not_ask(db: Database) -> None:
    db.seed(MESSY)
    result = db.invoke(main, ["--environment", "staging"])
    assert result.exit_code == 0 and PROMPT not in result.stderr
    db.seed({"new": {"style": ["Goth"]}})
    result = db.invoke(main, ["--environment", "production", "--yes"])
    assert result.exit_code == 0 and PROMPT not in result.stderr
    assert db.documents()["new"]["normalized"]["style"] == ["gothic"]


def test_a_second_run_updates_nothing(db: Database) -> None:
    db.seed(MESSY)
    assert db.invoke(main, []).exit_code == 0
    before = db.update_times()
    result = db.invoke(main, ["--json"])
    assert result.exit_code == 0
    stats = json.loads(result.stdout)
    assert (stats["total_updated"], stats["total_skipped"]) == (0, len(MESSY))
    assert db.update_times() == before


@pytest.mark.slow
def test_force_rewrites_items_that_are_up_to_date(db: Database) -> None:
    db.seed(MESSY)
    assert db.invoke(main, []).exit_code == 0
    before = db.update_times()
    first = {d: item["normalized"]["normalized_at"] for d, item in db.documents().items()}
    # The same tags written in the same second are the same value, which the emulator
    # does not count as a change: force in a later second, so every rewrite shows.
    eventually(lambda: format_timestamp(datetime.now(UTC)) > max(first.values()),
               "the next second")
    result = db.invoke(main, ["--force", "--json"])
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["total_updated"] == len(MESSY)
    assert changed_documents(before, db.update_times()) == set(MESSY)  # every one written
    assert all(item["normalized"]["normalized_at"] > first[d]
               for d, item in db.documents().items())


def test_up_to_date_items_are_skipped(db: Database) -> None:
    item = {"style": ["Casual"]}
    fresh = build_normalized(normalize_item(item), datetime.now(UTC))
    db.seed({"done": {**item, "normalized": fresh}, "todo": {"style": ["Goth"]}})
    before = db.update_times()
    result = db.invoke(main, ["--json"])
    assert result.exit_code == 0, result.output
    stats = json.loads(result.stdout)
    assert (stats["total_updated"], stats["total_skipped"]) == (1, 1)
    assert changed_documents(before, db.update_times()) == {"todo"}  # "done" never written
    assert db.documents()["todo"]["normalized"]["style"] == ["gothic"]


def test_limit_is_a_canary_run(db: Database) -> None:
    db.seed(make_wardrobe(30))
    result = db.invoke(main, ["--limit", "7", "--batch-size", "5", "--json"])
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["total_updated"] == 7
    written = [doc_id for doc_id, item in db.documents().items()
               if isinstance(item.get("normalized"), dict)]
    assert written == sorted(db.documents())[:7]


def test_stats_file_matches_the_database(db: Database) -> None:
    db.seed(make_wardrobe(260))
    result = db.invoke(main, ["--batch-size", "100", "--parallel-reads", "1"])
    assert result.exit_code == 0
    [path] = db.stats_files("backfill_stats")
    assert str(path) in result.stdout
    stats = json.loads(path.read_text())
    docs = db.documents()
    assert stats["total_processed"] == len(docs) == 260
    assert stats["total_updated"] == sum(
        isinstance(d.get("normalized"), dict) for d in docs.values())
    assert stats["total_errors"] == 0 and stats["errors"] == []
    assert stats["success_rate"] == 100.0
    for key in ("run_id", "environment", "project", "database", "collection", "started_at",
                "finished_at", "duration_seconds", "normalized_version", "unknown_terms",
                "dropped_values", "total_would_update", "total_skipped"):
        assert key in stats
    assert stats["project"] == db.project and stats["collection"] == "wardrobe"
    assert stats["unknown_terms"]["style"]["cottage_core"] > 0
    log = (db.output_dir / "backfill_production.log").read_text()
    assert stats["run_id"] in log and "Batch 3: 60 processed" in log


def test_documents_without_an_id_field_are_visited(db: Database) -> None:
    db.seed({f"doc{i}": {"style": ["Casual"]} for i in range(5)})
    assert db.invoke(main, []).exit_code == 0
    assert [d["normalized"]["style"] for d in db.documents().values()] == [["casual"]] * 5


def test_other_collections_are_untouched(db: Database) -> None:
    db.seed(MESSY)
    db.seed({"u1": {"style": ["Casual"]}}, collection="users")
    users = db.update_times("users")
    result = db.invoke(main, [])
    assert result.exit_code == 0, result.output
    assert db.documents("users") == {"u1": {"style": ["Casual"]}}
    assert db.update_times("users") == users
    assert {d: item["normalized"]["style"] for d, item in db.documents().items()} == {
        d: expected["style"] for d, expected in MESSY_EXPECTED.items()}


@pytest.mark.slow
def test_as_a_real_process(db: Database) -> None:
    db.seed(MESSY)
    done = db.run_script("run_backfill_production.py", ["--environment", "production"],
                         input="YES\n")
    assert done.returncode == 0, done.stderr
    assert "Complete" in done.stdout
    assert {d: item["normalized"]["mood"] for d, item in db.documents().items()} == {
        d: expected["mood"] for d, expected in MESSY_EXPECTED.items()}
    # Third-party warnings (google-auth warns about the app's grpcio 1.75 at import, which
    # `make test-app` runs this suite with) are not for the operator: they go to the log.
    assert "Warning" not in done.stderr


def test_python_warnings_go_to_the_log_not_the_console(tmp_path: Path,
                                                       capsys: pytest.CaptureFixture[str]) -> None:
    with warnings.catch_warnings():  # pytest records warnings itself; ours is set up here
        warnings.simplefilter("always")
        defer_warnings()
        warnings.warn_explicit("grpcio < 1.83.0 is old", FutureWarning,
                               "google/auth/transport/grpc.py", 43)
        close_run_log(open_run_log(tmp_path, "backfill", "run-1"))
    assert capsys.readouterr().err == ""
    assert ("WARNING backfill run-1: python warning: grpcio < 1.83.0 is old (FutureWarning, "
            "google/auth/transport/grpc.py:43)") in (tmp_path / LOG_FILE_NAME).read_text()


@pytest.mark.slow
def test_the_database_being_down_is_fatal_not_zero_items(db: Database) -> None:
    env = {**db.env, "FIRESTORE_EMULATOR_HOST": dead_address()}
    done = db.run_script("run_backfill_production.py", ["--max-retry-seconds", "1"], env=env)
    assert done.returncode == 3
    assert ("❌ the database could not be reached: counting documents failed after retrying"
            in done.stderr)
    assert "ServiceUnavailable" in done.stderr


def test_missing_project_is_a_usage_error_before_any_read(db: Database) -> None:
    env = {k: v for k, v in db.env.items() if k != "GOOGLE_CLOUD_PROJECT"}
    done = db.run_script("run_backfill_production.py", [], env=env)
    assert done.returncode == 2
    assert done.stderr.strip() == (
        "❌ no Firestore project: pass --project or set one of GOOGLE_CLOUD_PROJECT, "
        "GCLOUD_PROJECT, FIREBASE_PROJECT_ID, FIREBASE_CONFIG")


@pytest.mark.slow
def test_unreadable_credentials_are_a_usage_error_and_no_secret_is_shown(
        db: Database, tmp_path: Any) -> None:
    env = {k: v for k, v in db.env.items() if k != "FIRESTORE_EMULATOR_HOST"}
    env["FIRESTORE_CREDENTIALS_JSON"] = '{"type": "service_account", "private_key": "s3cr3t'
    done = db.run_script("run_backfill_production.py", [], env=env)
    assert done.returncode == 2
    assert "FIRESTORE_CREDENTIALS_JSON is set but does not hold JSON" in done.stderr
    assert "s3cr3t" not in done.stderr + done.stdout
    key = tmp_path / "key.json"
    key.write_text(json.dumps({"type": "service_account", "private_key": "s3cr3t",
                               "client_email": "x@y", "token_uri": "https://t"}))
    env = {**env, "GOOGLE_APPLICATION_CREDENTIALS": str(key)}
    done = db.run_script("run_backfill_production.py", [], env=env)
    assert done.returncode == 2
    assert "could not be used" in done.stderr
    assert "s3cr3t" not in done.stderr + done.stdout
    env["GOOGLE_APPLICATION_CREDENTIALS"] = str(tmp_path / "missing.json")
    done = db.run_script("run_backfill_production.py", [], env=env)
    assert done.returncode == 2 and "cannot be read" in done.stderr


@pytest.mark.parametrize(("args", "message"), [
    (["--batch-size", "0"], "❌ Invalid value for '--batch-size': 0 is not in the range "
                            "1<=x<=500. (--help lists the options)"),
    (["--batch-size", "501"], "❌ Invalid value for '--batch-size': 501 is not in the range "
                              "1<=x<=500. (--help lists the options)"),
    (["--environment", "prod"], "❌ Invalid value for '--environment': 'prod' is not one of "
                                "'development', 'staging', 'production'. (--help lists the "
                                "options)"),
    (["--limit", "0"], "❌ Invalid value for '--limit': 0 is not in the range x>=1. (--help "
                       "lists the options)"),
])
def test_bad_options_are_usage_errors(db: Database, args: list[str], message: str) -> None:
    db.seed(MESSY)
    before = db.update_times()
    result = db.invoke(main, args)
    assert result.exit_code == 2
    assert result.stderr.strip() == message
    assert db.update_times() == before


@pytest.mark.slow
def test_environment_comes_from_the_environment_variable(db: Database) -> None:
    db.seed(MESSY)
    env = {**db.env, "BACKFILL_ENVIRONMENT": "production"}
    done = db.run_script("run_backfill_production.py", [], env=env, input="no\n")
    assert done.returncode == 1 and PROMPT in done.stderr


def test_version_and_help() -> None:
    from click.testing import CliRunner

    version = CliRunner().invoke(main, ["--version"])
    assert version.exit_code == 0
    assert f"(normalizer {NORMALIZED_VERSION})" in version.output
    shown = CliRunner().invoke(main, ["--help"])
    assert shown.exit_code == 0
    assert "--dry-run  " in shown.output and "Read everything, write nothing." in shown.output


@pytest.mark.slow
def test_no_usable_credentials_says_where_it_looked_and_what_to_set(
        db: Database, tmp_path: Path) -> None:
    """Before: `❌ the credentials from application default credentials could not be used
    (DefaultCredentialsError)`, and nothing more."""
    env = {k: v for k, v in db.env.items() if k != "FIRESTORE_EMULATOR_HOST"}
    gcloud = tmp_path / "gcloud"
    env.update(CLOUDSDK_CONFIG=str(gcloud), GCE_METADATA_HOST=dead_address(),
               GCE_METADATA_IP=dead_address())
    done = db.run_script("run_backfill_production.py", ["--yes"], env=env)
    assert done.returncode == 2
    assert done.stderr.strip() == (
        "❌ the credentials from application default credentials could not be used "
        "(DefaultCredentialsError): looked for, in order, FIRESTORE_EMULATOR_HOST (the "
        "emulator), GOOGLE_APPLICATION_CREDENTIALS (the path of a service-account key file), "
        "FIRESTORE_CREDENTIALS_JSON (the key's JSON itself), FIREBASE_PRIVATE_KEY and "
        "FIREBASE_CLIENT_EMAIL (the app's service account split over variables, with "
        "FIREBASE_PRIVATE_KEY_ID, FIREBASE_CLIENT_ID, FIREBASE_CLIENT_X509_CERT_URL when it "
        "has them): none is set; then gcloud's application default credentials "
        f"({gcloud}/application_default_credentials.json: not there) and the metadata server "
        "of Cloud Run, GKE or Compute Engine (none answered). Set one of those variables, or "
        "run `gcloud auth application-default login`")


def test_the_log_has_a_line_per_batch_not_per_item_and_is_rotated_when_large(
        db: Database) -> None:
    """Before: every dropped value of every item at INFO (3.5 MB after five runs over
    20,000 items), all appended for ever to the one file."""
    db.seed(make_wardrobe(60))
    db.output_dir.mkdir(parents=True)
    log = db.output_dir / LOG_FILE_NAME
    old = "2026-01-01T00:00:00Z INFO backfill an-old-run: Batch 1\n"
    log.write_text(old * (5 * 1024 * 1024 // len(old) + 1))  # over 5 MiB
    old_size = log.stat().st_size
    done = db.invoke(main, ["--yes", "--batch-size", "20"])
    assert done.exit_code == 0, done.output
    assert "Dropped values:" in done.stdout  # the count is in the summary and the stats
    assert f"Log file:           {log}" in done.stdout
    rotated = log.with_name(f"{LOG_FILE_NAME}.1")
    assert rotated.stat().st_size == old_size
    written = log.read_text()
    assert "Batch 4: " in written and "finished completed: 60 processed" in written
    assert "an-old-run" not in written, written[:3000]
    assert "dropped" not in written
    assert len(written.splitlines()) < 15, written


@pytest.mark.paced  # its first run's own pace, which its resume carries on
def test_a_resume_says_the_batch_size_it_uses(db: Database) -> None:
    """Before: `📦 Batch size: 500` (the option's default) on the resume of a run recorded
    with 50, which then read and wrote batches of 50."""
    db.seed(make_wardrobe(300))
    process, log = start(db, db.env, "--job-id", "bf-50", "--batch-size", "50",
                         "--parallel-reads", "1", "--max-writes-per-second", "50")
    wait_for(log, "Batch 1:")
    process.send_signal(signal.SIGINT)
    assert process.wait(timeout=60) == 130, log.read_text()
    resumed = db.invoke(main, ["--resume", "bf-50", "--yes"])
    assert resumed.exit_code == 0, resumed.output
    assert "📦 Batch size: 50\n" in resumed.stderr
    assert "📦 Batch size: 500" not in resumed.stderr
    assert max(int(n) for n in re.findall(r"Batch \d+: (\d+) processed",
                                          resumed.stderr)) == 50


@pytest.mark.parametrize("damage, problem", [
    (lambda key: {k: v for k, v in key.items() if k != "client_email"},
     "the key has no client_email (a service-account key has all of client_email, "
     "private_key, token_uri)"),
    (lambda key: {**key, "private_key": "s3cr3t-" + key["private_key"][40:]},
     "its private_key is not a PEM private key (-----BEGIN PRIVATE KEY-----, lines of "
     "base64, -----END PRIVATE KEY-----, with its newlines)"),
    (lambda key: {**key, "private_key": key["private_key"].replace("\n", "\\n")},
     "its private_key is not a PEM private key (-----BEGIN PRIVATE KEY-----, lines of "
     "base64, -----END PRIVATE KEY-----, with its newlines)"),
    (lambda key: {**key, "private_key": "\n".join(
        line[:20] if 0 < n < 5 else line
        for n, line in enumerate(key["private_key"].splitlines()))},
     "its private_key could not be read as an RSA private key (damaged, cut short, or "
     "another kind of key): download a new key for the service account"),
])
def test_a_malformed_key_file_says_what_is_wrong_without_its_secret(
        db: Database, tmp_path: Path, private_key: str, damage: Any, problem: str) -> None:
    """Before: `could not be used (ValueError)`, and nothing about what was wrong."""
    key = {"type": "service_account", "project_id": db.project,
           "private_key_id": "0123abcd", "private_key": private_key,
           "client_email": "backfill@x.iam.gserviceaccount.com",
           "token_uri": "https://oauth2.googleapis.com/token"}
    path = tmp_path / "key.json"
    path.write_text(json.dumps(damage(key)))
    env = {k: v for k, v in db.env.items() if k != "FIRESTORE_EMULATOR_HOST"}
    env["GOOGLE_APPLICATION_CREDENTIALS"] = str(path)
    done = db.run_script("run_backfill_production.py", ["--yes"], env=env)
    assert done.returncode == 2, done.stderr
    assert done.stderr.strip() == (
        f"❌ the credentials from key file {path} (GOOGLE_APPLICATION_CREDENTIALS) could not "
        f"be used: {problem}")
    body = "".join(private_key.splitlines()[1:-1])
    assert body[:40] not in done.stderr and "s3cr3t" not in done.stderr
