"""Measure the viewer as users meet it: the real `termshift serve`, a real HTTP client.

    python bench/viewer.py                       # generates a ~40,000-version archive first
    python bench/viewer.py --versions PATH       # any OTA-format versions repository (copied)
    python bench/viewer.py --workdir /tmp/bench  # reuse a generated archive between runs

Steps and figures:
1. cold index build: the server starts with no index (time until it answers);
2. pages, each URL requested once ("first", nothing cached) over many different URLs,
   then the same URLs again ("again"): p50 and p95 for home, latest changes, service,
   document, and the diff of two ~200 KB versions;
3. incremental index: a few commits are added, `refresh_index()` runs (as the tracking
   run calls it), and the server is checked to show them.

Targets: index < 60 s cold and < 1 s incremental; pages p95 < 100 ms; 200 KB diff
p95 < 300 ms.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import re
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

import make_archive  # noqa: E402

from termshift.web.index import refresh_index  # noqa: E402


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def fetch(url: str) -> tuple[float, int, bytes]:
    """(milliseconds, status, body) of one GET on a fresh connection."""
    started = time.perf_counter()
    try:
        with urllib.request.urlopen(url, timeout=120) as response:
            body = response.read()
            status = response.status
    except urllib.error.HTTPError as error:
        body, status = error.read(), error.code
    return (time.perf_counter() - started) * 1000, status, body


def percentile(values: list[float], fraction: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(fraction * len(ordered) + 0.5) - 1))]


class Server:
    """`termshift serve` in a subprocess."""

    def __init__(self, versions: Path, index: Path, log: Path):
        self.port = free_port()
        self.base = f"http://127.0.0.1:{self.port}"
        self.log = open(log, "wb")  # noqa: SIM115 (closed in stop())
        environment = {**os.environ, "PYTHONPATH": str(ROOT)}
        self.started = time.perf_counter()
        self.process = subprocess.Popen(
            [sys.executable, "-m", "termshift.cli", "serve", "--versions", str(versions), "--index", str(index),
             "--host", "127.0.0.1", "--port", str(self.port), "--refresh-interval", "0"],
            cwd=index.parent, env=environment, stdout=self.log, stderr=subprocess.STDOUT,
        )

    def wait(self, timeout: float = 900) -> float:
        """Seconds from launch until the server answers."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                with urllib.request.urlopen(self.base + "/api/v1/", timeout=2):
                    return time.perf_counter() - self.started
            except OSError:
                if self.process.poll() is not None:
                    raise SystemExit(f"termshift serve exited; see {self.log.name}") from None
                time.sleep(0.05)
        raise SystemExit("termshift serve did not start in time")

    def stop(self) -> None:
        self.process.terminate()
        self.process.wait(timeout=30)
        self.log.close()


def measure(base: str, label: str, urls: list[str], rows: list[tuple]) -> None:
    """Each URL once ("first": nothing cached for distinct URLs), then each again."""
    first, again = [], []
    for url in urls:
        elapsed, status, _body = fetch(base + url)
        if status != 200:
            raise SystemExit(f"{url}: HTTP {status}")
        first.append(elapsed)
    for url in urls:
        again.append(fetch(base + url)[0])
    rows.append((label, len(urls), statistics.median(first), percentile(first, 0.95),
                 statistics.median(again), percentile(again, 0.95)))


