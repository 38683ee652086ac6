"""`make bench`: the backfill against the alternatives, on the emulator, 40 ms away.

Starts an emulator, puts a delay proxy (tools/tcp_proxy.py) in front of it, seeds the same
messy wardrobe for each contender (a fresh project each, so nothing carries over) and
measures, through the proxy:
  (a) a bare read of the collection in pages with the backfill's field mask: the floor
  (b) the previous script's loop: one update per document, waiting for each answer
      (measured on the first --one-by-one items and reported per item: it is that slow)
  (c) a plain sequential loop: read a page, commit its batch, read the next
  (d) this tool's dry run
  (e) this tool's real run, rate limit off; and its peak memory at N and at 5xN
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


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--items", type=int, default=10_000)
    parser.add_argument("--delay-ms", type=float, default=20.0,
                        help="added each way (20 = a 40 ms round trip); 0 turns it off")
    parser.add_argument("--batch-size", type=int, default=500)
    parser.add_argument("--one-by-one", type=int, default=300,
                        help="how many items contender (b) is timed on")
    parser.add_argument("--memory-factor", type=int, default=5)
    parser.add_argument("--output", type=Path, default=REPO / "bench-output")
    args = parser.parse_args()
    n = args.items
    data = make_wardrobe(n)
    results: dict[str, tuple[int, float]] = {}
    cpu: dict[str, tuple[float, float]] = {}
    with Emulator() as emulator, TcpProxy(emulator.host, delay=args.delay_ms / 1000) as proxy:

        def measure(key: str, action: Callable[[], tuple[int, float]]) -> None:
            before = cpu_of(emulator)
            results[key] = action()
            after = cpu_of(emulator)
            cpu[key] = (after[0] - before[0], after[1] - before[1])

        def fresh(name: str, items: list[tuple[str, dict[str, Any]]] = data) -> str:
            project = f"bench-{name}"
            seed(client_for(emulator.host, project), COLLECTION, items)
            return project

        print(f"Seeding and measuring {n:,} items, {2 * args.delay_ms:g} ms round trip ...",
              file=sys.stderr)
        read_only = fresh("read")
        measure("a", lambda: timed(lambda: bare_read(client_for(proxy.host, read_only),
                                                     args.batch_size)))
        project = fresh("one-by-one")
        measure("b", lambda: timed(lambda: one_by_one(client_for(proxy.host, project),
                                                      args.one_by_one)))
        project = fresh("sequential")
        measure("c", lambda: timed(lambda: sequential(client_for(proxy.host, project),
                                                      args.batch_size)))
        common = ["--batch-size", str(args.batch_size)]
        runs: dict[str, dict[str, Any]] = {}

        def tool(key: str, project: str, extra: list[str]) -> tuple[int, float]:
            runs[key] = tool_run(proxy.host, project, [*extra, *common], args.output)
            return runs[key]["total_processed"], runs[key]["duration_seconds"]

        measure("d", lambda: tool("d", read_only, ["--dry-run"]))
        project = fresh("tool")
        measure("e", lambda: tool("e", project, ["--yes", "--max-writes-per-second", "0"]))
        real = runs["e"]
        assert real["total_updated"] + real["total_skipped"] == n, real
        big = make_wardrobe(n * args.memory_factor, seed=8)
        real_big = tool_run(proxy.host, fresh("tool-big", big),
                            ["--yes", "--max-writes-per-second", "0", *common], args.output)

    speed = {key: count / seconds for key, (count, seconds) in results.items()}
    seconds_for_n = {key: n / s for key, s in speed.items()}
    names = {"a": "bare read (floor)", "b": "one document at a time", "c": "sequential batches",
             "d": "this tool, dry run", "e": "this tool, real run"}
    print(f"\nmake bench: {n:,} items, {2 * args.delay_ms:g} ms round trip, batch "
          f"{args.batch_size}, on {platform.machine()} with {os.cpu_count()} cores "
          f"(emulator and tool on the same machine)")
    print(f"{'contender':<28}{'items/s':>10}{'s for N':>10}{'time/(a)':>10}{'speed/(c)':>11}"
          f"{'emulator CPU s':>16}{'client CPU s':>14}")
    for key in "abcde":
        print(f"({key}) {names[key]:<24}{speed[key]:>10,.0f}{seconds_for_n[key]:>10.2f}"
              f"{seconds_for_n[key] / seconds_for_n['a']:>10.2f}"
              f"{speed[key] / speed['c']:>11.2f}{cpu[key][0]:>16.2f}{cpu[key][1]:>14.2f}")
    print("    CPU seconds are for the contender's whole measured run ((b): its sample only);"
          " the machine has 2 cores")
    if args.one_by_one < n:
        print(f"    (b) was timed on its first {args.one_by_one} items; 's for N' extrapolates")
    ratio = real_big["peak_rss_mib"] / real["peak_rss_mib"]
    print(f"peak memory of (e): {real['peak_rss_mib']:.0f} MiB at N, "
          f"{real_big['peak_rss_mib']:.0f} MiB at {args.memory_factor}xN (ratio {ratio:.2f})")
    checks = [
        ("(e) >= 1.5x (c)", speed["e"] >= 1.5 * speed["c"]),
        ("(e) >= 20x (b)", speed["e"] >= 20 * speed["b"]),
        ("(e) time <= 1.3x (a)", seconds_for_n["e"] <= 1.3 * seconds_for_n["a"]),
        ("(d) time <= 1.1x (a)", seconds_for_n["d"] <= 1.1 * seconds_for_n["a"]),
        (f"memory at {args.memory_factor}xN <= 1.3x at N", ratio <= 1.3),
    ]
    for name, met in checks:
        print(f"  {'met' if met else 'NOT MET'}: {name}")


if __name__ == "__main__":
    main()
