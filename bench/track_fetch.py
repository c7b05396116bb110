"""Benchmark of the fetch layer, and the full false-positive check of block detection.

What it does:
- `fetch` (default): starts a FaultServer on N loopback hosts whose every answer
  takes `--latency` seconds, fetches `--docs` pages spread over them in ONE
  `fetch_all`, and reports the wall time, documents per second, time to the
  first result and the peak number of requests in flight on a host (which must
  not exceed `--per-host`).
- `--corpus`: runs `detect_block` on every snapshot of the demo corpus
  (../shared/corpus/demo/snapshots.bundle) and lists any that is flagged (none
  should be: they are all real pages).

Usage:
    python bench/track_fetch.py [--docs 200] [--hosts 20] [--latency 0.2] [--per-host 1] [--host-delay 0]
    python bench/track_fetch.py --corpus
"""

from __future__ import annotations

import argparse
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from termshift.config import load_settings  # noqa: E402
from termshift.trackers.blocking import detect_block  # noqa: E402
from termshift.trackers.fetcher import FetchRequest, fetch_all  # noqa: E402
from tests.support.servers import FaultServer  # noqa: E402

BUNDLE = ROOT.parent / "shared" / "corpus" / "demo" / "snapshots.bundle"


def bench_fetch(docs: int, hosts: int, latency: float, per_host: int, host_delay: float) -> None:
    settings = load_settings(None, environ={}, overrides={"fetcher": {
        "per_host": per_host, "host_delay": host_delay, "timeout": 30.0,
        "allow_private_targets": ["127.0.0.0/8"]}}).fetcher  # the benchmark's sites are on loopback
    with FaultServer(hosts=hosts, latency=latency) as server:
        requests = [
            FetchRequest(server.url(f"/page/doc{n}?size=60000", host=n % hosts), execute_client_scripts=False)
            for n in range(docs)
        ]
        arrivals: list[float] = []
        start = time.monotonic()
        results = fetch_all(requests, settings, progress=lambda _result: arrivals.append(time.monotonic() - start))
        wall = time.monotonic() - start
        peak = server.max_in_flight()
        first_request = min(request.started for request in server.requests) - start
    failed = [result for result in results if not result.ok]
    sequential = docs * latency
    per_host_floor = -(-docs // hosts) / per_host * latency + (-(-docs // hosts) - 1) * host_delay
    print(f"{docs} documents of ~60 kB on {hosts} hosts, {latency * 1000:.0f} ms per answer, "
          f"per_host={per_host}, host_delay={host_delay}")
    print(f"  wall time            {wall:6.2f} s   ({docs / wall:.0f} documents/s; one by one: {sequential:.0f} s;"
          f" floor from per-host limits: {per_host_floor:.1f} s)")
    print(f"  worker start-up      {first_request:6.2f} s   (first request reaches a server)")
    print(f"  first result after   {arrivals[0]:6.2f} s;  last after {arrivals[-1]:.2f} s")
    print(f"  peak in flight/host  {peak:6d}     (limit {per_host})")
    print(f"  failures             {len(failed):6d}")
    for result in failed[:5]:
        print(f"    {result.location}: {result.error}")


def check_corpus() -> None:
    if not BUNDLE.is_file():
        sys.exit(f"{BUNDLE} not found")
    with tempfile.TemporaryDirectory() as folder:
        repository = Path(folder) / "snapshots.git"
        subprocess.run(["git", "clone", "--quiet", "--bare", "--branch", "subset", str(BUNDLE), str(repository)],
                       check=True)
        log = subprocess.run(["git", "-C", str(repository), "log", "--format=%H", "--name-only", "subset"],
                             check=True, capture_output=True, text=True).stdout
        snapshots, commit = [], ""
        for line in log.splitlines():
            if re.fullmatch(r"[0-9a-f]{40}", line):
                commit = line
            elif line.strip():
                snapshots.append((commit, line))
        reader = subprocess.Popen(["git", "-C", str(repository), "cat-file", "--batch"],
                                  stdin=subprocess.PIPE, stdout=subprocess.PIPE)
        assert reader.stdin is not None and reader.stdout is not None
        flagged, spent = [], 0.0
        for commit, path in snapshots:
            reader.stdin.write(f"{commit}:{path}\n".encode())
            reader.stdin.flush()
            size = int(reader.stdout.readline().split()[2])
            content = reader.stdout.read(size).decode("utf-8", "replace")
            reader.stdout.read(1)
            start = time.perf_counter()
            signature = detect_block(200, {"Content-Type": "text/html; charset=utf-8"}, content)
            spent += time.perf_counter() - start
            if signature:
                flagged.append((signature, path, commit))
        reader.stdin.close()
        reader.wait()
    print(f"{len(snapshots)} real snapshots checked, {len(flagged)} flagged as block pages; "
          f"detection took {spent / len(snapshots) * 1000:.2f} ms per snapshot on average")
    for signature, path, commit in flagged:
        print(f"  {signature}: {path} @ {commit}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--docs", type=int, default=200)
    parser.add_argument("--hosts", type=int, default=20)
    parser.add_argument("--latency", type=float, default=0.2)
    parser.add_argument("--per-host", type=int, default=1)
    parser.add_argument("--host-delay", type=float, default=0.0)
    parser.add_argument("--corpus", action="store_true", help="check every corpus snapshot for false positives")
    arguments = parser.parse_args()
    if arguments.corpus:
        check_corpus()
    else:
        bench_fetch(arguments.docs, arguments.hosts, arguments.latency, arguments.per_host, arguments.host_delay)


if __name__ == "__main__":
    main()
