"""Benchmark: `termshift rebuild` — the whole demo snapshots history replayed into a new versions repository.

What it does: clones OTA's demo snapshots (`../shared/corpus/demo/snapshots.bundle`, branch
`subset`) once, then runs `termshift rebuild` (the command, in a child process, as a user
would) `--runs` times into empty versions repositories, and prints for each run the wall
time, the CPU time of the command, snapshots read per second and versions recorded.

Rebuild is the slowest path through "snapshots in, version out" (every snapshot of the
history is extracted), so it is the yardstick of that function's speed.

Usage:
    python bench/rebuild.py [--runs 2] [--corpus ../shared/corpus/demo]
"""

from __future__ import annotations

import argparse
import os
import re
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--corpus", type=Path, default=ROOT.parent / "shared" / "corpus" / "demo")
    parser.add_argument("--runs", type=int, default=2)
    args = parser.parse_args()
    bundle = args.corpus / "snapshots.bundle"
    if not bundle.is_file():
        sys.exit(f"{bundle} not found (the shared corpus is needed)")
    environment = {**os.environ, "PYTHONPATH": str(ROOT) + os.pathsep + os.environ.get("PYTHONPATH", "")}
    with tempfile.TemporaryDirectory(prefix="termshift-bench-rebuild-") as work:
        snapshots = Path(work) / "snapshots"
        subprocess.run(["git", "clone", "-q", "-b", "subset", str(bundle), str(snapshots)], check=True)
        for run in range(1, args.runs + 1):
            versions = Path(work) / f"versions-{run}"
            before = resource.getrusage(resource.RUSAGE_CHILDREN)
            started = time.perf_counter()
            completed = subprocess.run(
                [sys.executable, "-m", "termshift.cli", "rebuild", "--quiet",
                 "--declarations", str(args.corpus / "declarations"),
                 "--snapshots", str(snapshots), "--versions", str(versions)],
                capture_output=True, text=True, env=environment, cwd=work)
            wall = time.perf_counter() - started
            after = resource.getrusage(resource.RUSAGE_CHILDREN)
            cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
            summary = next((line for line in completed.stdout.splitlines() + completed.stderr.splitlines()
                            if "snapshots read" in line), "")
            match = re.search(r"(\d+) snapshots read, (\d+) versions recorded", summary)
            if completed.returncode not in (0, 3) or not match:
                sys.exit(f"rebuild failed (exit {completed.returncode}):\n{completed.stderr[-2000:]}")
            read, recorded = int(match.group(1)), int(match.group(2))
            print(f"run {run}: {read} snapshots read, {recorded} versions recorded in {wall:.1f} s wall "
                  f"= {read / wall:.1f} snapshots/s; CPU {cpu:.1f} s (command and its git children); "
                  f"load average {os.getloadavg()[0]:.1f}")


if __name__ == "__main__":
    main()
