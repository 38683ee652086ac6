"""Shards: disjoint, complete, balanced for random IDs; the partition-query path; and four
backfill processes at once on one collection."""

from __future__ import annotations

import json
import random
import signal
import string
import subprocess
import sys
import time
import uuid
from collections import Counter
from pathlib import Path
from typing import Any

import pytest
from google.cloud.firestore_v1.base_query import QueryPartition

from backfill.errors import ConfigurationError
from backfill.pager import KEYS_ONLY, iter_pages
from backfill.retry import RetryPolicy
from backfill.shards import (
    KEY_SPACE,
    PARTITION_QUERY,
    Shard,
    compute_boundaries,
    key_space_boundaries,
    parse_shard,
    shard_from,
    shard_range,
)
from run_backfill_production import main as backfill
from scripts.backfill_validation import main as validate
from tests.conftest import REPO, Database
from tests.helpers import STARTED, Backend, via, wait_for
from tools.tcp_proxy import TcpProxy


def test_parse_shard() -> None:
    assert parse_shard("2/7") == Shard(2, 7)
    for bad in ("7/7", "-1/3", "1/0", "a/b", "3"):
        with pytest.raises(ConfigurationError):
            parse_shard(bad)


def test_shard_comes_from_the_option_then_the_batch_engine() -> None:
    assert shard_from("1/4", None, {"CLOUD_RUN_TASK_INDEX": "3"}) == Shard(1, 4)
    cloud_run = {"CLOUD_RUN_TASK_INDEX": "3", "CLOUD_RUN_TASK_COUNT": "5"}
    assert shard_from(None, None, cloud_run) == Shard(3, 5)
    single = {"CLOUD_RUN_TASK_INDEX": "0", "CLOUD_RUN_TASK_COUNT": "1"}
    assert shard_from(None, None, single) is None
    assert shard_from(None, 6, {"JOB_COMPLETION_INDEX": "5"}) == Shard(5, 6)
    with pytest.raises(ConfigurationError, match="--shard-count"):
        shard_from(None, None, {"JOB_COMPLETION_INDEX": "5"})
    assert shard_from(None, None, {}) is None


def test_key_space_boundaries_increase() -> None:
    for first, last in (("0000", "zzzz"), ("item000001", "item009999"), ("a", "a"), ("", "~")):
        for count in (2, 4, 7):
            bounds = key_space_boundaries(first, last, count)
            assert len(bounds) == count - 1 and bounds == sorted(bounds) and all(bounds)


def random_ids(rng: random.Random, n: int) -> list[str]:
    alphabet = string.ascii_letters + string.digits
    return ["".join(rng.choices(alphabet, k=20)) for _ in range(n)]


ID_STYLES = {
    "random": random_ids,
    "sequential": lambda rng, n: [f"item{i:06d}" for i in range(1, n + 1)],
    "uuid": lambda rng, n: [str(uuid.UUID(int=rng.getrandbits(128), version=4))
                            for _ in range(n)],
    "unusual": lambda rng, n: [f"{rng.choice(['É', ' ', '~', '!', 'ß', '😀', '__x', '.a'])}"
                               f"{i}{rng.choice(['', ' ', '-', '#', '%'])}" for i in range(n)],
}


@pytest.mark.parametrize("style", list(ID_STYLES))
@pytest.mark.slow
def test_shards_are_disjoint_complete_and_balanced(db: Database, style: str) -> None:
    ids = ID_STYLES[style](random.Random(4), 700)
    db.seed([(doc_id, {"n": 1}) for doc_id in ids])
    collection = db.client.collection(db.collection)
    policy = RetryPolicy()
    for count in (1, 2, 4, 7):
        warnings: list[str] = []
        boundaries, method = compute_boundaries(db.client, db.collection, count, policy,
                                                warnings.append)
        # The emulator has no partition queries: the key-space split, with a warning.
        assert method == KEY_SPACE and (count == 1 or "key space" in warnings[0])
        seen: Counter[str] = Counter()
        sizes = []
        for index in range(count):
            from_id, before_id = shard_range(boundaries, Shard(index, count))
            shard_ids = [snap.id for page in iter_pages(
                collection, fields=KEYS_ONLY, page_size=97, policy=policy, from_id=from_id,
                before_id=before_id) for snap in page]
            seen.update(shard_ids)
            sizes.append(len(shard_ids))
        assert set(seen) == set(ids) and max(seen.values()) == 1  # complete and disjoint
        if style == "random":
            assert max(sizes) <= 1.5 * len(ids) / count, sizes