def pick_urls(base: str, rng: random.Random, count: int) -> dict[str, list[str]]:
    """Distinct URLs of each kind, from the viewer's own JSON."""
    home = json.loads(fetch(base + "/index.json")[2])
    services = home["services"]
    documents = [d for service in services for d in service["documents"]]
    changes = json.loads(fetch(base + "/-/changes.json")[2])
    pages = changes["pagination"]["pages"]
    types = sorted({d["terms_type"] for d in documents})
    change_urls = [f"/-/changes?page={rng.randint(1, pages)}" for _ in range(count // 2)]
    change_urls += [f"/-/changes?type={urllib.parse.quote(rng.choice(types))}&from={year}-01-01&to={year}-12-31"
                    for year in rng.choices(range(2016, 2026), k=count - len(change_urls))]
    largest = sorted(documents, key=lambda d: -d["versions"])
    big_diffs = []
    for document in documents:
        detail = json.loads(fetch(base + document["json_url"])[2])
        if detail["versions"] and detail["versions"][0]["size"] >= 150_000:
            for page in range(1, 3):
                listing = json.loads(fetch(base + document["json_url"] + f"?page={page}")[2])
                big_diffs += [v["diff_url"] for v in listing["versions"] if not v["is_first_record"]]
        if len(big_diffs) >= count:
            break
    return {
        # Served pages are cached until the index changes (and "/" is pre-rendered); a unique
        # query string bypasses the cache and measures a full render.
        "home, full render": [f"/?bench={n}" for n in range(min(count, 20))],
        "home, as served": ["/"] * min(count, 20),
        "latest changes": change_urls,
        "service": [s["url"] for s in rng.sample(services, min(count, len(services)))],
        "document": [d["url"] for d in rng.sample(documents, min(count, len(documents)))],
        "document with most versions": [largest[0]["url"] + f"?page={n}" for n in range(1, min(count, 20) + 1)],
        "diff, ~200 KB versions": big_diffs[:count],
        "diff, side by side": [url + "?view=split" for url in big_diffs[:count]],
    }


def prepare(args: argparse.Namespace, workdir: Path) -> Path:
    """A versions repository the bench may add commits to."""
    repo = workdir / "versions"
    if args.versions:
        if repo.exists():
            shutil.rmtree(repo)
        subprocess.run(["git", "clone", "-q", "--local", str(args.versions), str(repo)], check=True)
        return repo
    if not repo.exists():
        started = time.perf_counter()
        make_archive.main([str(workdir)])
        print(f"generated the archive in {time.perf_counter() - started:.1f} s")
    return repo


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--versions", type=Path, help="measure this versions repository (it is cloned first)")
    parser.add_argument("--workdir", type=Path, help="where to generate or clone the archive (default: a temp dir)")
    parser.add_argument("--requests", type=int, default=40, help="distinct URLs per page kind")
    parser.add_argument("--append", type=int, default=5, help="commits added for the incremental measure")
    args = parser.parse_args(argv)
    workdir = args.workdir or Path(tempfile.mkdtemp(prefix="termshift-bench-"))
    workdir.mkdir(parents=True, exist_ok=True)
    repo = prepare(args, workdir)
    index = workdir / "index.sqlite"
    for stale in workdir.glob("index.sqlite*"):
        stale.unlink()
    commits = subprocess.run(["git", "rev-list", "--count", "HEAD"], cwd=repo, capture_output=True, text=True,
                             check=True).stdout.strip()
    print(f"archive: {repo} ({commits} commits); load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores")

    server = Server(repo, index, workdir / "server.log")
    try:
        cold = server.wait()
        log = (workdir / "server.log").read_text(errors="replace")
        built = re.search(r"Index ready in ([\d.]+) s \((\d+) new", log)
        print(f"cold index build: {built.group(1)} s for {built.group(2)} records "
              f"(server answering after {cold:.1f} s)")
        rows: list[tuple] = []
        for label, urls in pick_urls(server.base, random.Random(1), args.requests).items():
            if urls:
                measure(server.base, label, urls, rows)
        print(f"\n{'page':34} {'URLs':>5} {'first p50':>10} {'first p95':>10} {'again p50':>10} {'again p95':>10}")
        for label, count, p50, p95, again50, again95 in rows:
            print(f"{label:34} {count:5d} {p50:8.1f}ms {p95:8.1f}ms {again50:8.1f}ms {again95:8.1f}ms")

        paths = make_archive.append(repo, args.append)
        started = time.perf_counter()
        stats = refresh_index((repo, None), index)
        elapsed = time.perf_counter() - started
        print(f"\nincremental index: {stats['versions']['new']} new versions in {elapsed * 1000:.0f} ms")
        service, terms_type = paths[-1][:-3].split("/", 1)
        document = json.loads(fetch(f"{server.base}/{urllib.parse.quote(service, safe='')}/"
                                    f"{urllib.parse.quote(terms_type, safe='')}.json")[2])
        head = subprocess.run(["git", "rev-parse", "HEAD"], cwd=repo, capture_output=True, text=True).stdout.strip()
        shown = document["versions"][0]["id"] == head
        print(f"the running server shows the new version: {'yes' if shown else 'NO'}")
    finally:
        server.stop()


if __name__ == "__main__":
    main()
