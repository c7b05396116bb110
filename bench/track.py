"""Benchmark: a real tracking run over 1,000 documents on 100 hosts, each answering after 200 ms.

What it does:
1. starts the local web servers (tests/support/servers.JsPageServer) in ANOTHER
   process, so that serving does not compete with the run for the GIL: one address
   per host, 127.0.0.1 to 127.0.0.100, each answering every request after 200 ms,
   and counting the requests in flight on each host;
2. writes a collection of 1,000 services (one "Terms of Service" each, a ~20 kB
   page), 10 per host, and runs `run_tracking` into an empty data folder with the
   default fetcher settings (1 request at a time per host, 1 s between two);
3. prints the wall time, the versions recorded, the peak RSS of the run's process
   tree (this process + the fetch worker + git helpers, sampled every 50 ms with
   psutil) and the highest number of requests in flight on one host as the servers
   saw it; then a second run over the same, unchanged pages (the steady state);
4. with --browser: 50 JavaScript-rendered pages (content written by a script after
   load) fetched through Playwright and Chromium: pages per minute.

OTA fetches one document at a time: 1,000 × 200 ms is over 200 s for the network
waits alone. Targets: < 30 s wall, never more than `fetcher.per_host` requests in
flight on a host, peak RSS < 500 MiB.

Usage:
    python bench/track.py [--documents 1000] [--hosts 100] [--latency 0.2] [--profile]
                          [--browser [--js-pages 50] [--browser-pages N]]
"""

from __future__ import annotations

import argparse
import cProfile
import json
import os
import pstats
import resource
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import psutil  # noqa: E402

from termshift.config import Settings, load_settings  # noqa: E402
from termshift.listeners import run_listeners  # noqa: E402
from termshift.trackers.run import RunSummary, run_tracking  # noqa: E402

# The benchmark's "sites" are loopback addresses, which the fetchers refuse unless allowed.
LOOPBACK = ["127.0.0.0/8"]

WORDS = ["account", "agreement", "data", "privacy", "service", "user", "consent", "content", "law", "notice",
         "party", "policy", "rights", "share", "security", "subscription", "terminate", "transfer", "warranty"]


# -- the servers (run in their own process: `python bench/track.py --serve …`) -----------------


def page(number: int, paragraphs: int = 40) -> str:
    """A terms page of about 20 kB: a header and footer around `<main>`."""
    body = []
    for index in range(paragraphs):
        words = " ".join(WORDS[(number + index * 7 + k) % len(WORDS)] for k in range(60))
        body.append(f"<h2>Section {index + 1}</h2><p>{words.capitalize()}.</p>")
    return (
        f"<!DOCTYPE html><html><head><meta charset='utf-8'><title>Terms {number}</title></head><body>"
        f"<nav><a href='/'>Home</a> <a href='/about'>About</a></nav>"
        f"<main><h1>Terms of service {number}</h1>{''.join(body)}</main>"
        f"<footer>Copyright {number}</footer></body></html>"
    )


def serve(hosts: int, latency: float) -> None:
    """Serve /doc/<n> (HTML) and /js/delayed (JavaScript) on `hosts` addresses; /_stats says what
    the servers saw. Prints {"ports": {address: port}} once listening; stops when stdin closes."""
    from tests.support.servers import JsPageServer

    server = JsPageServer(hosts=hosts, latency=latency)

    def document(exchange: Any) -> None:
        exchange.send(200, page(int(exchange.path.rsplit("/", 1)[-1])))

    def stats(exchange: Any) -> None:
        answer = {"max_in_flight": {host: server.max_in_flight(host) for host in server.hosts},
                  "requests": len(server.requests)}
        exchange.send(200, json.dumps(answer), "application/json")

    server.route("/doc/", document)
    server.route("/_stats", stats)
    server.start()
    ports = {host: int(server.url("/", host).rsplit(":", 1)[1].split("/")[0]) for host in server.hosts}
    print(json.dumps({"ports": ports}), flush=True)
    sys.stdin.read()
    server.stop()