class PartitioningGroup:
    """Stands in for a collection-group query on a server that has partition queries (the
    emulator does not implement them): it answers with the cursors it was given."""

    def __init__(self, cursors: list[Any]) -> None:
        self.cursors = cursors

    def get_partitions(self, count: int, **_: Any) -> list[QueryPartition]:
        starts = [None, *self.cursors]
        return [QueryPartition(None, start, end)
                for start, end in zip(starts, [*self.cursors, None], strict=True)]


class ClientWithPartitions:
    def __init__(self, real: Any, cursors: list[Any]) -> None:
        self.real, self.group = real, PartitioningGroup(cursors)

    def collection_group(self, name: str) -> PartitioningGroup:
        return self.group

    def collection(self, name: str) -> Any:
        return self.real.collection(name)


def test_partition_query_boundaries_leave_nested_collections_out(db: Database) -> None:
    c = db.client
    cursors = [c.document("users/u1/wardrobe/a5"), c.document("wardrobe/d"),
               c.document("wardrobe/h"), c.document("users/u9/wardrobe/zz"),
               c.document("wardrobe/p"), c.document("other/x/wardrobe/q")]
    warnings: list[str] = []
    client: Any = ClientWithPartitions(c, cursors)
    boundaries, method = compute_boundaries(client, "wardrobe", 4, RetryPolicy(),
                                            warnings.append)
    assert (boundaries, method, warnings) == (["d", "h", "p"], PARTITION_QUERY, [])
    boundaries, _ = compute_boundaries(client, "wardrobe", 2, RetryPolicy(), warnings.append)
    assert boundaries == ["h"]  # the middle of the split points the server gave


def test_too_few_partition_points_fall_back_to_the_key_space(db: Database) -> None:
    db.seed({"a": {}, "m": {}, "z": {}})
    client: Any = ClientWithPartitions(db.client, [db.client.document("wardrobe/m")])
    warnings: list[str] = []
    boundaries, method = compute_boundaries(client, "wardrobe", 4, RetryPolicy(),
                                            warnings.append)
    assert method == KEY_SPACE and len(boundaries) == 3
    assert "too few split points" in warnings[0]


def launch(db: Database, index: int, run_id: str, env: dict[str, str] | None = None,
           *extra: str) -> tuple[subprocess.Popen[str], Path]:
    err = db.output_dir.parent / f"shard{index}-{time.monotonic_ns()}.txt"
    db.output_dir.mkdir(parents=True, exist_ok=True)
    with err.open("w") as stderr:
        process = subprocess.Popen(
            [sys.executable, "run_backfill_production.py", "--shard", f"{index}/4",
             "--job-id", run_id, "--batch-size", "40", "--quiet", "--json", "--output-dir",
             str(db.output_dir), *extra], cwd=REPO, env=env or db.env,
            stdout=subprocess.PIPE, stderr=stderr, text=True)
    STARTED.append(process)
    return process, err


