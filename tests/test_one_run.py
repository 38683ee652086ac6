"""Every run resumes as itself, one writer per collection, an undo undoes only what its
run wrote: each case reproduced as an operator would meet it, on the real emulator, with
real processes where the case needs them, and the database checked item by item."""

from __future__ import annotations

import json
import math
import re
import signal
import subprocess
import threading
import time
from collections import Counter
from pathlib import Path
from typing import Any

import pytest

from backfill.batch import Decision
from backfill.clock import utc_now
from backfill.journal import Journal
from backfill.lease import Lease
from backfill.ledger import DEFAULT_LEDGER_COLLECTION, Ledger
from backfill.retry import RetryPolicy
from backfill.runner import Runner, RunSettings
from backfill.stats import RunStats
from backfill.status import StopRequest
from backfill.target_field import TargetField
from normalizer import build_normalized, normalize_item
from run_backfill_production import main as backfill
from scripts.backfill_rollback import main as rollback
from tests.conftest import REPO, Database
from tests.helpers import (
    Backend,
    control,
    ledger,
    printed_resume,
    settled,
    start,
    via,
    wait_for,
)
from tools.sample_data import make_wardrobe
from tools.tcp_proxy import TcpProxy
from wardrobe.jobs import BackfillJob

ROLLBACK = "scripts/backfill_rollback.py"
APP_VALUE = {"style": ["from-the-app"], "occasion": [], "mood": [], "season": ["all"],
             "normalized_at": "2026-01-01T00:00:00Z", "normalized_version": "1.0"}


def run_printed(db: Database, env: dict[str, str], command: list[str],
                *extra: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*command, "--yes", "--output-dir", str(db.output_dir), *extra],
                          cwd=REPO, env=env, capture_output=True, text=True, timeout=180)


def interrupt_after(process: subprocess.Popen[str], log: Path, text: str) -> None:
    wait_for(log, text)
    process.send_signal(signal.SIGINT)
    assert process.wait(timeout=60) == 130, log.read_text()


@pytest.mark.slow
def test_an_interrupted_undo_resumes_as_the_undo_and_leaves_the_apps_values(
        db: Database, proxy: TcpProxy) -> None:
    db.seed(make_wardrobe(1000))
    before = db.documents()
    assert db.invoke(backfill, ["--job-id", "bf-u1", "--batch-size", "20"]).exit_code == 0
    app_ids = sorted(before)[::200]  # the app writes its own value on 5 items
    for doc_id in app_ids:
        db.client.collection(db.collection).document(doc_id).update({"normalized": APP_VALUE})
    proxy.delay = 0.02
    env = via(db, proxy)
    process, log = start(db, env, "--run-id", "bf-u1", "--batch-size", "20", script=ROLLBACK)
    interrupt_after(process, log, "Batch 3:")
    command = printed_resume(log)
    assert "--resume rollback-" in " ".join(command)
    proxy.delay = 0.0
    done = run_printed(db, env, command)
    assert done.returncode == 1, done.stderr  # the 5 app values are listed, left alone
    assert "exact undo of run bf-u1" in done.stderr
    after = db.documents()
    for doc_id, item in before.items():
        if doc_id in app_ids:
            assert after[doc_id]["normalized"] == APP_VALUE
        else:
            assert after[doc_id] == item, doc_id
    [undo] = [e for e in ledger(db) if e["tool"] == "rollback"]
    assert undo["status"] == "completed" and undo["mode"] == "exact undo of run bf-u1"
    assert undo["counts"]["errors"] == 5


@pytest.mark.slow
def test_a_bare_resume_picks_an_interrupted_undo_up_as_an_undo(db: Database,
                                                               proxy: TcpProxy) -> None:
    db.seed(make_wardrobe(600))
    before = db.documents()
    db.client.collection(db.collection).document(sorted(before)[3]).update(
        {"normalized": APP_VALUE})
    before = db.documents()
    assert db.invoke(backfill, ["--job-id", "bf-2", "--batch-size", "20", "--force"]
                     ).exit_code == 0
    proxy.delay = 0.02
    process, log = start(db, via(db, proxy), "--run-id", "bf-2", "--batch-size", "20",
                         script=ROLLBACK)
    interrupt_after(process, log, "Batch 2:")
    proxy.delay = 0.0
    done = db.invoke(rollback, ["--resume", "--yes"])
    assert done.exit_code == 0, done.output
    assert db.documents() == before  # the app's value was the run's "before": restored