class Servers:
    """The server process, seen from the benchmark."""

    def __init__(self, hosts: int, latency: float) -> None:
        self.process = subprocess.Popen(
            [sys.executable, __file__, "--serve", "--hosts", str(hosts), "--latency", str(latency)],
            cwd=ROOT, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
        )
        line = self.process.stdout.readline() if self.process.stdout else ""
        if not line.startswith("{"):
            self.process.kill()
            raise SystemExit(f"the servers did not start: {line!r}")
        self.ports: dict[str, int] = json.loads(line)["ports"]
        self.hosts = list(self.ports)

    def url(self, path: str, host: int) -> str:
        address = self.hosts[host % len(self.hosts)]
        return f"http://{address}:{self.ports[address]}{path}"

    def stats(self) -> dict[str, Any]:
        with urllib.request.urlopen(self.url("/_stats", 0), timeout=30) as answer:  # noqa: S310 - our own server
            return json.loads(answer.read())

    def close(self) -> None:
        if self.process.stdin:
            self.process.stdin.close()
        try:
            self.process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.process.kill()


# -- measuring -------------------------------------------------------------------------------


class TreeMemory:
    """Peak memory of this process and all its descendants (except `excluded`), sampled.

    `peak` sums the processes' RSS (what the targets are stated in; pages shared between
    processes, e.g. Chromium's, count once per process); `peak_pss` sums their PSS
    (shared pages split between their users), the truer total.
    """

    def __init__(self, excluded: set[int], interval: float = 0.1) -> None:
        self.excluded = excluded
        self.interval = interval
        self.peak = 0
        self.peak_pss = 0
        self.peak_processes = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._sample, daemon=True)

    def _sample(self) -> None:
        me = psutil.Process()
        rounds = 0
        while not self._stop.is_set():
            # PSS (reading /proc/<pid>/smaps_rollup) costs more: every 10th sample only, so the
            # sampler does not weigh on the run it measures.
            with_pss = rounds % 10 == 0
            rounds += 1
            rss, pss, count = 0, 0, 0
            for process in [me, *me.children(recursive=True)]:
                if process.pid in self.excluded:
                    continue
                try:
                    if with_pss:
                        memory = process.memory_full_info()
                        pss += getattr(memory, "pss", memory.rss)
                    else:
                        memory = process.memory_info()
                except psutil.Error:
                    continue  # ended between the listing and the reading
                rss, count = rss + memory.rss, count + 1
            if rss > self.peak:
                self.peak, self.peak_processes = rss, count
            self.peak_pss = max(self.peak_pss, pss)
            self._stop.wait(self.interval)

    def __enter__(self) -> TreeMemory:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()


def write_collection(directory: Path, servers: Servers, documents: int, javascript: bool) -> None:
    """One service per document, spread round-robin over the hosts."""
    directory.mkdir(parents=True)
    for number in range(documents):
        if javascript:
            terms = {"fetch": servers.url(f"/js/delayed?ms=100&n={number}", number), "select": "#terms",
                     "executeClientScripts": True}
        else:
            terms = {"fetch": servers.url(f"/doc/{number}", number), "select": "main"}
        declaration = {"name": f"Service {number:04d}", "terms": {"Terms of Service": terms}}
        (directory / f"Service {number:04d}.json").write_text(json.dumps(declaration), encoding="utf-8")


def cpu_seconds() -> tuple[float, float]:
    """CPU time (user + system) of this process, and of its children that have ended."""
    own, children = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime, children.ru_utime + children.ru_stime


def tracked(settings: Settings, profile: bool) -> tuple[RunSummary, float, TreeMemory, tuple[float, float]]:
    """One run: (summary, wall seconds, its memory peaks, CPU seconds (run, children)).

    CPU time says what the run costs whatever else the machine is doing; wall time on a
    shared 2-core machine also counts the other processes.
    """
    excluded = {child.pid for child in psutil.Process().children()}  # the servers
    profiler = cProfile.Profile() if profile else None
    with TreeMemory(excluded) as memory:
        cpu_before = cpu_seconds()
        started = time.perf_counter()
        if profiler:
            profiler.enable()
        summary = run_tracking(settings, listeners=run_listeners(settings))  # as `termshift track` does
        if profiler:
            profiler.disable()
        seconds = time.perf_counter() - started
        cpu_after = cpu_seconds()
    if profiler:
        pstats.Stats(profiler).sort_stats("cumulative").print_stats(25)
    cpu = (cpu_after[0] - cpu_before[0], cpu_after[1] - cpu_before[1])
    return summary, seconds, memory, cpu


