"""Measure the viewer as users meet it: the real `termshift serve`, real HTTP clients.

    python bench/viewer.py --versions ../shared/corpus/pga-versions/versions.bundle   # a real archive
    python bench/viewer.py --versions PATH       # any OTA-format versions repository or bundle (cloned)
    python bench/viewer.py                       # a generated ~40,000-version synthetic archive
    python bench/viewer.py --demo-only           # only the 50-client load on the demo archive
    python bench/viewer.py --versions PATH --processes 2   # `serve --processes 2` (one per core here)

The server is always started as `termshift serve` in a subprocess, so the figures are those
of whatever server `serve` runs. Steps and figures:
1. first answer: seconds from launch, with no index, until `/` answers 200;
2. cold index: seconds until the index is complete (the time of the server's "index ready"
   log line; `/status.json` then says `"index": {"complete": true}`), with the server's peak
   memory (RSS of the server and its index workers, summed) meanwhile;
3. restart: the server stopped and started again on its index: first answer, complete;
   with `--growth`, also the cold index of the first quarter, half and three quarters of the
   history, the marginal cost per version between them, and the time that growth gives for
   `--extrapolate` commits (later versions of real archives are longer documents: the
   marginal cost is what a 10x larger archive pays; `--growth-passes N` measures it N
   times and reports the median, as each pass is a difference of two runs of seconds);
4. the cost of each diff statistic, in this process, over consecutive pairs of versions:
   p50 / p90 / p99 / max CPU milliseconds, how many were estimates (over the budget), and
   the mean by document size; with the log read and blob read times, so that each cost's
   growth with commits and document size can be stated;
5. pages under load, once every serving process has done its start-up work (drawn the
   timelines ahead): each kind of page requested by 20 concurrent clients, each URL once
   (nothing cached; each document once): service, document, latest changes, and the diff of
   two ~200 KB versions (first view: the index holds no comparison yet), with the server's
   CPU per request (all its processes);
6. the demo archive (`termshift demo`) under 50 concurrent clients for a while: requests
   per second, p50 and p95.

Targets (issue 13): first answer < 5 s; cold index of 42k commits < 90 s (≈ 2 ms per
version); restart < 10 s; peak RSS < 500 MiB; no pair above ~100 ms; pages p95 < 100 ms
and 200 KB diffs p95 < 300 ms with 20 concurrent clients.
"""

from __future__ import annotations

import argparse
import concurrent.futures
import contextlib
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
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
from datetime import datetime
from pathlib import Path

import psutil

ROOT = Path(__file__).resolve().parent.parent
# The server's log line when a build of the index ends, and its time.
INDEX_READY = re.compile(rb"^(\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d{3}) INFO +termshift\.web\.state: index ready in", re.M)
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

import make_archive  # noqa: E402


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def fetch(url: str, timeout: float = 120) -> tuple[float, int, bytes]:
    """(milliseconds, status, body) of one GET on a fresh connection."""
    started = time.perf_counter()
    try:
        with urllib.request.urlopen(url, timeout=timeout) as response:
            body = response.read()
            status = response.status
    except urllib.error.HTTPError as error:
        body, status = error.read(), error.code
    return (time.perf_counter() - started) * 1000, status, body


def get_json(url: str) -> dict:
    elapsed, status, body = fetch(url)
    if status != 200:
        raise SystemExit(f"{url}: HTTP {status}")
    return json.loads(body)


def percentile(values: list[float], fraction: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(fraction * len(ordered) + 0.5) - 1))]