@pytest.mark.slow
def test_limit_applies_to_an_undo(db: Database) -> None:
    db.seed(make_wardrobe(300))
    assert db.invoke(backfill, ["--job-id", "bf-3", "--batch-size", "50"]).exit_code == 0
    written = db.documents()
    result = db.invoke(rollback, ["--run-id", "bf-3", "--limit", "10", "--json"])
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["total_updated"] == 10
    assert sum(item != written[d] for d, item in db.documents().items()) == 10


class AnotherRunGetsThereFirst(BackfillJob):
    """Before this run decides on an item, another writer puts the very value this run is
    about to write on it (same tags, same second): this run's write then fails its
    precondition, and it is the other writer's value that stays."""

    def __init__(self, db: Database, ids: set[str]) -> None:
        now = utc_now().replace(microsecond=0)
        super().__init__(TargetField("normalized"), clock=lambda: now)
        self.db, self.ids, self.now = db, ids, now

    def decide(self, doc_id: str, data: dict[str, Any]) -> Decision:
        if doc_id in self.ids:
            self.ids.discard(doc_id)
            value = build_normalized(normalize_item(data), self.now)
            self.db.client.collection(self.db.collection).document(doc_id).update(
                {"normalized": value})
        return super().decide(doc_id, data)


@pytest.mark.slow
def test_an_undo_restores_exactly_its_runs_own_writes(db: Database) -> None:
    db.seed(make_wardrobe(200))
    seeded = db.documents()
    others = set(sorted(seeded)[::3])
    policy = RetryPolicy(max_total_wait=10)
    stats = RunStats(run_id="bf-a", tool="backfill", environment="development",
                     dry_run=False, project=db.project, database="(default)",
                     collection=db.collection)
    ledger_ = Ledger(db.client, DEFAULT_LEDGER_COLLECTION, policy)
    ledger_.commit(ledger_.first_record(stats, {}, {}, "backfill"))
    journal = Journal(db.client, DEFAULT_LEDGER_COLLECTION, "bf-a", policy)
    Runner(db.client, db.collection, AnotherRunGetsThereFirst(db, set(others)),
           RunSettings(batch_size=20, journal=journal)).run(stats, lambda _: None)
    assert stats.conflicts_retried == len(others)
    written = db.documents()
    result = db.invoke(rollback, ["--run-id", "bf-a", "--json"])
    assert result.exit_code == 0, result.output
    after = db.documents()
    for doc_id in written:
        if doc_id in others:  # the other writer's values stay
            assert after[doc_id]["normalized"] == written[doc_id]["normalized"]
        else:
            assert after[doc_id] == seeded[doc_id]
    assert json.loads(result.stdout)["total_updated"] == sum(
        seeded[d] != written[d] for d in written if d not in others)


@pytest.mark.slow
def test_two_writing_runs_at_once_the_second_is_refused(db: Database, proxy: TcpProxy) -> None:
    db.seed(make_wardrobe(1500))
    proxy.delay = 0.02
    process, log = start(db, via(db, proxy), "--batch-size", "20", "--control-poll-seconds",
                         "0.2")
    wait_for(log, "Batch 1:")
    assert control(db, "pause").exit_code == 0  # held, lease kept, while the others try
    wait_for(log, "⏸  Paused (paused by ")
    settled(db.count_where_map, "the batches in flight")
    times = db.update_times()
    for tool, args in ((backfill, ["--yes"]),
                       (rollback, ["--yes"]),
                       (rollback, ["--run-id", ledger(db)[0]["run_id"], "--yes"]),
                       (backfill, ["--resume", "--yes"])):
        done = db.invoke(tool, args)
        assert done.exit_code == 2, (args, done.output)
        message = done.stderr.strip().splitlines()[-1]
        assert re.fullmatch(
            r"❌ collection 'wardrobe' is being written by run backfill-\S+ \(\S+@\S+, pid "
            rf"{process.pid}, last heartbeat \d+s ago\): one writing run at a time; it is "
            r"taken to be gone once its heartbeat is 120s old, in \d+s",
            message), message
    assert process.poll() is None, log.read_text()
    process.send_signal(signal.SIGINT)
    assert process.wait(timeout=60) == 130
    # Only the first run wrote, and not while it was paused.
    assert db.update_times() == times
    assert db.count_where_map() > 0


