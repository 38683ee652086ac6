"""An operator's stop sticks through an engine's restarts, and a resume keeps the health
gate: what a control says stands until an operator says otherwise. Health URLs are
checked before anything is read, and never shown with their secrets. On the real
emulator, with the tools as real processes and a health endpoint served here."""

from __future__ import annotations

import base64
import re
import signal
import subprocess
import sys
import time
from datetime import datetime

import pytest

from backfill.errors import ExitCode
from backfill.ledger import DEFAULT_LEDGER_COLLECTION
from run_backfill_production import main as backfill
from tests.conftest import Database
from tests.helpers import (
    REPO,
    SCRIPT,
    Backend,
    auto_ids,
    control,
    dead_address,
    eventually,
    ledger,
    printed_resume,
    start,
    wait_for,
)
from tools.sample_data import make_wardrobe

# Stops, pauses, gates and the throttle, on runs slow enough to catch: the tools keep
# their own pace here.
pytestmark = pytest.mark.paced

SLOW = ("--batch-size", "20", "--max-writes-per-second", "60", "--initial-writes-per-second",
        "60", "--control-poll-seconds", "0.2")


def entry_of(db: Database, run_id: str, shard: str | None) -> dict[str, object]:
    run = db.client.collection(DEFAULT_LEDGER_COLLECTION).document(run_id)
    ref = run if shard is None else run.collection("shards").document(shard.split("/")[0])
    return ref.get().to_dict() or {}


@pytest.mark.parametrize("shard", [None, "0/2"])
@pytest.mark.slow
def test_a_stop_survives_an_engine_restart_and_an_operators_resume_clears_it(
        db: Database, shard: str | None) -> None:
    db.seed(make_wardrobe(1000))
    task = ["--job-id", "job-s", *(["--shard", shard] if shard else [])]
    process, log = start(db, db.env, *task, *SLOW)
    wait_for(log, "Batch 2:")
    assert control(db, "stop", "job-s").exit_code == 0
    assert process.wait(timeout=60) == ExitCode.INTERRUPTED, log.read_text()
    written = db.update_times()
    # The engine starts the same task again (a retry): same arguments, no --resume.
    again, log = start(db, db.env, *task, *SLOW)
    assert again.wait(timeout=60) == ExitCode.OK, log.read_text()
    said = log.read_text()
    assert re.search(r"⏹  Run job-s was stopped by \S+ \(backfill_control.py stop\): this "
                     r"task writes nothing, and ends with exit 0 so that the engine does not "
                     r"start it again\. To carry the run on: python3 run_backfill_production"
                     r"\.py --environment development --resume job-s", said), said
    assert db.update_times() == written
    assert entry_of(db, "job-s", shard)["status"] == "interrupted"
    # The operator's --resume, typed as printed, clears the stop and carries the run on.
    command = said.split("To carry the run on: ", 1)[1].strip().split()
    resumed = subprocess.run([sys.executable, *command[1:], "--yes", "--quiet", "--output-dir",
                              str(db.output_dir)], cwd=REPO, env=db.env, capture_output=True,
                             text=True, timeout=120)
    assert resumed.returncode == 0, resumed.stderr
    assert entry_of(db, "job-s", shard)["status"] == "completed"
    assert entry_of(db, "job-s", None).get("control") is None


@pytest.mark.slow
def test_continue_clears_a_pause_that_outlived_its_run(db: Database) -> None:
    """Paused, then Ctrl-C: the pause stands on the interrupted run (its resume would
    start paused); `continue` clears it."""
    db.seed(make_wardrobe(600))
    process, log = start(db, db.env, "--job-id", "bf-p", *SLOW)
    wait_for(log, "Batch 1:")
    assert control(db, "pause", "bf-p").exit_code == 0
    wait_for(log, "⏸  Paused (paused by ")
    process.send_signal(signal.SIGINT)
    assert process.wait(timeout=60) == ExitCode.INTERRUPTED, log.read_text()
    done = control(db, "continue", "bf-p")
    assert done.exit_code == 0, done.output
    assert done.stdout.strip() == (
        "Run bf-p (interrupted): pause cleared: a task that starts it again (--resume, or "
        "the engine's retry) goes on.")
    resumed = db.invoke(backfill, ["--resume", "bf-p", "--yes"])
    assert resumed.exit_code == 0, resumed.output
    assert "Paused" not in resumed.stderr
    db.assert_normalized()
    nothing = control(db, "continue", "bf-p")
    assert nothing.exit_code == ExitCode.USAGE
    assert nothing.stderr.strip() == "❌ run bf-p is completed: there is nothing to continue"


