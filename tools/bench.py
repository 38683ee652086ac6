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
from pathlib import Path
from typing import Any

from google.cloud import firestore

from backfill.emulator import Emulator
from tools.sample_data import make_wardrobe
from tools.seed import seed
from tools.tcp_proxy import TcpProxy

REPO = Path(__file__).resolve().parent.parent
COLLECTION = "wardrobe"


def client_for(host: str, project: str) -> firestore.Client:
    os.environ["FIRESTORE_EMULATOR_HOST"] = host
    return firestore.Client(project=project)


def cpu_of(emulator: Emulator) -> tuple[float, float]:
    """(emulator CPU seconds, this process's and its children's CPU seconds) so far."""
    children = resource.getrusage(resource.RUSAGE_CHILDREN)
    return emulator.cpu_seconds(), time.process_time() + children.ru_utime + children.ru_stime


def command(host: str, project: str, argv: list[str]) -> tuple[str, str, float]:
    """Run one command as an operator would, timed from its start to its exit: (stdout,
    stderr, seconds). Exit codes other than 0 stop the bench."""
    env = {**os.environ, "FIRESTORE_EMULATOR_HOST": host, "GOOGLE_CLOUD_PROJECT": project}
    started = time.perf_counter()
    done = subprocess.run([sys.executable, *argv], cwd=REPO, env=env, capture_output=True,
                          text=True, check=False)
    seconds = time.perf_counter() - started
    if done.returncode != 0:
        raise SystemExit(f"{argv} failed ({done.returncode}):\n{done.stderr[-2000:]}")
    return done.stdout, done.stderr, seconds


def interpreter_start() -> float:
    """What every contender pays before its first line of work, the same for all: an
    interpreter that starts, imports the client library and exits (best of 3)."""
    return min(command("127.0.0.1:1", "bench-start", ["-c", "import google.cloud.firestore"])[2]
               for _ in range(3))


def contender(host: str, project: str, kind: str, batch_size: int, limit: int,
              start: float) -> tuple[int, float]:
    """One of the alternatives (tools/bench_contenders.py): (items, seconds from the
    command to its exit, the interpreter's start subtracted)."""
    out, _, seconds = command(host, project, ["-m", "tools.bench_contenders", kind,
                                              "--batch-size", str(batch_size),
                                              "--limit", str(limit)])
    return int(out.strip()), seconds - start


def tool_run(host: str, project: str, args: list[str], output: Path,
             start: float = 0.0) -> dict[str, Any]:
    """The CLI as an operator runs it, in its own process, traced (tools/traced_run.py):
    its stats, `seconds` from the command to its exit (the interpreter's start
    subtracted) and `trace`."""
    trace = output / "bench-trace.json"
    output.mkdir(parents=True, exist_ok=True)
    out, _, seconds = command(host, project, [
        "-m", "tools.traced_run", str(trace), "run_backfill_production.py", "--json",
        "--quiet", "--output-dir", str(output), *args])
    stats: dict[str, Any] = json.loads(out)
    stats["seconds"] = seconds - start
    stats["trace"] = json.loads(trace.read_text())
    return stats


def peak_memory(host: str, project: str, args: list[str], output: Path) -> float:
    """The tool's peak resident memory (MiB) over a whole run."""
    _, err, _ = command(host, project, [
        "-m", "tools.peak_rss", "run_backfill_production.py", "--json", "--quiet",
        "--output-dir", str(output), *args])
    peak = re.search(r"PEAK_RSS_KIB=(\d+)", err)
    return int(peak.group(1)) / 1024 if peak else float("nan")


