"""`make demo`: the operator's runbook on a local emulator with a messy sample wardrobe.

Starts an emulator, seeds 3,421 items, then runs exactly what an operator runs: the dry
run, the production run (confirmed by typing YES), the validation, the vocabulary
report, and prints the stats.
Stops the emulator it started. Files land in demo-output/.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from google.cloud import firestore

from backfill.emulator import Emulator
from tools.sample_data import make_wardrobe
from tools.seed import seed

REPO = Path(__file__).resolve().parent.parent
OUTPUT = REPO / "demo-output"
ITEMS = 3421
PROJECT = "demo-wardrobe"


def step(title: str, args: list[str], env: dict[str, str], answer: str | None = None) -> int:
    typing = f"   (typing {answer.strip()})" if answer else ""
    print(f"\n== {title}\n\033[1m$ python3 {' '.join(args)}\033[0m{typing}", flush=True)
    done = subprocess.run([sys.executable, *args, "--output-dir", str(OUTPUT)], cwd=REPO,
                          env=env, input=answer, text=True)
    print(f"(exit status {done.returncode})", flush=True)
    return done.returncode


def main() -> None:
    OUTPUT.mkdir(exist_ok=True)
    with Emulator() as emulator:
        env = {**os.environ, "FIRESTORE_EMULATOR_HOST": emulator.host,
               "GOOGLE_CLOUD_PROJECT": PROJECT}
        os.environ["FIRESTORE_EMULATOR_HOST"] = emulator.host
        client = firestore.Client(project=PROJECT)
        count = seed(client, "wardrobe", make_wardrobe(ITEMS))
        print(f"Emulator at {emulator.host}: seeded {count} messy wardrobe items.")
        codes = [
            step("Step 1: dry run",
                 ["run_backfill_production.py", "--dry-run", "--environment", "production",
                  "--quiet"], env),
            step("Step 2: production run",
                 ["run_backfill_production.py", "--environment", "production", "--quiet"],
                 env, answer="YES\n"),
        ]
        codes.append(step("Step 3: validation",
                          ["scripts/backfill_validation.py", "--sample-size", "100"], env))
        codes.append(step("Then: the vocabulary report, to grow the tables",
                          ["scripts/vocabulary_report.py", "--quiet", "--top", "5"], env))
    latest = sorted(OUTPUT.glob("backfill_stats_*.json"))[-1]
    stats = json.loads(latest.read_text())
    print(f"\nStats of the production run ({latest.relative_to(REPO)}):")
    print(json.dumps({k: v for k, v in stats.items() if k != "errors"}, indent=2)[:3000])
    print(f"\nFiles: {OUTPUT.relative_to(REPO)}/ (stats, reports, backfill_production.log)")
    if any(codes):
        sys.exit(1)


if __name__ == "__main__":
    main()