@pytest.mark.slow
def test_continue_on_an_interrupted_run_with_nothing_standing_is_refused(
        db: Database) -> None:
    db.seed(make_wardrobe(300))
    process, log = start(db, db.env, "--job-id", "bf-i", *SLOW)
    wait_for(log, "Batch 1:")
    process.send_signal(signal.SIGINT)
    assert process.wait(timeout=60) == ExitCode.INTERRUPTED
    done = control(db, "continue", "bf-i")
    assert done.exit_code == ExitCode.USAGE
    assert done.stderr.strip() == (
        "❌ run bf-i is interrupted, with no pause or stop standing: there is nothing to "
        "continue (resume it with --resume)")


@pytest.mark.slow
def test_status_shows_each_tasks_heartbeat_and_a_killed_task_as_gone(
        db: Database, backend: Backend) -> None:
    db.seed(make_wardrobe(50))
    backend.mode = "failing"
    process, log = start(db, db.env, "--job-id", "bf-k", "--throttle-url", backend.url,
                         "--throttle-interval", "0.1", "--lease-timeout-seconds", "2",
                         "--heartbeat-seconds", "0.3")
    wait_for(log, "⏸  Throttled: ")
    alive = control(db, "status", "bf-k")
    assert alive.exit_code == 0, alive.output
    assert re.search(r"running, throttled by \S+ \(heartbeat \d+s ago\): ", alive.stdout), \
        alive.stdout
    process.kill()
    process.wait()

    def gone() -> str | None:
        shown = control(db, "status", "bf-k").stdout
        return shown if "gone (" in shown else None

    shown = eventually(gone, "the killed task shown as gone", timeout=30)
    assert re.search(r"running, throttled by \S+ \(gone \(last heartbeat \d+s ago, past 2s: a "
                     r"resume takes over\)\): ", shown), shown


@pytest.mark.parametrize("secret", [True, False])
@pytest.mark.slow
def test_a_throttled_out_run_s_printed_resume_keeps_the_health_gate(
        db: Database, backend: Backend, secret: bool) -> None:
    db.seed(make_wardrobe(200))
    seeded = db.update_times()
    backend.mode = "failing"
    url = backend.url if secret else backend.url.split("?")[0]
    process, log = start(db, db.env, "--throttle-url", url, "--throttle-interval", "0.1",
                         "--max-throttle-seconds", "1")
    assert process.wait(timeout=60) == ExitCode.FATAL, log.read_text()
    said = log.read_text()
    assert "s3cret" not in said
    shown = backend.url.split("?")[0]
    command = printed_resume(log)
    assert command[-6:] == ["--throttle-url", shown, "--throttle-interval", "0.1",
                            "--max-throttle-seconds", "1"]
    note = ("   (add the query string or credentials of each --throttle-url that had them: "
            "they are not shown, as they may hold a secret)")
    assert (note in said) is secret
    # Typed as printed while the backend still fails: held at the gate, nothing written.
    again = subprocess.run([*command, "--yes", "--output-dir", str(db.output_dir)], cwd=REPO,
                           env=db.env, capture_output=True, text=True, timeout=120)
    assert again.returncode == ExitCode.FATAL, again.stderr
    assert "throttled for more than 1s" in again.stderr
    assert db.update_times() == seeded
    # Without the URL, a resume of a gated run is refused; --no-throttle goes on.
    [entry] = ledger(db)
    bare = db.invoke(backfill, ["--resume", entry["run_id"], "--yes"])
    assert bare.exit_code == ExitCode.USAGE, bare.output
    assert bare.stderr.strip().splitlines()[-1] == (
        f"❌ run {entry['run_id']} was gated by the backend's health (--throttle-url "
        f"{shown}): give the URL again (--throttle-url, or BACKFILL_THROTTLE_URL, with its "
        "query string if it had one: that is not recorded), or --no-throttle to go on "
        "without the gate")
    assert db.update_times() == seeded
    ungated = db.invoke(backfill, ["--resume", entry["run_id"], "--yes", "--no-throttle"])
    assert ungated.exit_code == 0, ungated.output
    db.assert_normalized()


