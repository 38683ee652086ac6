"""One writer per collection, for real: the lease holds across PIDs, PID namespaces, host
names, clocks and engine retries; a holder that lost it stops at its next batch; a
hand-edited lease is one clear line. On the real emulator; containers are Linux
namespaces made with `unshare` (the suite runs as root)."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import time
from datetime import timedelta
from typing import Any

import pytest

from backfill import lease as lease_module
from backfill import ledger as ledger_module
from backfill import stats as stats_module
from backfill.batch import BatchOutcome
from backfill.errors import ExitCode
from backfill.lease import LeaseLost
from backfill.ledger import DEFAULT_LEDGER_COLLECTION
from backfill.process_identity import process_start
from run_backfill_production import main as backfill
from tests.conftest import Database
from tests.helpers import REPO, SCRIPT, Backend, in_namespaces, ledger, start, wait_for
from tests.test_writing_run import Told, writing_run
from tools.sample_data import make_wardrobe

HELD = "⏸  Throttled: "  # a run held at its gate by a failing backend keeps its lease
BUSY = re.compile(r"❌ collection 'wardrobe' is being written by run (\S+) \(\S+@(\S+), pid "
                  r"(\d+), last heartbeat (\d+)s ago\): one writing run at a time; it is "
                  r"taken to be gone once its heartbeat is (\d+)s old, in (\d+)s")


def held_run(db: Database, backend: Backend, *args: str,
             prefix: tuple[str, ...] = ()) -> tuple[subprocess.Popen[str], Any]:
    backend.mode = "failing"
    process, log = start(db, db.env, "--throttle-url", backend.url, "--throttle-interval",
                         "0.1", *args, prefix=prefix)
    wait_for(log, HELD)
    return process, log


def lease_doc(db: Database) -> Any:
    return db.client.collection(DEFAULT_LEDGER_COLLECTION).document("lease-wardrobe")


def last_line(text: str) -> str:
    return text.strip().splitlines()[-1]


def run_in(prefix: tuple[str, ...], db: Database, *args: str,
           env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*prefix, sys.executable, SCRIPT, "--yes", "--quiet", "--output-dir",
                           str(db.output_dir), *args], cwd=REPO, env=env or db.env,
                          capture_output=True, text=True, timeout=120)


@pytest.mark.slow
def test_a_live_holder_that_is_pid_1_of_another_container_with_the_same_host_name_keeps_its_lease(
        db: Database, backend: Backend) -> None:
    """Two containers that share the host name (docker --network host), each running the
    tool as PID 1: same host, same PID, different processes."""
    db.seed(make_wardrobe(50))
    seeded = db.update_times()
    first, log = held_run(db, backend, prefix=in_namespaces())
    assert lease_doc(db).get().to_dict()["holders"]["0"]["pid"] == 1
    second = run_in(in_namespaces(), db, "--throttle-url", backend.url)
    assert second.returncode == ExitCode.USAGE, second.stderr
    busy = BUSY.fullmatch(last_line(second.stderr))
    assert busy is not None, second.stderr
    assert busy.group(3) == "1" and int(busy.group(4)) < 60
    assert first.poll() is None, log.read_text()  # not taken over: still running, held
    assert db.update_times() == seeded
    first.kill()
    first.wait()


@pytest.mark.slow
def test_a_dead_holders_pid_taken_by_a_later_process_does_not_block(
        db: Database, backend: Backend) -> None:
    """kill -9, and the PID is soon someone else's (a container's PID 1 is): the process
    check sees a process of that PID started later, and takes over at once."""
    db.seed(make_wardrobe(40))
    first, _ = held_run(db, backend)
    first.kill()
    first.wait()
    later = subprocess.Popen(["sleep", "60"])
    try:
        lease_doc(db).update({"holders.`0`.pid": later.pid})  # as if the PID was reused
        backend.mode = "healthy"
        result = db.invoke(backfill, ["--yes"])
        assert result.exit_code == 0, result.output
        assert re.search(rf"took over the lease of run backfill-\S+ \(\S+, pid {later.pid}, "
                         r"last heartbeat \d+s ago\): its process is gone", result.stderr)
    finally:
        later.kill()
        later.wait()
    db.assert_normalized()


@pytest.mark.slow
def test_a_stale_heartbeat_is_gone_even_when_its_pid_is_a_live_process(
        db: Database, backend: Backend) -> None:
    """The process check never blocks a takeover whose heartbeat is stale: a holder whose
    record names a live process (here: this test's own) is gone once its heartbeat is."""
    db.seed(make_wardrobe(40))
    first, _ = held_run(db, backend, "--lease-timeout-seconds", "1.5",
                        "--heartbeat-seconds", "0.3")
    first.kill()
    first.wait()
    lease_doc(db).update({"holders.`0`.pid": os.getpid(),
                          "holders.`0`.process_started": process_start(os.getpid())})
    time.sleep(2.0)  # past the holder's own takeover age, by the database's clock
    backend.mode = "healthy"
    result = db.invoke(backfill, ["--yes"])
    assert result.exit_code == 0, result.output
    assert re.search(r"took over the lease of run backfill-\S+ \(.*last heartbeat (\d+)s "
                     r"ago\): its heartbeat is older than 1\.5s", result.stderr), result.stderr


@pytest.mark.parametrize("skew", [+300.0, -300.0])
@pytest.mark.slow
def test_a_host_whose_clock_is_off_takes_no_live_lease_and_shows_no_negative_age(
        db: Database, backend: Backend, monkeypatch: pytest.MonkeyPatch, skew: float) -> None:
    """An injected clock: the wall clock this tool reads (utc_now, for every time it
    writes or shows) is `skew` seconds off. The age of a heartbeat is the database's
    clock minus the database's, so nothing changes. (The client library's own deadlines
    use the real clock: they are not this test's subject.)"""
    db.seed(make_wardrobe(40))
    first, log = held_run(db, backend)
    real_now = stats_module.utc_now
    for module in (lease_module, ledger_module, stats_module):
        monkeypatch.setattr(module, "utc_now", lambda: real_now() + timedelta(seconds=skew))
    result = db.invoke(backfill, ["--yes"])
    assert result.exit_code == ExitCode.USAGE, result.output
    busy = BUSY.fullmatch(last_line(result.stderr))
    assert busy is not None, result.stderr
    age, left = int(busy.group(4)), int(busy.group(6))
    assert age < 60 and 60 < left <= 120
    assert "-" not in busy.group(4) + busy.group(6)
    assert first.poll() is None, log.read_text()
    first.kill()
    first.wait()


@pytest.mark.parametrize("how", ["taken over", "deleted", "edited by hand"])
def test_a_holder_that_lost_its_lease_writes_no_further_batch(db: Database, how: str) -> None:
    """The fence: each batch's journal commit carries a check of the lease, so the batch
    after the loss writes nothing. The heartbeat is slowed down here so that only the
    fence can notice."""
    db.seed({f"i{n:03d}": {"style": ["Goth"]} for n in range(100)})
    lease = lease_doc(db)

    def lose(outcome: BatchOutcome) -> None:
        if outcome.number != 1:
            return
        if how == "taken over":
            lease.update({"run_id": "bf-other"})
        elif how == "deleted":
            lease.delete()
        else:
            lease.update({"holders": ["not", "a", "map"]})

    run = writing_run(db, Told(lose), job_id="bf-fenced", heartbeat_seconds=60.0)
    with pytest.raises(LeaseLost) as lost:
        run.execute()
    assert db.count_where_map() == 10  # batch 1 only: batch 2 was stopped at its journal
    expected = {
        "taken over": "the lease of collection 'wardrobe' is now held by run bf-other: this "
                      "run stopped writing",
        "deleted": "the lease of collection 'wardrobe' is gone (its document "
                   "_backfill_runs/lease-wardrobe was deleted): this run stopped writing",
        "edited by hand": "the lease document _backfill_runs/lease-wardrobe is not what this "
                          "tool writes: its holders are list, not a map. If no run is "
                          "writing collection 'wardrobe' (python3 "
                          "scripts/backfill_control.py status), delete that document and "
                          "start again: this run stopped writing"}[how]
    assert str(lost.value) == expected
    [entry] = [e for e in ledger(db) if e.get("run_id") == "bf-fenced"]
    assert (entry["status"], entry["stopped_because"]) == ("failed", expected)


@pytest.mark.slow
def test_a_cli_run_whose_lease_is_deleted_exits_3_at_its_next_batch(db: Database) -> None:
    db.seed(make_wardrobe(600))
    process, log = start(db, db.env, "--batch-size", "20", "--parallel-batches", "1",
                         "--max-writes-per-second", "100", "--initial-writes-per-second",
                         "100")
    wait_for(log, "Batch 2:")
    lease_doc(db).delete()
    assert process.wait(timeout=60) == ExitCode.FATAL, log.read_text()
    err = log.read_text()
    assert ("❌ the lease of collection 'wardrobe' is gone (its document "
            "_backfill_runs/lease-wardrobe was deleted): this run stopped writing") in err
    assert "Traceback" not in err
    batches = [line for line in err.splitlines() if line.startswith("Batch ")]
    written = db.count_where_map()
    assert written <= 20 * (len(batches) + 1)  # at most the batch in flight, past the lines


@pytest.mark.parametrize("edit, problem", [
    ({"holders": ["a", "list"]}, "its holders are list, not a map"),
    ({"holders.`0`.pid": "12"}, "holder '0' has no pid int"),
    ({"holders.`0`.heartbeat_at": "yesterday", "holders.`0`.token": 7},
     "holder '0' has no token str"),
    ({"run_id": None}, "its run_id is not a string"),
])
@pytest.mark.slow
def test_a_hand_edited_lease_is_one_clear_line_at_the_start(
        db: Database, backend: Backend, edit: dict[str, Any], problem: str) -> None:
    db.seed(make_wardrobe(30))
    first, _ = held_run(db, backend)
    first.kill()
    first.wait()
    lease_doc(db).update(edit)
    seeded = db.update_times()
    result = db.invoke(backfill, ["--yes"])
    assert result.exit_code == ExitCode.USAGE, result.output
    assert last_line(result.stderr) == (
        f"❌ the lease document _backfill_runs/lease-wardrobe is not what this tool writes: "
        f"{problem}. If no run is writing collection 'wardrobe' (python3 "
        "scripts/backfill_control.py status), delete that document and start again")
    assert "Traceback" not in result.output
    assert db.update_times() == seeded


@pytest.mark.slow
def test_a_hand_edited_lease_mid_run_is_exit_3_with_the_reason(db: Database,
                                                               backend: Backend) -> None:
    db.seed(make_wardrobe(30))
    process, log = held_run(db, backend, "--heartbeat-seconds", "0.2")
    lease_doc(db).update({"holders": "yesterday"})
    assert process.wait(timeout=60) == ExitCode.FATAL, log.read_text()
    err = log.read_text()
    assert ("❌ the lease document _backfill_runs/lease-wardrobe is not what this tool "
            "writes: its holders are str, not a map.") in err
    assert "Traceback" not in err


@pytest.mark.slow
def test_a_killed_shard_task_retried_by_the_engine_on_another_host_carries_on_at_once(
        db: Database) -> None:
    """Cloud Run retries a failed task at once, elsewhere, with the same index and
    execution: its new attempt takes the old attempt's holder over, and says so."""
    db.seed(make_wardrobe(800))
    cloud_run = {**db.env, "CLOUD_RUN_TASK_INDEX": "0", "CLOUD_RUN_TASK_COUNT": "2",
                 "CLOUD_RUN_EXECUTION": "wardrobe-backfill-x1"}
    first, log = start(db, {**cloud_run, "CLOUD_RUN_TASK_ATTEMPT": "0"}, "--batch-size",
                       "20", "--max-writes-per-second", "100",
                       "--initial-writes-per-second", "100",
                       prefix=in_namespaces("task-0-a"))
    wait_for(log, "Batch 2:")
    first.kill()
    first.wait()
    retry = run_in(in_namespaces("task-0-b"), db,
                   env={**cloud_run, "CLOUD_RUN_TASK_ATTEMPT": "1"})
    assert retry.returncode == 0, retry.stderr
    assert re.search(r"⚠️  took over the lease of run wardrobe-backfill-x1 \(shard 0/2, "
                     r"\S+@task-0-a, pid 1, last heartbeat \d+s ago\): this is the engine's "
                     r"retry of its task \(Cloud Run task attempt 1\)", retry.stderr), retry.stderr
    [shard] = db.client.collection(DEFAULT_LEDGER_COLLECTION).document(
        "wardrobe-backfill-x1").collection("shards").stream()
    assert shard.to_dict()["status"] == "completed"


@pytest.mark.slow
def test_a_second_task_of_the_same_shard_without_an_engine_retry_is_refused(
        db: Database, backend: Backend) -> None:
    db.seed(make_wardrobe(40))
    first, _ = held_run(db, backend, "--job-id", "bf-twice", "--shard", "0/2")
    second = run_in(in_namespaces("elsewhere"), db, "--job-id", "bf-twice", "--shard", "0/2",
                    "--throttle-url", backend.url)
    assert second.returncode == ExitCode.USAGE, second.stderr
    assert "is being written by run bf-twice (shard 0/2, " in second.stderr
    first.kill()
    first.wait()


@pytest.mark.parametrize("name", ["lease-wardrobe", "lease-other"])
def test_run_ids_that_name_a_lease_are_refused(db: Database, name: str) -> None:
    db.seed(make_wardrobe(10))
    for args in (["--job-id", name], ["--resume", name]):
        result = db.invoke(backfill, ["--yes", *args])
        assert result.exit_code == ExitCode.USAGE, result.output
        option = args[0]
        assert last_line(result.stderr) == (
            f"❌ {option} {name!r} cannot name a run: IDs starting with 'lease-' are the "
            "ledger's own documents (the collections' leases)")
    assert db.count_where_map() == 0
    assert db.documents(DEFAULT_LEDGER_COLLECTION) == {}
