"""Run a Python script as __main__ and report its peak resident memory on stderr.

The peak is VmHWM from /proc/self/status, not getrusage's ru_maxrss: Linux carries
ru_maxrss over an exec from the forked parent, so a child of a big parent would report
the parent's size.
"""

from __future__ import annotations

import re
import runpy
import sys
from pathlib import Path


def peak_kib() -> int:
    status = Path("/proc/self/status").read_text()
    match = re.search(r"^VmHWM:\s+(\d+) kB", status, re.MULTILINE)
    return int(match.group(1)) if match else -1


def main() -> None:
    script, *args = sys.argv[1:]
    sys.argv = [script, *args]
    try:
        runpy.run_path(script, run_name="__main__")
    finally:
        print(f"PEAK_RSS_KIB={peak_kib()}", file=sys.stderr)


if __name__ == "__main__":
    main()