class Server:
    """`termshift serve` in a subprocess, with its memory watched."""

    def __init__(self, arguments: list[str], workdir: Path, log_name: str):
        self.port = free_port()
        self.base = f"http://127.0.0.1:{self.port}"
        self.log_path = workdir / log_name
        self.log = open(self.log_path, "wb")  # noqa: SIM115 (closed in stop())
        environment = {**os.environ, "PYTHONPATH": str(ROOT)}
        self.started = time.perf_counter()
        self.started_at = time.time()  # to compare with the times in its log
        self.process = subprocess.Popen(
            [sys.executable, "-m", "termshift.cli", "serve", *arguments,
             "--host", "127.0.0.1", "--port", str(self.port)],
            cwd=workdir, env=environment, stdout=self.log, stderr=subprocess.STDOUT,
        )
        self.peak_rss = 0
        self.peak_rss_by_process: dict[int, int] = {}
        self._watching = True
        self._watcher = threading.Thread(target=self._watch, daemon=True)
        self._watcher.start()

    def _watch(self) -> None:
        try:
            root = psutil.Process(self.process.pid)
        except psutil.Error:
            return
        while self._watching:
            total = 0
            try:
                for process in [root, *root.children(recursive=True)]:
                    with contextlib.suppress(psutil.Error):
                        rss = process.memory_info().rss
                        total += rss
                        self.peak_rss_by_process[process.pid] = max(rss, self.peak_rss_by_process.get(process.pid, 0))
            except psutil.Error:
                return
            self.peak_rss = max(self.peak_rss, total)
            time.sleep(0.1)

    def first_answer(self, path: str = "/", timeout: float = 900) -> float:
        """Seconds from launch until `path` answers 200."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                with urllib.request.urlopen(self.base + path, timeout=5) as response:
                    if response.status == 200:
                        return time.perf_counter() - self.started
            except OSError:
                if self.process.poll() is not None:
                    raise SystemExit(f"termshift serve exited; see {self.log_path}") from None
            time.sleep(0.05)
        raise SystemExit("termshift serve did not answer in time")

    def index_complete(self, timeout: float = 3600, every: float = 0.05) -> float:
        """Seconds from launch until the index is complete.

        Read from the server's log ("index ready", with its time) rather than by polling
        /status.json: 20 requests a second cost the server 2.3 ms and this program 1.3 ms of
        CPU each, 3 % of this 2-core machine taken from the build being measured. /status.json
        is still asked once a second, for a server that logs no such line (nothing new to
        index), and for the progress shown every 10 s."""
        deadline = time.monotonic() + timeout
        last_status, last_report = 0.0, time.monotonic()
        while time.monotonic() < deadline:
            ready = INDEX_READY.search(self.log_path.read_bytes())
            if ready:
                logged = datetime.strptime(ready.group(1).decode(), "%Y-%m-%d %H:%M:%S,%f").timestamp()
                return logged - self.started_at
            if time.monotonic() - last_status >= 1:
                last_status = time.monotonic()
                # A viewer without "index" in its status indexes before it answers: complete.
                index = get_json(self.base + "/status.json").get("index", {"complete": True})
                if index["complete"]:
                    return time.perf_counter() - self.started
                if time.monotonic() - last_report > 10:
                    print(f"  … {index['versions_indexed']} of {index['versions_total']} versions indexed", flush=True)
                    last_report = time.monotonic()
            time.sleep(every)
        raise SystemExit("the index did not complete in time")

    def serving_processes_ready(self, count: int, timeout: float = 120) -> None:
        """Wait until `count` more serving processes said they are ready (in the server's log)."""
        deadline = time.monotonic() + timeout
        while self.log_path.read_text(errors="replace").count("Serving process") < count:
            if time.monotonic() > deadline:
                raise SystemExit(f"the serving processes did not start; see {self.log_path}")
            time.sleep(0.1)

    def warmed_up(self, processes: int, timeout: float = 60) -> None:
        """Wait until every serving process has drawn the timelines ahead (its start-up work,
        a second or so of CPU), so that the pages measured afterwards do not share the cores
        with it; says so if that does not happen."""
        deadline = time.monotonic() + timeout
        while self.log_path.read_text(errors="replace").count("timelines of") < processes:
            if time.monotonic() > deadline:
                print(f"(the serving processes did not all say they drew the timelines; see {self.log_path})")
                return
            time.sleep(0.1)

    def cpu_seconds(self) -> float:
        """CPU time used so far by the server, its running children (serving processes,
        index workers) and its finished ones."""
        root = psutil.Process(self.process.pid)
        times = root.cpu_times()
        total = times.user + times.system + times.children_user + times.children_system
        for child in root.children(recursive=True):
            with contextlib.suppress(psutil.Error):
                child_times = child.cpu_times()
                total += child_times.user + child_times.system
        return total

    def stop(self) -> None:
        self._watching = False
        self.process.terminate()
        try:
            self.process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
        self.log.close()


# ------------------------------------------------------------------------- load


def load(base: str, urls: list[str], clients: int) -> tuple[list[float], list[int], float]:
    """Request every URL once, `clients` at a time: (latencies ms, statuses, seconds)."""
    started = time.perf_counter()
    with concurrent.futures.ThreadPoolExecutor(clients) as pool:
        results = list(pool.map(lambda url: fetch(base + url)[:2], urls))
    return [r[0] for r in results], [r[1] for r in results], time.perf_counter() - started


def load_for(base: str, urls: list[str], clients: int, seconds: float) -> tuple[list[float], list[int], float]:
    """`clients` clients requesting URLs from the list in turn for `seconds`."""
    latencies: list[float] = []
    statuses: list[int] = []
    lock = threading.Lock()
    stop = time.monotonic() + seconds

    def client(number: int) -> None:
        position = number
        while time.monotonic() < stop:
            elapsed, status, _body = fetch(base + urls[position % len(urls)])
            position += clients
            with lock:
                latencies.append(elapsed)
                statuses.append(status)

    started = time.perf_counter()
    threads = [threading.Thread(target=client, args=(n,)) for n in range(clients)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return latencies, statuses, time.perf_counter() - started


def page_urls(base: str, rng: random.Random, count: int) -> dict[str, list[str]]:
    """Distinct URLs of each kind, from the viewer's own JSON."""
    home = get_json(base + "/index.json")
    services = home["services"]
    documents = [d for service in services for d in service["documents"]]
    changes = get_json(base + "/-/changes.json")
    pages = changes["pagination"]["pages"]
    types = sorted({d["terms_type"] for d in documents})
    change_urls = [f"/-/changes?page={n}" for n in rng.sample(range(1, pages + 1), min(pages, count // 2))]
    change_urls += [f"/-/changes?type={urllib.parse.quote(rng.choice(types))}&from={year}-01-01&to={year}-12-31"
                    for year in rng.choices(range(2016, 2027), k=count - len(change_urls))]
    big_diffs: list[str] = []
    for document in sorted(documents, key=lambda d: -d["versions"]):
        detail = get_json(base + document["json_url"])
        if not detail["versions"] or detail["versions"][0]["size"] < 150_000:
            continue
        page = 1
        while len(big_diffs) < count and page <= 5:
            listing = get_json(base + document["json_url"] + f"?page={page}")
            big_diffs += [v["diff_url"] for v in listing["versions"]
                          if not v["is_first_record"] and v["size"] >= 150_000]
            if page >= listing.get("pagination", {}).get("pages", 1):
                break
            page += 1
        if len(big_diffs) >= count:
            break
    rng.shuffle(big_diffs)
    return {
        "service": [s["url"] + f"?bench={n}" for n, s in enumerate(rng.choices(services, k=count))],
        # Each document once (as far as there are enough): every one a first view.
        "document": [d["url"] + f"?bench={n}" for n, d in enumerate(
            rng.sample(documents, k=min(count, len(documents))) + rng.choices(documents, k=max(0, count - len(documents))))],
        "latest changes": change_urls,
        "diff, ~200 KB versions (first view)": big_diffs[:count],
    }


# ------------------------------------------------------------------------- statistics cost


def consecutive_pairs(repo: Path) -> tuple[list[tuple[str, str]], dict[str, str]]:
    """Each document's consecutive versions in a versions repository, as (old blob, new blob)
    pairs in the order they were recorded, and the text of every blob; prints what reading cost."""
    from termshift.archive_repo.blob_reader import BlobReader
    from termshift.archive_repo.log_reader import commits_between, head_commit
    from termshift.web.index import records_in

    started = time.perf_counter()
    head = head_commit(repo)
    commits = list(commits_between(repo, None, head))
    records = [r for r in records_in(commits, want_markdown=True) if not isinstance(r, tuple)]
    log_seconds = time.perf_counter() - started
    started = time.perf_counter()
    blobs = list(dict.fromkeys(record.blob for record in records))
    texts = {blob: data.decode("utf-8", "replace")
             for blob, data in zip(blobs, BlobReader(repo).read_many(blobs), strict=True)}
    read_seconds = time.perf_counter() - started
    megabytes = sum(len(text) for text in texts.values()) / 1e6
    print(f"\nreading: git log of {len(commits)} commits ({len(records)} versions) in {log_seconds:.2f} s "
          f"({1000 * log_seconds / max(1, len(commits)):.3f} ms/commit); {len(blobs)} distinct texts, "
          f"{megabytes:.0f} MB, read in {read_seconds:.2f} s ({megabytes / max(read_seconds, 1e-9):.0f} MB/s)")
    previous: dict[tuple[str, str], str] = {}
    pairs = []
    for record in records:
        document = (record.service_id, record.terms_type)
        if document in previous:
            pairs.append((previous[document], record.blob))
        previous[document] = record.blob
    return pairs, texts


def pair_costs(repo: Path, limit: int | None, rng: random.Random) -> None:
    """CPU cost of each diff statistic as the index computes it, and of reading."""
    from termshift.textdiff import INDEX_BUDGET, change_counts

    pairs, texts = consecutive_pairs(repo)
    if limit and limit < len(pairs):
        pairs = rng.sample(pairs, limit)
    costs, approximate, by_size = [], 0, {}
    for old, new in pairs:
        clock = time.thread_time()
        counts = change_counts(texts[old], texts[new], INDEX_BUDGET)
        cost = (time.thread_time() - clock) * 1000
        costs.append(cost)
        approximate += counts.approximate
        size = max(len(texts[old]), len(texts[new]))
        bucket = "< 50 KB" if size < 50_000 else "50–150 KB" if size < 150_000 else "≥ 150 KB"
        by_size.setdefault(bucket, []).append(cost)
    print(f"diff statistic per pair ({len(costs)} consecutive pairs, budget {INDEX_BUDGET * 1000:.0f} ms CPU): "
          f"p50 {percentile(costs, 0.5):.1f} ms, p90 {percentile(costs, 0.9):.1f} ms, "
          f"p99 {percentile(costs, 0.99):.1f} ms, max {max(costs):.1f} ms, mean {statistics.mean(costs):.2f} ms; "
          f"estimated (over budget): {approximate} ({100 * approximate / len(costs):.1f} %)")
    histogram = [(0, 1), (1, 5), (5, 20), (20, 50), (50, 100), (100, 10**9)]
    print("  distribution: " + ", ".join(
        f"{low}–{high if high < 10**9 else '∞'} ms: {sum(low <= c < high for c in costs)}" for low, high in histogram))
    for bucket in ("< 50 KB", "50–150 KB", "≥ 150 KB"):
        if bucket in by_size:
            values = by_size[bucket]
            print(f"  documents {bucket:>9}: {len(values):5d} pairs, mean {statistics.mean(values):6.2f} ms, "
                  f"p99 {percentile(values, 0.99):6.1f} ms")


# ------------------------------------------------------------------------- steps


def prepare(args: argparse.Namespace, workdir: Path) -> Path:
    """A versions repository for the bench (a fresh clone, or a generated archive)."""
    repo = workdir / "versions"
    if args.versions:
        if repo.exists():
            shutil.rmtree(repo)
        subprocess.run(["git", "clone", "-q", str(args.versions), str(repo)], check=True)
        return repo
    if not repo.exists():
        started = time.perf_counter()
        make_archive.main([str(workdir)])
        print(f"generated the archive in {time.perf_counter() - started:.1f} s")
    return repo


def archive_benchmark(args: argparse.Namespace, workdir: Path) -> None:
    repo = prepare(args, workdir)
    index = workdir / "index.sqlite"
    for stale in workdir.glob("index.sqlite*"):
        stale.unlink()
    commits = int(subprocess.run(["git", "rev-list", "--count", "HEAD"], cwd=repo, capture_output=True, text=True,
                                 check=True).stdout.strip())
    print(f"archive: {repo} ({commits} commits); load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores")
    serve_arguments = ["--versions", str(repo), "--index", str(index), "--refresh-interval", "0",
                       "--processes", str(args.processes)]

    server = Server(serve_arguments, workdir, "server-cold.log")
    try:
        first = server.first_answer()
        print(f"first answer (no index yet): {first:.2f} s after launch ({server.cpu_seconds():.2f} s of CPU "
              f"used by the server until then: the rest was waiting for a core)")
        complete = server.index_complete()
        cpu = server.cpu_seconds()
        versions = get_json(server.base + "/status.json")["index"]["versions_total"]
        print(f"cold index: complete {complete:.1f} s after launch, {versions} versions "
              f"({1000 * complete / max(1, versions):.2f} ms per version, wall); CPU {cpu:.1f} s in all "
              f"({1000 * cpu / max(1, versions):.2f} ms per version: on {os.cpu_count()} idle cores about "
              f"{1000 * cpu / max(1, versions) / (os.cpu_count() or 1):.2f} ms per version of wall time); "
              f"peak RSS of server + index workers {server.peak_rss / 2**20:.0f} MiB (each: "
              f"{', '.join(f'{rss / 2**20:.0f}' for rss in sorted(server.peak_rss_by_process.values(), reverse=True))}"
              f" MiB); "
              f"load average {os.getloadavg()[0]:.1f}")
    finally:
        server.stop()

    if args.growth:
        estimates = [index_growth(args, repo, workdir, commits) for _ in range(args.growth_passes)]
        if len(estimates) > 1:
            print(f"cold index of {args.extrapolate} commits, extrapolated over {len(estimates)} passes: median "
                  f"{statistics.median(estimates):.0f} s (from {min(estimates):.0f} to {max(estimates):.0f} s)")

    server = Server(serve_arguments, workdir, "server-restart.log")
    try:
        first = server.first_answer()
        complete = server.index_complete()
        print(f"restart on the index: first answer {first:.2f} s, index complete {complete:.2f} s after launch "
              f"({server.cpu_seconds():.2f} s of CPU); RSS {server.peak_rss / 2**20:.0f} MiB")
        processes = args.processes or os.cpu_count() or 1
        if processes != 1:
            server.serving_processes_ready(processes - 1)
        server.warmed_up(processes)
        rows = []
        for label, urls in page_urls(server.base, random.Random(1), args.requests).items():
            if not urls:
                print(f"{label}: no such pages in this archive")
                continue
            cpu = server.cpu_seconds()
            latencies, statuses, _seconds = load(server.base, urls, args.clients)
            cpu = (server.cpu_seconds() - cpu) * 1000 / len(urls)
            failures = sum(status != 200 for status in statuses)
            rows.append((label, len(urls), statistics.median(latencies), percentile(latencies, 0.95),
                         max(latencies), cpu, failures))
        print(f"\npages, each URL once, {args.clients} concurrent clients "
              f"(load average {os.getloadavg()[0]:.1f}):")
        print(f"{'page':38} {'URLs':>5} {'p50':>9} {'p95':>9} {'max':>9} {'CPU/req':>9} {'errors':>7}")
        for label, count, p50, p95, worst, cpu, failures in rows:
            print(f"{label:38} {count:5d} {p50:7.1f}ms {p95:7.1f}ms {worst:7.1f}ms {cpu:7.1f}ms {failures:7d}")
        print(f"server RSS after the pages: {server.peak_rss / 2**20:.0f} MiB (peak)")
    finally:
        server.stop()

    if not args.skip_pairs:
        pair_costs(repo, args.pairs, random.Random(2))


def index_growth(args: argparse.Namespace, repo: Path, workdir: Path, commits: int) -> float:
    """Cold index of the first part of the history, for growing parts, the whole one again
    (measured back to back: this machine's speed drifts between runs): how the cost grows.
    Returns the cold index time extrapolated to `--extrapolate` commits."""
    order = subprocess.run(["git", "rev-list", "--reverse", "HEAD"], cwd=repo, capture_output=True, text=True,
                           check=True).stdout.split()
    points = []
    for fraction in (0.25, 0.5, 0.75, 1.0):
        part = workdir / "versions-part"
        if part.exists():
            shutil.rmtree(part)
        subprocess.run(["git", "clone", "-q", str(repo), str(part)], check=True)
        subprocess.run(["git", "reset", "-q", "--hard", order[int(fraction * commits) - 1]], cwd=part, check=True)
        index = workdir / "index-part.sqlite"
        for stale in workdir.glob("index-part.sqlite*"):
            stale.unlink()
        server = Server(["--versions", str(part), "--index", str(index), "--refresh-interval", "0"], workdir,
                        "server-part.log")
        try:
            server.first_answer()
            complete = server.index_complete()
            points.append((get_json(server.base + "/status.json")["index"]["versions_total"], complete))
        finally:
            server.stop()
    print("cold index growth (versions: seconds after launch; marginal ms per version since the previous):")
    previous = None
    for versions, seconds in points:
        marginal = f"{1000 * (seconds - previous[1]) / max(1, versions - previous[0]):.2f}" if previous else "—"
        print(f"  {versions:6d}: {seconds:6.1f} s   {marginal}")
        previous = (versions, seconds)
    (half_versions, half_seconds), (versions, seconds) = points[1], points[-1]
    marginal = (seconds - half_seconds) / max(1, versions - half_versions)  # over the second half
    per_commit = versions / max(1, commits)
    estimate = seconds + (args.extrapolate * per_commit - versions) * marginal
    print(f"  extrapolated to {args.extrapolate} commits at the second half's marginal cost "
          f"({1000 * marginal:.2f} ms per version): {estimate:.0f} s")
    return estimate


def demo_benchmark(args: argparse.Namespace, workdir: Path) -> None:
    """Requests per second and p95 with 50 concurrent clients on the demo archive (issue 12, item 17)."""
    demo = workdir / "demo"
    environment = {**os.environ, "PYTHONPATH": str(ROOT)}
    started = time.perf_counter()
    subprocess.run([sys.executable, "-m", "termshift.cli", "demo", "--dir", str(demo), "--no-serve"],
                   env=environment, check=True, stdout=subprocess.DEVNULL)
    print(f"\ndemo archive ready in {time.perf_counter() - started:.1f} s")
    server = Server(["--data", str(demo / "data"), "--declarations", str(demo / "declarations"),
                     "--refresh-interval", "0"], workdir, "server-demo.log")
    try:
        server.first_answer()
        server.index_complete()
        home = get_json(server.base + "/index.json")
        documents = [d for s in home["services"] for d in s["documents"]]
        urls = ["/", "/-/changes", "/api/v1/services"]
        urls += [s["url"] for s in home["services"]] + [d["url"] for d in documents]
        for document in documents:
            urls += [v["diff_url"] for v in get_json(server.base + document["json_url"])["versions"][:10]
                     if not v["is_first_record"]]
        load_for(server.base, urls, args.demo_clients, 3)  # warm up: diffs computed, caches filled
        cpu = server.cpu_seconds()
        latencies, statuses, seconds = load_for(server.base, urls, args.demo_clients, args.demo_seconds)
        cpu = (server.cpu_seconds() - cpu) * 1000 / max(1, len(latencies))
        failures = sum(status != 200 for status in statuses)
        print(f"demo archive, {args.demo_clients} concurrent clients for {seconds:.0f} s over {len(urls)} URLs "
              f"(home, changes, API, services, documents, diffs): {len(latencies) / seconds:.0f} requests/s, "
              f"p50 {statistics.median(latencies):.1f} ms, p95 {percentile(latencies, 0.95):.1f} ms, "
              f"errors {failures}; server CPU {cpu:.1f} ms per request; server RSS {server.peak_rss / 2**20:.0f} MiB; "
              f"load average {os.getloadavg()[0]:.1f}")
    finally:
        server.stop()


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--versions", type=Path, help="measure this versions repository or bundle (cloned first)")
    parser.add_argument("--workdir", type=Path, help="where to clone or generate the archive (default: a temp dir)")
    parser.add_argument("--requests", type=int, default=60, help="distinct URLs per page kind")
    parser.add_argument("--clients", type=int, default=20, help="concurrent clients for the page latencies")
    parser.add_argument("--processes", type=int, default=1,
                        help="serving processes of `termshift serve` (its --processes; 0: one per core)")
    parser.add_argument("--growth", action="store_true",
                        help="also index the first 1/4, 1/2 and 3/4 of the history, to state the cost's growth")
    parser.add_argument("--growth-passes", type=int, default=1,
                        help="measure the growth this many times and report the median extrapolation (each "
                             "pass is a difference of two runs of seconds: this machine's speed drifts)")
    parser.add_argument("--extrapolate", type=int, default=42_632,
                        help="commits to extrapolate the cold index to, from the growth (default: issue 13's archive)")
    parser.add_argument("--pairs", type=int, default=None, help="pairs of versions to time (default: all)")
    parser.add_argument("--skip-pairs", action="store_true", help="do not time the diff statistics")
    parser.add_argument("--demo-clients", type=int, default=50, help="concurrent clients on the demo archive")
    parser.add_argument("--demo-seconds", type=float, default=20, help="how long to load the demo archive")
    parser.add_argument("--skip-demo", action="store_true", help="do not load the demo archive")
    parser.add_argument("--demo-only", action="store_true", help="only load the demo archive")
    args = parser.parse_args(argv)
    workdir = args.workdir or Path(tempfile.mkdtemp(prefix="termshift-bench-"))
    workdir.mkdir(parents=True, exist_ok=True)
    try:
        if not args.demo_only:
            archive_benchmark(args, workdir)
        if not args.skip_demo:
            demo_benchmark(args, workdir)
    finally:
        if not args.workdir:  # a temporary one: its clones and indexes are hundreds of MB
            shutil.rmtree(workdir, ignore_errors=True)


if __name__ == "__main__":
    main()