@pytest.mark.slow
def test_a_health_url_in_the_environment_counts_as_given_on_resume(
        db: Database, backend: Backend) -> None:
    db.seed(make_wardrobe(100))
    backend.mode = "failing"
    env = {**db.env, "BACKFILL_THROTTLE_URL": backend.url}
    process, log = start(db, env, "--throttle-interval", "0.1", "--max-throttle-seconds", "1")
    assert process.wait(timeout=60) == ExitCode.FATAL, log.read_text()
    command = printed_resume(log)
    assert "--throttle-url" not in command  # the console has it again
    backend.mode = "healthy"
    done = subprocess.run([*command, "--yes", "--output-dir", str(db.output_dir)], cwd=REPO,
                          env=env, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    db.assert_normalized()


@pytest.mark.parametrize("url, problem", [
    ("file:///etc/hostname", "only http:// and https:// URLs are called"),
    ("http://ops:hunter2#x@127.0.0.1:9/health", "its port is not a number from 1 to 65535"),
    ("http://ops:hunter2@127.0.0.1:9/health#hunter2",
     "it has a #fragment (a `#` in a password is written %23)"),
    ("http://[::1/h", "its host is not a valid name or address"),
    ("http://h:99999/", "its port is not a number from 1 to 65535"),
    ("http://bad_host!/health", "its host is not a valid name or address"),
    ("http:///health", "it has no host"),
    ("http://h/he alth", "it holds a space or a control character"),
    ("", "it is empty"),
])
@pytest.mark.slow
def test_a_bad_health_url_is_one_line_and_exit_2_with_no_secret(
        db: Database, url: str, problem: str) -> None:
    """Checked before anything is read: the database's address here is dead. (In the
    variable, click splits values at spaces, and an empty one is no URL at all.)"""
    env = {**db.env, "FIRESTORE_EMULATOR_HOST": dead_address()}
    ways: list[tuple[list[str], dict[str, str]]] = [(["--throttle-url", url], {})]
    if url and " " not in url:
        ways.append(([], {"BACKFILL_THROTTLE_URL": url}))
    for args, how in ways:
        done = subprocess.run([sys.executable, SCRIPT, "--yes", "--output-dir",
                               str(db.output_dir), *args], cwd=REPO, env={**env, **how},
                              capture_output=True, text=True, timeout=60)
        assert done.returncode == ExitCode.USAGE, done.stderr
        assert done.stderr.strip() == (
            "❌ the 1st --throttle-url (or BACKFILL_THROTTLE_URL) is not a health URL this "
            f"tool can probe: {problem} (the URL is not shown: it may hold a secret)")
        assert "hunter2" not in done.stdout + done.stderr


def test_credentials_in_a_health_url_are_sent_as_basic_auth_and_never_shown(
        db: Database, backend: Backend) -> None:
    db.seed(make_wardrobe(60))
    backend.authorization = "Basic " + base64.b64encode(b"ops:hun#ter2").decode()
    host = backend.url.split("/")[2]
    done = db.invoke(backfill, ["--yes", "--throttle-url",
                                f"http://ops:hun%23ter2@{host}/health"])
    assert done.exit_code == 0, done.output
    assert "Throttled" not in done.stderr
    assert backend.probes >= 1
    log = (db.output_dir / "backfill_production.log").read_text()
    for text in (done.output, log, str(ledger(db))):
        assert "ter2" not in text and "ops:" not in text
    db.assert_normalized()


@pytest.mark.slow
def test_status_counts_a_live_pause_and_shows_how_far_parallel_reads_are(
        db: Database) -> None:
    """Before: 12 s into a pause, `paused 0.0s`; a single checkpoint ID that meant
    nothing with parallel reads; items/s counting paused time."""
    db.seed({doc_id: {"style": ["Goth"]} for doc_id in auto_ids(1200, 9)})
    process, log = start(db, db.env, "--job-id", "bf-live", *SLOW)
    wait_for(log, "Batch 3:")
    assert control(db, "pause", "bf-live").exit_code == 0
    wait_for(log, "⏸  Paused (paused by ")
    time.sleep(3.0)
    shown = control(db, "status", "bf-live").stdout
    paused = re.search(r"paused (\d+\.\d)s$", shown, re.MULTILINE)
    assert paused is not None and float(paused.group(1)) >= 2.5, shown
    stands = re.search(r"; 4 parts, (\d+)% of the ID key space read;", shown)
    assert stands is not None and 0 < int(stands.group(1)) < 100, shown
    assert "; waiting on: paused by " in shown and "(no ETA while held)" in shown
    process.send_signal(signal.SIGINT)
    assert process.wait(timeout=60) == ExitCode.INTERRUPTED
    [entry] = ledger(db)
    elapsed = (datetime.fromisoformat(entry["finished_at"])
               - datetime.fromisoformat(entry["started_at"])).total_seconds()
    assert entry["paused_seconds"] >= 3.0
    assert 0 < entry["active_seconds"] <= elapsed - entry["paused_seconds"] + 0.5
    assert control(db, "continue", "bf-live").exit_code == 0  # the pause outlived the run
    resumed = db.invoke(backfill, ["--resume", "bf-live", "--yes"])
    assert resumed.exit_code == 0, resumed.output
    assert "↩️  Continuing each of its 4 parts after its own checkpoint (4 parts, " in \
        resumed.stderr