@pytest.mark.slow
def test_a_lease_whose_heartbeat_went_stale_is_taken_over_and_said(
        db: Database, backend: Backend) -> None:
    """A holder frozen (SIGSTOP: a VM paused, a container cut off) past its takeover age
    loses its lease to the next run, which says so; woken up, it stops with exit 3."""
    db.seed(make_wardrobe(30))
    backend.mode = "failing"  # the first run is held at its gate, lease kept
    frozen, log = start(db, db.env, "--throttle-url", backend.url, "--throttle-interval",
                        "0.1", "--lease-timeout-seconds", "1.5", "--heartbeat-seconds", "0.3")
    wait_for(log, "⏸  Throttled: ")
    frozen.send_signal(signal.SIGSTOP)
    try:
        time.sleep(2.0)  # past its own takeover age, by the database's clock
        result = db.invoke(backfill, ["--yes"])
    finally:
        frozen.send_signal(signal.SIGCONT)
    assert result.exit_code == 0, result.output
    taken = re.search(r"⚠️  took over the lease of run (backfill-\S+) \(\S+@\S+, pid "
                      rf"{frozen.pid}, last heartbeat \d+s ago\): its heartbeat is older than "
                      r"1\.5s", result.stderr)
    assert taken is not None, result.stderr
    assert frozen.wait(timeout=60) == 3, log.read_text()
    assert "this run stopped writing" in log.read_text()
    assert "lease-wardrobe" not in db.documents(DEFAULT_LEDGER_COLLECTION)  # given back
    db.assert_normalized()


@pytest.mark.slow
def test_the_printed_command_carries_the_runs_options(db: Database, proxy: TcpProxy) -> None:
    db.seed(make_wardrobe(400), collection="items2")
    proxy.delay = 0.02
    env = via(db, proxy)
    process, log = start(db, env, "--collection", "items2", "--ledger-collection", "myruns",
                         "--batch-size", "20")
    interrupt_after(process, log, "Batch 2:")
    command = printed_resume(log)
    assert "--ledger-collection myruns" in " ".join(command)
    proxy.delay = 0.0
    done = run_printed(db, env, command)
    assert done.returncode == 0, done.stderr
    assert all("normalized" in item for item in db.documents("items2").values())


@pytest.mark.slow
def test_a_forced_run_resumed_from_its_printed_command_rewrites_every_item(
        db: Database, proxy: TcpProxy) -> None:
    db.seed(make_wardrobe(1200))
    assert db.invoke(backfill, ["--yes"]).exit_code == 0
    times = db.update_times()
    # `normalized_at` has whole seconds: a rewrite within the second of the first run
    # writes the same map, which Firestore does not count as a change of the document.
    time.sleep(1.01 - time.time() % 1.0)
    proxy.delay = 0.02
    env = via(db, proxy)
    process, log = start(db, env, "--force", "--batch-size", "50")
    interrupt_after(process, log, "Batch 3:")
    proxy.delay = 0.0
    done = run_printed(db, env, printed_resume(log), "--json")
    assert done.returncode == 0, done.stderr
    stats = json.loads(done.stdout)
    assert (stats["total_processed"], stats["total_updated"], stats["total_skipped"]) == (
        1200, 1200, 0)
    assert all(t != times[d] for d, t in db.update_times().items())


def test_a_resume_that_contradicts_the_run_is_refused(db: Database) -> None:
    db.seed(make_wardrobe(50))
    assert db.invoke(backfill, ["--job-id", "bf-f", "--force", "--batch-size", "25"]
                     ).exit_code == 0
    db.client.collection(DEFAULT_LEDGER_COLLECTION).document("bf-f").update(
        {"status": "interrupted"})
    result = db.invoke(backfill, ["--resume", "bf-f", "--batch-size", "10"])
    assert result.exit_code == 2
    assert result.stderr.strip().splitlines()[-1] == (
        "❌ run bf-f was started with --batch-size 25; this resume says 10: a resume carries "
        "the same run on (leave the option out, or start a new run)")


def test_job_id_of_a_sharded_run_needs_its_shard(db: Database) -> None:
    db.seed(make_wardrobe(40))
    assert db.invoke(backfill, ["--job-id", "sh-1", "--shard", "0/2"]).exit_code == 0
    before = db.documents()
    result = db.invoke(backfill, ["--job-id", "sh-1"])
    assert result.exit_code == 2
    assert result.stderr.strip().endswith(
        "❌ run sh-1 is sharded (2 shards): give its shard with --shard INDEX/COUNT")
    assert db.documents() == before
    assert db.documents(DEFAULT_LEDGER_COLLECTION)["sh-1"]["status"] == "sharded"


