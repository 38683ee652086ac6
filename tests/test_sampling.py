"""Samples that cost what they sample: random points of the auto-ID key space, and the
exact full scan where IDs are not random; on the real emulator, bytes counted by the
project's proxy."""

from __future__ import annotations

import json
import random
import string
from typing import Any

import pytest
from click.testing import CliRunner

from backfill.retry import RetryPolicy
from backfill.sampling import FULL_SCAN, RANDOM_POINTS, draw_sample
from run_backfill_production import main as backfill
from scripts.backfill_validation import main as validate
from tests.conftest import Database
from tools.tcp_proxy import TcpProxy

ALPHABET = string.digits + string.ascii_letters


def auto_ids(count: int, seed: int) -> list[str]:
    rng = random.Random(seed)
    return sorted({"".join(rng.choice(ALPHABET) for _ in range(20)) for _ in range(count)})


def small_items(ids: list[str]) -> list[tuple[str, dict[str, Any]]]:
    return [(doc_id, {"style": ["Boho"]}) for doc_id in ids]


def test_a_sample_on_random_ids_finds_broken_items_all_over_the_key_range(
        db: Database) -> None:
    ids = auto_ids(3000, 1)
    db.seed(small_items(ids))
    assert db.invoke(backfill, []).exit_code == 0
    broken = ids[::25]  # 120 broken items, spread over the whole range
    for doc_id in broken:
        db.client.collection(db.collection).document(doc_id).update({"normalized": None})
    result = db.invoke(validate, ["--sample-size", "600", "--seed", "3", "--json"])
    assert result.exit_code == 1, result.output  # the broken ones are found
    report = json.loads(result.stdout)
    assert report["sample_method"] == RANDOM_POINTS
    assert 600 <= report["sample_reads"] < 1000  # draws of an item twice cost a read too
    found = sorted(e["id"] for e in report["invalid_items"])
    assert set(found) <= set(broken) and len(found) >= 8
    assert found[0] < ids[len(ids) // 4] and found[-1] > ids[3 * len(ids) // 4]
    assert "🎲 Sample of 600 (asked 600): random points of the ID key space" in result.stderr


def test_sequential_ids_fall_back_to_the_exact_scan_and_say_why(db: Database) -> None:
    ids = [f"item{n:05d}" for n in range(400)]
    db.seed(small_items(ids))
    result = db.invoke(validate, ["--sample-size", "50", "--json"])
    assert result.exit_code == 1, result.output  # nothing is normalized
    report = json.loads(result.stdout)
    assert report["sample_method"] == FULL_SCAN and report["sample_reads"] >= 400
    assert ("the IDs are not random auto IDs, so random points of the key space would not "
            "draw items evenly") in result.stderr
    sampled = [e["id"] for e in report["invalid_items"]]  # none normalized: all invalid
    assert len(sampled) == 50
    assert min(sampled) < "item00100" and max(sampled) > "item00300"  # not one end


def test_exact_sample_can_be_asked_for(db: Database) -> None:
    db.seed(small_items(auto_ids(300, 2)))
    policy = RetryPolicy(max_total_wait=10)
    collection = db.client.collection(db.collection)
    sample = draw_sample(collection, 20, 1, policy, exact=True)
    assert sample.method == FULL_SCAN and len(sample.ids) == 20 and sample.reads == 300
    sample = draw_sample(collection, 20, 1, policy)
    assert sample.method == RANDOM_POINTS and len(set(sample.ids)) == 20


@pytest.mark.slow
def test_a_100_item_sample_costs_the_same_on_2000_and_20000_items(db: Database) -> None:
    costs = {}
    for count in (2000, 20000):
        collection = f"wardrobe{count}"
        db.seed(small_items(auto_ids(count, count)), collection=collection)
        with TcpProxy(db.emulator.host) as proxy:
            env = {**db.env, "FIRESTORE_EMULATOR_HOST": proxy.host}
            result = CliRunner().invoke(validate, [
                "--collection", collection, "--sample-size", "100", "--json",
                "--output-dir", str(db.output_dir)], env=env)
            assert result.exit_code in (0, 1), result.output
            costs[count] = (json.loads(result.stdout)["sample_reads"], proxy.bytes_received)
    (reads_small, bytes_small), (reads_large, bytes_large) = costs[2000], costs[20000]
    assert reads_large <= 1.5 * reads_small and bytes_large <= 1.5 * bytes_small, costs