@pytest.mark.slow
def test_four_shards_at_once_then_one_killed_and_resumed(db: Database, proxy: TcpProxy,
                                                         backend: Backend) -> None:
    ids = random_ids(random.Random(9), 2000)
    db.seed([(doc_id, {"style": ["Boho"], "n": i}) for i, doc_id in enumerate(ids)])
    # The victim (shard 2) is slowed and then held at its gate, so that it is killed
    # mid-way whatever the machine's load: after its first batch, before its last.
    proxy.delay = 0.02
    launched = [launch(db, index, "job-1", via(db, proxy) if index == 2 else None,
                       *(["--throttle-url", backend.url, "--throttle-interval", "0.1"]
                         if index == 2 else [])) for index in range(4)]
    victim, victim_err = launched[2]
    wait_for(victim_err, "Batch 1:")
    backend.mode = "failing"
    wait_for(victim_err, "⏸  Throttled: ")
    victim.send_signal(signal.SIGKILL)
    assert victim.wait() == -signal.SIGKILL, victim_err.read_text()
    backend.mode = "healthy"
    proxy.delay = 0.0
    results = []
    for index, (process, err) in enumerate(launched):
        if index != 2:
            results.append(json.loads(process.communicate(timeout=120)[0]))
            assert process.returncode == 0, err.read_text()
    again, err = launch(db, 2, "job-1")  # the same command: the shard carries on
    results.append(json.loads(again.communicate(timeout=120)[0]))
    assert again.returncode == 0, err.read_text()
    said = err.read_text()  # (its parts, or one cursor if it was killed before reading any)
    assert ("↩️  Continuing each of its 4 parts after its own checkpoint (4 parts, " in said
            or "↩️  Continuing after " in said), said
    db.assert_normalized()
    ledger = db.client.collection("_backfill_runs").document("job-1")
    shards = {s.id: s.to_dict() for s in ledger.collection("shards").stream()}
    assert sorted(shards) == ["0", "1", "2", "3"]
    assert all(s["status"] == "completed" for s in shards.values())
    assert len(shards["2"]["resumed_at"]) == 1
    # Every item processed exactly once across the shards, the killed one included. What
    # the killed task wrote after its last progress record (written in the background, at
    # most once a second) is read again on resume and counted as skipped then.
    assert sum(s["counts"]["processed"] for s in shards.values()) == 2000
    updated = sum(s["counts"]["updated"] for s in shards.values())
    skipped = sum(s["counts"]["skipped"] for s in shards.values())
    assert updated + skipped == 2000 and skipped <= shards["2"]["counts"]["processed"]
    run = ledger.get().to_dict()
    assert run["shard_count"] == 4 and len(run["boundaries"]) == 3
    assert {r["shard"] for r in results} == {"0/4", "1/4", "2/4", "3/4"}
    # A task started again after its shard completed has nothing to do.
    done = db.invoke(backfill, ["--shard", "1/4", "--job-id", "job-1"])
    assert done.exit_code == 0, done.output
    assert "✅ Shard 1/4 of run job-1 is already completed: nothing to do" in done.stderr
    validation = db.invoke(validate, ["--all", "--shard", "2/4", "--run-id", "job-1", "--json"])
    report = json.loads(validation.stdout)
    assert validation.exit_code == 0 and report["mode"] == "shard 2/4"
    assert report["checked"] == shards["2"]["counts"]["processed"]
    assert [s["status"] for s in report["recorded_run"]["shards"]] == ["completed"] * 4


@pytest.mark.slow
def test_a_sharded_run_needs_a_run_id(db: Database) -> None:
    done = db.invoke(backfill, ["--shard", "0/2"])
    assert done.exit_code == 2
    assert done.stderr.strip() == (
        "❌ a sharded run needs --job-id (Cloud Run Jobs set CLOUD_RUN_EXECUTION), so that "
        "its tasks share one entry in the ledger")
    env = {**db.env, "CLOUD_RUN_TASK_INDEX": "0", "CLOUD_RUN_TASK_COUNT": "2",
           "CLOUD_RUN_EXECUTION": "exec-7"}
    db.seed({"a": {"style": ["Goth"]}})
    done = db.run_script("run_backfill_production.py", [], env=env)
    assert done.returncode == 0, done.stderr
    assert "Shard 0/2" in done.stderr