def slow_run(db: Database, proxy: TcpProxy, items: int, wait: str,
             *args: str) -> tuple[dict[str, str], subprocess.Popen[str], Path]:
    """A backfill of `items` items behind a 40 ms link, once it has said `wait`."""
    db.seed(make_wardrobe(items))
    proxy.delay = 0.02
    env = via(db, proxy)
    process, log = start(db, env, *args)
    wait_for(log, wait)
    return env, process, log


@pytest.mark.slow
def test_counts_are_exact_after_a_double_ctrl_c(db: Database, proxy: TcpProxy) -> None:
    env, process, log = slow_run(db, proxy, 3000, "Batch 3:", "--batch-size", "50")
    process.send_signal(signal.SIGINT)
    time.sleep(0.05)
    process.send_signal(signal.SIGINT)
    assert process.wait(timeout=60) == 130
    run_log = (db.output_dir / "backfill_production.log").read_text()
    batches_said = Counter(line.split(":")[0] for line in log.read_text().splitlines()
                           if line.startswith("Batch "))
    assert all(f"{batch}:" in run_log for batch in batches_said)  # the tail was flushed
    proxy.delay = 0.0
    process, log = start(db, env, "--resume", "--json")
    assert process.wait(timeout=120) == 0, log.read_text()
    [entry] = ledger(db)
    assert entry["counts"]["processed"] == 3000, entry["counts"]
    db.assert_normalized()


@pytest.mark.slow
def test_nan_as_a_previous_value_is_restored_once_and_then_found_as_before(
        db: Database) -> None:
    db.seed({f"n{i}": {"style": ["Goth"], "normalized": {"weird": math.nan, "style": []}}
             for i in range(5)})
    assert db.invoke(backfill, ["--job-id", "bf-nan"]).exit_code == 0
    first = db.invoke(rollback, ["--run-id", "bf-nan"])
    assert first.exit_code == 0, first.output
    second = db.invoke(rollback, ["--run-id", "bf-nan", "--json"])
    assert second.exit_code == 0, second.output
    stats = json.loads(second.stdout)
    assert (stats["total_updated"], stats["total_errors"]) == (0, 0)
    assert all(math.isnan(item["normalized"]["weird"]) for item in db.documents().values())


def test_a_resumed_run_says_what_it_did_not_look_at(db: Database) -> None:
    db.seed(make_wardrobe(100))
    assert db.invoke(backfill, ["--job-id", "bf-r", "--batch-size", "25",
                                "--parallel-reads", "1"]).exit_code == 0
    ids = sorted(db.documents())
    runs = db.client.collection(DEFAULT_LEDGER_COLLECTION)
    runs.document("bf-r").update({"status": "interrupted", "checkpoint": ids[49]})
    for doc_id in ids[:10]:  # the app adds or strips items before the checkpoint meanwhile
        db.client.collection(db.collection).document(doc_id).update(
            {"normalized": None})
    result = db.invoke(backfill, ["--resume", "bf-r"])
    assert result.exit_code == 0, result.output
    assert "Coverage:           90/100 carry normalized (90.0%)" in result.stdout
    assert ("⚠️  10 items lack normalized: a resumed run does not re-read the items before "
            "its checkpoint") in result.stderr


@pytest.mark.slow
def test_kill_9_and_resume_keep_working_with_the_lease(db: Database, proxy: TcpProxy) -> None:
    env, process, log = slow_run(db, proxy, 1000, "Batch 2:", "--batch-size", "25")
    process.kill()
    assert process.wait() == -signal.SIGKILL, log.read_text()  # killed, not finished
    proxy.delay = 0.0
    process, log = start(db, env, "--resume")
    assert process.wait(timeout=120) == 0, log.read_text()
    assert "its process is gone" in log.read_text()
    db.assert_normalized()


def test_a_heartbeat_thread_does_not_outlive_its_run(db: Database) -> None:
    db.seed(make_wardrobe(10))
    assert db.invoke(backfill, ["--yes"]).exit_code == 0
    assert not [t for t in threading.enumerate() if t.name == "lease"]