def timeline(run: dict[str, Any]) -> list[tuple[str, float | None]]:
    """When a run said and did what, in seconds since the tool's script began (its
    interpreter started)."""
    events = run["trace"]["events"]
    lines = [(e["start"], e["line"]) for e in events if "line" in e]
    calls = [e for e in events if "call" in e]

    def said(prefix: str, last: bool = False) -> float | None:
        times = [t for t, line in lines if line.startswith(prefix)]
        return (times[-1] if last else times[0]) if times else None

    commits = [e for e in calls if e["call"] == "Commit" and "end" in e]
    opening = [e["end"] for e in commits if e["thread"].startswith(("opening", "MainThread"))]
    writes = [e["start"] for e in calls if e["call"] == "BatchWrite"]
    return [("banner", said("🚀")), ("count said", said("📊")),
            ("lease and ledger entry committed", opening[0] if opening else None),
            ("first item write sent", writes[0] if writes else None),
            ("first batch line", said("Batch ")), ("last batch line", said("Batch ", True)),
            ("last commit (final record, lease given back)",
             commits[-1]["end"] if commits else None),
            ("the tool's code done (then the interpreter exits)", run["trace"]["exit"])]


# Targets per round trip (ms): the dry run's, the all-skipped re-run's and the real
# run's time against (a), and the real run's speed against (c).
TARGETS = {40.0: (0.6, 0.85, 1.4, 1.3), 150.0: (0.6, 0.8, 1.1, 1.5)}


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


NAMES = {"a": "bare scan, one cursor", "b": "one document at a time",
         "c": "sequential batches", "d": "this tool, dry run", "e": "this tool, real run",
         "f": "this tool, all skipped"}


class Contenders:
    """The contenders measured at one round trip, through one proxy: each one's items
    and seconds, the CPU it cost (emulator, client), and the tool's stats."""

    def __init__(self, proxy: TcpProxy, emulator: Emulator, args: argparse.Namespace,
                 start: float) -> None:
        self.proxy, self.emulator, self.args, self.start = proxy, emulator, args, start
        self.results: dict[str, tuple[int, float]] = {}
        self.cpu: dict[str, tuple[float, float]] = {}
        self.runs: dict[str, dict[str, Any]] = {}

    def other(self, key: str, project: str, kind: str) -> None:
        self._measure(key, lambda: contender(self.proxy.host, project, kind,
                                             self.args.batch_size, self.args.one_by_one,
                                             self.start))

    def tool(self, key: str, project: str, extra: list[str]) -> None:
        def run() -> tuple[int, float]:
            self.runs[key] = tool_run(self.proxy.host, project,
                                      [*extra, "--batch-size", str(self.args.batch_size)],
                                      self.args.output, self.start)
            return self.runs[key]["total_processed"], self.runs[key]["seconds"]
        self._measure(key, run)

    def _measure(self, key: str, action: Callable[[], tuple[int, float]]) -> None:
        before = cpu_of(self.emulator)
        self.results[key] = action()
        after = cpu_of(self.emulator)
        self.cpu[key] = (after[0] - before[0], after[1] - before[1])


def bench_at(delay: float, emulator: Emulator,
             fresh: Callable[..., str], data: list[tuple[str, dict[str, Any]]],
             args: argparse.Namespace, start: float) -> list[tuple[str, bool]]:
    """Contenders (a) to (f) at one round trip, each from its command to its exit; prints
    their table and the real run's timeline, returns the checks."""
    n = len(data)
    with TcpProxy(emulator.host, delay=delay / 1000) as proxy:
        print(f"Seeding and measuring {n:,} items, {2 * delay:g} ms round trip ...",
              file=sys.stderr)
        measured = Contenders(proxy, emulator, args, start)
        read_only, one, seq, real = fresh(), fresh(), fresh(), fresh()
        measured.other("a", read_only, "scan")
        measured.other("b", one, "one-by-one")
        measured.other("c", seq, "sequential")
        measured.tool("d", read_only, ["--dry-run"])
        measured.tool("e", real, ["--yes", "--max-writes-per-second", "0"])
        runs = measured.runs
        assert runs["e"]["total_updated"] + runs["e"]["total_skipped"] == n, runs["e"]
        measured.tool("f", real, ["--yes", "--max-writes-per-second", "0"])
        assert runs["f"]["total_skipped"] == n, runs["f"]
    speed = {key: count / seconds for key, (count, seconds) in measured.results.items()}
    print_table(measured, speed, n, delay, args, start)
    return checks(speed, n, 2 * delay)