def report(title: str, summary: RunSummary, seconds: float, memory: TreeMemory, cpu: tuple[float, float]) -> None:
    counts = summary.counts
    print(f"{title}: {seconds:.1f} s wall; {counts.new_versions} new versions, {counts.unchanged} unchanged, "
          f"{counts.failed} failed, {counts.snapshots_recorded} snapshots\n"
          f"  peak RSS {memory.peak / 2**20:.0f} MiB over {memory.peak_processes} processes "
          f"(PSS {memory.peak_pss / 2**20:.0f} MiB); CPU {cpu[0]:.1f} s in the run's process + {cpu[1]:.1f} s in "
          f"the fetch worker and git; load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} CPUs")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--documents", type=int, default=1000)
    parser.add_argument("--hosts", type=int, default=100)
    parser.add_argument("--latency", type=float, default=0.2, help="seconds before each answer")
    parser.add_argument("--browser", action="store_true", help="also time JavaScript pages through Chromium")
    parser.add_argument("--js-pages", type=int, default=50)
    parser.add_argument("--browser-pages", type=int, default=None,
                        help="pages the browser renders at once (default: fetcher.browser_pages)")
    parser.add_argument("--profile", action="store_true", help="cProfile the first run (this process only)")
    parser.add_argument("--serve", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.serve:
        serve(args.hosts, args.latency)
        return

    servers = Servers(args.hosts, args.latency)
    failures = []
    try:
        with tempfile.TemporaryDirectory(prefix="termshift-bench-") as folder:
            root = Path(folder)
            write_collection(root / "declarations", servers, args.documents, javascript=False)
            settings = load_settings(environ={}, overrides={
                "": {"declarations": str(root / "declarations"), "data": str(root / "data")},
                "schedule": {"refresh_index": True}, "web": {"base_url": "https://terms.example.org"},
                "fetcher": {"allow_private_targets": LOOPBACK},
            })
            fetcher = settings.fetcher
            print(f"{args.documents} documents on {args.hosts} hosts, {args.latency * 1000:.0f} ms per answer; "
                  f"per_host={fetcher.per_host}, host_delay={fetcher.host_delay:g} s, {os.cpu_count()} CPUs")
            summary, seconds, memory, cpu = tracked(settings, args.profile)
            report("run 1 (all new)", summary, seconds, memory, cpu)
            peak = memory.peak
            stats = servers.stats()
            busiest = max(stats["max_in_flight"].values())
            print(f"  highest number of requests in flight on one host: {busiest} (limit {fetcher.per_host}); "
                  f"{stats['requests']} requests served")
            if seconds >= 30:
                failures.append(f"wall time {seconds:.1f} s >= 30 s")
            if busiest > fetcher.per_host:
                failures.append(f"{busiest} requests in flight on one host > per_host {fetcher.per_host}")
            if peak >= 500 * 2**20:
                failures.append(f"peak RSS {peak / 2**20:.0f} MiB >= 500 MiB")
            if summary.counts.new_versions != args.documents:
                failures.append(f"{summary.counts.new_versions} versions recorded, expected {args.documents}")
            summary, seconds, memory, cpu = tracked(settings, False)
            report("run 2 (same pages)", summary, seconds, memory, cpu)

            if args.browser:
                write_collection(root / "javascript", servers, args.js_pages, javascript=True)
                js_settings = load_settings(environ={}, overrides={
                    "": {"declarations": str(root / "javascript"), "data": str(root / "js-data")},
                    "web": {"base_url": "https://terms.example.org"},
                    "fetcher": {"browser_pages": args.browser_pages, "allow_private_targets": LOOPBACK}})
                summary, seconds, memory, cpu = tracked(js_settings, False)
                report(f"{args.js_pages} JavaScript pages", summary, seconds, memory, cpu)
                print(f"  {args.js_pages / seconds * 60:.0f} pages per minute through the browser "
                      f"(browser_pages={js_settings.fetcher.browser_pages})")
                if summary.counts.new_versions != args.js_pages:
                    failures.append(f"{summary.counts.new_versions} of {args.js_pages} JavaScript pages recorded")
    finally:
        servers.close()
    print("targets met" if not failures else "TARGETS MISSED: " + "; ".join(failures))
    sys.exit(1 if failures else 0)


if __name__ == "__main__":
    main()