def test_a_run_whose_lease_was_taken_over_stops(db: Database) -> None:
    policy = RetryPolicy(max_total_wait=5)
    mine = Lease(db.client, DEFAULT_LEDGER_COLLECTION, "wardrobe", "run-a", "0", "backfill",
                 policy, heartbeat_seconds=0.1)
    assert mine.acquire() is None
    stop = StopRequest()
    mine.start_heartbeat(stop)
    # Another console took the lease over (this run's heartbeat looked stale to it).
    db.client.collection(DEFAULT_LEDGER_COLLECTION).document("lease-wardrobe").update(
        {"run_id": "run-b"})
    assert stop.wait(5)
    assert mine.give_back() is False  # lost: not given back
    assert mine.lost == stop.reason == ("the lease of collection 'wardrobe' is now held by "
                                        "run run-b: this run stopped writing")
    # A lease taken over is not given back by its old holder: run-b keeps it.
    assert db.documents(DEFAULT_LEDGER_COLLECTION)["lease-wardrobe"]["run_id"] == "run-b"


@pytest.mark.slow
def test_a_cli_run_whose_lease_is_taken_over_stops_with_exit_3(db: Database,
                                                               backend: Backend) -> None:
    db.seed(make_wardrobe(300))
    seeded = db.update_times()
    backend.mode = "failing"  # the run is held at its gate from the start, lease kept
    process, log = start(db, db.env, "--throttle-url", backend.url, "--throttle-interval",
                         "0.1", "--heartbeat-seconds", "0.2")
    wait_for(log, "⏸  Throttled: ")
    # Another console took the lease over (this run's heartbeat looked stale to it).
    db.client.collection(DEFAULT_LEDGER_COLLECTION).document("lease-wardrobe").update(
        {"run_id": "backfill-other"})
    assert process.wait(timeout=60) == 3, log.read_text()
    err = log.read_text()
    assert ("❌ the lease of collection 'wardrobe' is now held by run backfill-other: this "
            "run stopped writing") in err
    assert "To continue from the checkpoint: python3 run_backfill_production.py" in err
    assert db.update_times() == seeded
    assert db.documents(DEFAULT_LEDGER_COLLECTION)["lease-wardrobe"]["run_id"] == (
        "backfill-other")  # the old holder does not give back what is not its own
    [entry] = ledger(db)
    assert entry["status"] == "failed" and entry["stopped_because"] == (
        "the lease of collection 'wardrobe' is now held by run backfill-other: this run "
        "stopped writing")


@pytest.mark.slow
def test_a_dry_run_takes_no_lease_and_works_beside_a_live_run(db: Database,
                                                              backend: Backend) -> None:
    db.seed(make_wardrobe(120))
    backend.mode = "failing"  # the live run holds the lease, held at its gate
    process, log = start(db, db.env, "--throttle-url", backend.url, "--throttle-interval",
                         "0.1")
    wait_for(log, "⏸  Throttled: ")
    lease = db.client.collection(DEFAULT_LEDGER_COLLECTION).document("lease-wardrobe")
    live = lease.get().to_dict()
    assert live["holders"]["0"]["pid"] == process.pid
    result = db.invoke(backfill, ["--dry-run", "--json"])
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["total_would_update"] == 120
    after = lease.get().to_dict()  # still the live run's alone
    assert after["run_id"] == live["run_id"] and after["holders"].keys() == {"0"}
    assert after["holders"]["0"]["pid"] == process.pid
    assert [e["run_id"] for e in ledger(db)] == [live["run_id"]]  # no entry of its own
    process.send_signal(signal.SIGINT)
    assert process.wait(timeout=60) == 130, log.read_text()


def test_a_bare_resume_picks_the_newest_unfinished_run(db: Database) -> None:
    db.seed(make_wardrobe(60))
    runs = db.client.collection(DEFAULT_LEDGER_COLLECTION)
    for run_id in ("bf-older", "bf-newer"):
        assert db.invoke(backfill, ["--job-id", run_id, "--force"]).exit_code == 0
        runs.document(run_id).update({"status": "interrupted", "checkpoint": None})
    result = db.invoke(backfill, ["--resume", "--json"])
    assert result.exit_code == 0, result.output
    assert "↩️  Resuming run bf-newer (interrupted" in result.stderr
    statuses = {e["run_id"]: e["status"] for e in ledger(db)}
    assert statuses == {"bf-older": "interrupted", "bf-newer": "completed"}
