"""Samples in which every item is equally likely, at a cost that follows the sample: the
exact scan for small collections, random windows of the key space for large ones, and
the scan again, said, where IDs are bunched. On the real emulator; "large" is made small
here by lowering the exact method's limit (EXACT_LIMIT) for a test."""

from __future__ import annotations

import json
import re
import statistics
from collections import Counter
from typing import Any

import pytest
from click.testing import CliRunner

from backfill import sampling
from backfill.retry import RetryPolicy
from backfill.sampling import FULL_SCAN, RANDOM_WINDOWS, draw_sample
from run_backfill_production import main as backfill
from scripts.backfill_validation import main as validate
from tests.conftest import Database
from tests.helpers import auto_ids
from tools.tcp_proxy import TcpProxy

POLICY = RetryPolicy(max_total_wait=10)


def small_items(ids: list[str]) -> list[tuple[str, dict[str, Any]]]:
    return [(doc_id, {"style": ["Boho"]}) for doc_id in ids]


@pytest.fixture
def large(monkeypatch: pytest.MonkeyPatch) -> None:
    """Collections of more than 100 items count as large: random windows are drawn."""
    monkeypatch.setattr(sampling, "EXACT_LIMIT", 100)


@pytest.mark.slow
def test_sequential_ids_of_a_small_collection_fill_the_sample_at_a_bounded_cost(
        db: Database) -> None:
    """Sequential 20-character IDs: before, they passed for auto IDs and a sample of 100
    checked 1 item at 2,232 reads."""
    db.seed(small_items([f"item{n:016d}" for n in range(1, 2001)]))
    result = db.invoke(validate, ["--sample-size", "100", "--seed", "1", "--json"])
    assert result.exit_code == 1, result.output  # nothing is normalized yet
    report = json.loads(result.stdout)
    assert (report["checked"], report["sample_method"]) == (100, FULL_SCAN)
    assert report["sample_reads"] <= 2000 + 10
    assert "🎲 Sample of 100 (asked 100): exact" in result.stderr


@pytest.mark.slow
def test_random_windows_find_broken_items_all_over_the_key_range(db: Database,
                                                                  large: None) -> None:
    ids = auto_ids(3000, 1)
    db.seed(small_items(ids))
    assert db.invoke(backfill, []).exit_code == 0
    broken = ids[::25]  # 120 broken items, spread over the whole range
    for doc_id in broken:
        db.client.collection(db.collection).document(doc_id).update({"normalized": None})
    result = db.invoke(validate, ["--sample-size", "600", "--seed", "3", "--json"])
    assert result.exit_code == 1, result.output  # the broken ones are found
    report = json.loads(result.stdout)
    assert report["sample_method"] == RANDOM_WINDOWS and 600 <= report["checked"] <= 900
    # About one read per item, one per window, and the first characters counted.
    assert report["checked"] <= report["sample_reads"] < 1.6 * report["checked"]
    found = sorted(e["id"] for e in report["invalid_items"])
    assert set(found) <= set(broken) and len(found) >= 8
    assert found[0] < ids[len(ids) // 4] and found[-1] > ids[3 * len(ids) // 4]
    assert re.search(r"🎲 Sample of \d+ \(asked 600\): random windows of the ID key space",
                     result.stderr)


@pytest.mark.parametrize("ids, why", [
    ([f"item{n:016d}" for n in range(400)], "400 IDs start with 'i'"),
    (auto_ids(300, 4) + [f"zz-user-{n:06d}" for n in range(300)], "IDs start with 'z'"),
])
def test_bunched_ids_of_a_large_collection_fall_back_to_the_exact_scan_and_say_why(
        db: Database, large: None, ids: list[str], why: str) -> None:
    db.seed(small_items(ids))
    result = db.invoke(validate, ["--sample-size", "50", "--json"])
    report = json.loads(result.stdout)
    assert report["sample_method"] == FULL_SCAN and report["checked"] == 50
    assert why in result.stderr
    assert "random windows would not draw a smooth sample" in result.stderr


def test_half_auto_ids_half_slugs_are_both_sampled_in_proportion(db: Database,
                                                                 large: None) -> None:
    """Before, 0 of 100 sampled items came from the slug half."""
    slugs = [f"zz-user-{n:06d}" for n in range(600)]
    db.seed(small_items(auto_ids(600, 5) + slugs))
    collection = db.client.collection(db.collection)
    sample = draw_sample(collection, 200, 7, POLICY, total=1200)
    assert sample.method == FULL_SCAN  # the IDs' first characters gave them away
    from_slugs = sum(doc_id in set(slugs) for doc_id in sample.ids)
    assert len(sample.ids) == 200 and 70 <= from_slugs <= 130  # half, give or take 4 SD


@pytest.mark.slow
def test_every_auto_id_item_is_equally_likely(db: Database, monkeypatch: pytest.MonkeyPatch,
                                              ) -> None:
    """Over 60 samples of 40 from 400 items, how often each item is drawn spreads as a
    uniform sample's would: binomial, at the share drawn (measured: SD 2.7 where that
    gives 2.5, no item never drawn). Random points, an item's chance following its gap,
    gave SD 5.7 and 47 items never drawn."""
    monkeypatch.setattr(sampling, "EXACT_LIMIT", 0)
    ids = auto_ids(400, 6)
    db.seed(small_items(ids))
    collection = db.client.collection(db.collection)
    draws: Counter[str] = Counter()
    for seed in range(60):
        sample = draw_sample(collection, 40, seed, POLICY, total=400)
        assert sample.method == RANDOM_WINDOWS and 40 <= len(set(sample.ids)) <= 70
        draws.update(sample.ids)
    counts = [draws[doc_id] for doc_id in ids]
    share = statistics.mean(counts) / 60
    binomial = (60 * share * (1 - share)) ** 0.5
    assert statistics.pstdev(counts) < 1.25 * binomial, (statistics.pstdev(counts), binomial)
    assert sum(count == 0 for count in counts) <= 3


def test_exact_sample_can_be_asked_for(db: Database, large: None) -> None:
    db.seed(small_items(auto_ids(300, 2)))
    collection = db.client.collection(db.collection)
    sample = draw_sample(collection, 20, 1, POLICY, exact=True, total=300)
    assert sample.method == FULL_SCAN and len(sample.ids) == 20 and sample.reads == 300
    sample = draw_sample(collection, 20, 1, POLICY, total=300)
    assert sample.method == RANDOM_WINDOWS and len(set(sample.ids)) >= 20


@pytest.mark.slow
def test_a_100_item_sample_costs_about_the_same_on_2000_and_20000_items(
        db: Database, large: None) -> None:
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
            report = json.loads(result.stdout)
            assert report["sample_method"] == RANDOM_WINDOWS
            costs[count] = (report["sample_reads"], proxy.bytes_received)
    (reads_small, bytes_small), (reads_large, bytes_large) = costs[2000], costs[20000]
    assert reads_large <= 1.5 * reads_small and bytes_large <= 1.5 * bytes_small, costs
