"""`make bench`: the backfill against the alternatives, on the emulator, 40 ms away.

Starts an emulator, puts a delay proxy (tools/tcp_proxy.py) in front of it, seeds the same
messy wardrobe for each contender (a fresh project each, so nothing carries over) and
measures, through the proxy:
  (a) a bare scan of the collection with one cursor, in pages, with the field mask
  (b) the previous script's loop: one update per document, waiting for each answer
      (measured on the first --one-by-one items and reported per item: it is that slow)
  (c) a plain sequential loop: read a page, commit its batch, read the next
  (d) this tool's dry run
  (e) this tool's real run, rate limit off
  (f) this tool again on the same items: every item skipped
at a 40 ms and a 150 ms round trip; then the tool's peak memory at N and at 5xN, and what
a 100-item validation sample costs on 2,000 and on 20,000 items (reads, bytes).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import re
import resource
import subprocess
import sys
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from google.cloud import firestore

from backfill.pager import iter_pages
from backfill.retry import RetryPolicy
from normalizer import SOURCE_FIELD_PATHS, build_normalized, is_up_to_date, normalize_item
from tools.emulator import Emulator
from tools.sample_data import make_wardrobe
from tools.seed import seed
from tools.tcp_proxy import TcpProxy

REPO = Path(__file__).resolve().parent.parent
COLLECTION = "wardrobe"
POLICY = RetryPolicy()


def client_for(host: str, project: str) -> firestore.Client:
    os.environ["FIRESTORE_EMULATOR_HOST"] = host
    return firestore.Client(project=project)


def timed(action: Callable[[], int]) -> tuple[int, float]:
    started = time.perf_counter()
    count = action()
    return count, time.perf_counter() - started


def cpu_of(emulator: Emulator) -> tuple[float, float]:
    """(emulator CPU seconds, this process's and its children's CPU seconds) so far."""
    children = resource.getrusage(resource.RUSAGE_CHILDREN)
    return emulator.cpu_seconds(), time.process_time() + children.ru_utime + children.ru_stime


def bare_read(client: firestore.Client, page_size: int) -> int:
    count = 0
    for page in iter_pages(client.collection(COLLECTION), fields=SOURCE_FIELD_PATHS,
                           page_size=page_size, policy=POLICY):
        count += len(page)
    return count


def one_by_one(client: firestore.Client, limit: int) -> int:
    """The previous script: read, then update each document and wait for the answer."""
    count = 0
    now = datetime.now(UTC)
    for page in iter_pages(client.collection(COLLECTION), fields=SOURCE_FIELD_PATHS,
                           page_size=min(limit, 500), policy=POLICY, limit=limit):
        for snap in page:
            item = snap.to_dict() or {}
            if not is_up_to_date(item):
                snap.reference.update({"normalized": build_normalized(normalize_item(item),
                                                                      now)})
            count += 1
    return count


def sequential(client: firestore.Client, page_size: int) -> int:
    """Read a page, commit its batch, then read the next."""
    count = 0
    now = datetime.now(UTC)
    for page in iter_pages(client.collection(COLLECTION), fields=SOURCE_FIELD_PATHS,
                           page_size=page_size, policy=POLICY):
        batch = client.batch()
        for snap in page:
            item = snap.to_dict() or {}
            if not is_up_to_date(item):
                batch.update(snap.reference, {"normalized": build_normalized(
                    normalize_item(item), now)}, option=client.write_option(
                        last_update_time=snap.update_time))
        batch.commit()
        count += len(page)
    return count


def tool_run(host: str, project: str, args: list[str], output: Path) -> dict[str, Any]:
    """The CLI as an operator runs it, in its own process, with its peak memory."""
    env = {**os.environ, "FIRESTORE_EMULATOR_HOST": host, "GOOGLE_CLOUD_PROJECT": project}
    done = subprocess.run(
        [sys.executable, "-m", "tools.peak_rss", "run_backfill_production.py", "--json",
         "--quiet", "--output-dir", str(output), *args],
        cwd=REPO, env=env, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        raise SystemExit(f"the tool failed ({done.returncode}):\n{done.stderr[-2000:]}")
    stats: dict[str, Any] = json.loads(done.stdout)
    peak = re.search(r"PEAK_RSS_KIB=(\d+)", done.stderr)
    stats["peak_rss_mib"] = int(peak.group(1)) / 1024 if peak else float("nan")
    return stats


def sample_cost(host: str, proxy: TcpProxy, project: str, output: Path) -> tuple[int, int]:
    """(documents read to draw it, bytes received from the database) of a 100-item
    validation sample, the whole command."""
    env = {**os.environ, "FIRESTORE_EMULATOR_HOST": host, "GOOGLE_CLOUD_PROJECT": project}
    before = proxy.bytes_received
    done = subprocess.run(
        [sys.executable, "scripts/backfill_validation.py", "--sample-size", "100", "--json",
         "--quiet", "--output-dir", str(output)],
        cwd=REPO, env=env, capture_output=True, text=True, check=False)
    if done.returncode not in (0, 1):
        raise SystemExit(f"validation failed ({done.returncode}):\n{done.stderr[-2000:]}")
    return int(json.loads(done.stdout)["sample_reads"]), proxy.bytes_received - before


def bench_at(delay: float, emulator: Emulator,
             fresh: Callable[..., str], data: list[tuple[str, dict[str, Any]]],
             args: argparse.Namespace) -> list[tuple[str, bool]]:
    """Contenders (a) to (f) at one round trip; prints their table, returns the checks."""
    n = len(data)
    names = {"a": "bare scan, one cursor", "b": "one document at a time",
             "c": "sequential batches", "d": "this tool, dry run", "e": "this tool, real run",
             "f": "this tool, all skipped"}
    results: dict[str, tuple[int, float]] = {}
    cpu: dict[str, tuple[float, float]] = {}
    runs: dict[str, dict[str, Any]] = {}
    common = ["--batch-size", str(args.batch_size)]
    with TcpProxy(emulator.host, delay=delay / 1000) as proxy:

        def measure(key: str, action: Callable[[], tuple[int, float]]) -> None:
            before = cpu_of(emulator)
            results[key] = action()
            after = cpu_of(emulator)
            cpu[key] = (after[0] - before[0], after[1] - before[1])

        def tool(key: str, project: str, extra: list[str]) -> tuple[int, float]:
            runs[key] = tool_run(proxy.host, project, [*extra, *common], args.output)
            return runs[key]["total_processed"], runs[key]["duration_seconds"]

        print(f"Seeding and measuring {n:,} items, {2 * delay:g} ms round trip ...",
              file=sys.stderr)
        read_only, one, seq, real = fresh(), fresh(), fresh(), fresh()
        measure("a", lambda: timed(lambda: bare_read(client_for(proxy.host, read_only),
                                                     args.batch_size)))
        measure("b", lambda: timed(lambda: one_by_one(client_for(proxy.host, one),
                                                      args.one_by_one)))
        measure("c", lambda: timed(lambda: sequential(client_for(proxy.host, seq),
                                                      args.batch_size)))
        measure("d", lambda: tool("d", read_only, ["--dry-run"]))
        measure("e", lambda: tool("e", real, ["--yes", "--max-writes-per-second", "0"]))
        assert runs["e"]["total_updated"] + runs["e"]["total_skipped"] == n, runs["e"]
        measure("f", lambda: tool("f", real, ["--yes", "--max-writes-per-second", "0"]))
        assert runs["f"]["total_skipped"] == n, runs["f"]
    speed = {key: count / seconds for key, (count, seconds) in results.items()}
    for_n = {key: n / s for key, s in speed.items()}
    print(f"\nmake bench: {n:,} items, {2 * delay:g} ms round trip, batch "
          f"{args.batch_size}, on {platform.machine()} with {os.cpu_count()} cores "
          f"(emulator and tool on the same machine)")
    print(f"{'contender':<28}{'items/s':>10}{'s for N':>10}{'time/(a)':>10}"
          f"{'speed/(c)':>11}{'emulator CPU s':>16}{'client CPU s':>14}")
    for key in "abcdef":
        print(f"({key}) {names[key]:<24}{speed[key]:>10,.0f}{for_n[key]:>10.2f}"
              f"{for_n[key] / for_n['a']:>10.2f}{speed[key] / speed['c']:>11.2f}"
              f"{cpu[key][0]:>16.2f}{cpu[key][1]:>14.2f}")
    print(f"    (b) was timed on its first {args.one_by_one} items; 's for N' "
          "extrapolates. The tool reads with 4 cursors (--parallel-reads 4).")
    rt = f"{2 * delay:g} ms"
    return [
        (f"{rt}: (e) time <= 1.2x (a)", for_n["e"] <= 1.2 * for_n["a"]),
        (f"{rt}: (d) time <= 0.7x (a)", for_n["d"] <= 0.7 * for_n["a"]),
        (f"{rt}: (f) time <= 0.7x (a)", for_n["f"] <= 0.7 * for_n["a"]),
        (f"{rt}: (e) >= 20x (b)", speed["e"] >= 20 * speed["b"]),
    ]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--items", type=int, default=5_000,
                        help="(the emulator answers every query by scanning the collection, "
                             "so large N slows every contender here; 5,000 keeps that small)")
    parser.add_argument("--delays-ms", type=float, nargs="+", default=[20.0, 75.0],
                        help="added each way: 20 = a 40 ms round trip (CPU-bound here), "
                             "75 = 150 ms (latency-bound)")
    parser.add_argument("--batch-size", type=int, default=500)
    parser.add_argument("--one-by-one", type=int, default=100,
                        help="how many items contender (b) is timed on")
    parser.add_argument("--memory-factor", type=int, default=5)
    parser.add_argument("--output", type=Path, default=REPO / "bench-output")
    args = parser.parse_args()
    n = args.items
    data = make_wardrobe(n)
    checks: list[tuple[str, bool]] = []
    with Emulator() as emulator:
        counter = 0

        def fresh(items: list[tuple[str, dict[str, Any]]] = data) -> str:
            nonlocal counter
            counter += 1
            project = f"bench-{counter}"
            client = client_for(emulator.host, project)
            for start in range(0, len(items), 2000):
                seed(client, COLLECTION, items[start:start + 2000])
            return project

        for delay in args.delays_ms:
            checks += bench_at(delay, emulator, fresh, data, args)
        # Memory, and the cost of a sample, without added delay.
        real_n = tool_run(emulator.host, fresh(), ["--yes", "--max-writes-per-second", "0"],
                          args.output)
        big = make_wardrobe(n * args.memory_factor, seed=8)
        real_big = tool_run(emulator.host, fresh(big),
                            ["--yes", "--max-writes-per-second", "0"], args.output)
        with TcpProxy(emulator.host) as counting:
            small_ids = fresh(make_wardrobe(2_000, seed=11))
            large_ids = fresh(make_wardrobe(20_000, seed=12))
            sample_small = sample_cost(counting.host, counting, small_ids, args.output)
            sample_large = sample_cost(counting.host, counting, large_ids, args.output)
    ratio = real_big["peak_rss_mib"] / real_n["peak_rss_mib"]
    print(f"\npeak memory of (e): {real_n['peak_rss_mib']:.0f} MiB at N, "
          f"{real_big['peak_rss_mib']:.0f} MiB at {args.memory_factor}xN (ratio {ratio:.2f})")
    print(f"a 100-item validation sample: {sample_small[0]} reads, {sample_small[1]:,} bytes "
          f"on 2,000 items; {sample_large[0]} reads, {sample_large[1]:,} bytes on 20,000")
    checks += [
        (f"memory at {args.memory_factor}xN <= 1.3x at N", ratio <= 1.3),
        ("sample reads at 20,000 <= 1.5x at 2,000", sample_large[0] <= 1.5 * sample_small[0]),
        ("sample bytes at 20,000 <= 1.5x at 2,000", sample_large[1] <= 1.5 * sample_small[1]),
    ]
    for name, met in checks:
        print(f"  {'met' if met else 'NOT MET'}: {name}")


if __name__ == "__main__":
    main()