def print_table(measured: Contenders, speed: dict[str, float], n: int, delay: float,
                args: argparse.Namespace, start: float) -> None:
    """The contenders' table, and the timelines of the tool's real runs."""
    for_n = {key: n / s for key, s in speed.items()}
    print(f"\nmake bench: {n:,} items, {2 * delay:g} ms round trip, batch "
          f"{args.batch_size}, on {platform.machine()} with {os.cpu_count()} cores "
          f"(emulator and tool on the same machine)")
    print(f"{'contender':<28}{'items/s':>10}{'s for N':>10}{'time/(a)':>10}"
          f"{'speed/(c)':>11}{'emulator CPU s':>16}{'client CPU s':>14}")
    for key in "abcdef":
        cpu = measured.cpu[key]
        print(f"({key}) {NAMES[key]:<24}{speed[key]:>10,.0f}{for_n[key]:>10.2f}"
              f"{for_n[key] / for_n['a']:>10.2f}{speed[key] / speed['c']:>11.2f}"
              f"{cpu[0]:>16.2f}{cpu[1]:>14.2f}")
    print(f"    Each contender is timed from its command to its exit, less {start:.2f} s "
          "(an interpreter that starts, imports the client library and exits).\n"
          f"    (b) was timed on its first {args.one_by_one} items; 's for N' "
          "extrapolates. The tool reads with 4 cursors (--parallel-reads 4).")
    for key in "ef":
        run = measured.runs[key]
        print(f"  timeline of ({key}), seconds since its script began "
              f"(exit {run['seconds']:.2f}, as above):")
        for what, at in timeline(run):
            print(f"    {'-' if at is None else f'{at:.2f}':>6}  {what}")


def checks(speed: dict[str, float], n: int, rt: float) -> list[tuple[str, bool]]:
    """The bench's targets at the round trip `rt` (ms), met or not."""
    for_n = {key: n / s for key, s in speed.items()}
    dry, skipped, real_time, over_c = TARGETS[min(TARGETS, key=lambda t: abs(t - rt))]
    ms = f"{rt:g} ms"
    return [
        (f"{ms}: (d) time <= {dry}x (a)", for_n["d"] <= dry * for_n["a"]),
        (f"{ms}: (f) time <= {skipped}x (a)", for_n["f"] <= skipped * for_n["a"]),
        (f"{ms}: (e) time <= {real_time}x (a)", for_n["e"] <= real_time * for_n["a"]),
        (f"{ms}: (e) >= {over_c}x (c)", speed["e"] >= over_c * speed["c"]),
        (f"{ms}: (e) >= 20x (b)", speed["e"] >= 20 * speed["b"]),
    ]


def arguments() -> argparse.ArgumentParser:
    """The bench's options (`make bench BENCH_ARGS="..."`; the docs' test reads them too)."""
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
    return parser


def main() -> None:
    args = arguments().parse_args()
    n = args.items
    data = make_wardrobe(n)
    checks: list[tuple[str, bool]] = []
    start = interpreter_start()
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
            checks += bench_at(delay, emulator, fresh, data, args, start)
        # Memory, and the cost of a sample, without added delay.
        peak_n = peak_memory(emulator.host, fresh(), ["--yes", "--max-writes-per-second", "0"],
                             args.output)
        big = make_wardrobe(n * args.memory_factor, seed=8)
        peak_big = peak_memory(emulator.host, fresh(big),
                               ["--yes", "--max-writes-per-second", "0"], args.output)
        with TcpProxy(emulator.host) as counting:
            small_ids = fresh(make_wardrobe(2_000, seed=11))
            large_ids = fresh(make_wardrobe(20_000, seed=12))
            sample_small = sample_cost(counting.host, counting, small_ids, args.output)
            sample_large = sample_cost(counting.host, counting, large_ids, args.output)
    ratio = peak_big / peak_n
    print(f"\npeak memory of (e): {peak_n:.0f} MiB at N, "
          f"{peak_big:.0f} MiB at {args.memory_factor}xN (ratio {ratio:.2f})")
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
