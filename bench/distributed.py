"""Benchmark: distributed mode on the local replay farm — workers, politeness, SIGKILL, the writer.

What it does (loopback servers in another process, as bench/track.py; a real redis-server;
real `termshift worker` processes, one job thread each):

1. a collection of `--documents` terms on `--hosts` hosts, a third of them JavaScript
   pages rendered in Chromium (`executeClientScripts`), the rest ~20 kB HTML pages;
2. **1 worker, then 2 workers**: the jobs are sent, the workers started, and the time
   from the first worker's start to the last result stored is the workers' throughput
   (fetch + render + extract: the part that is meant to scale with workers). The
   coordinator does not record meanwhile, so it does not take CPU from the workers;
3. **the coordinator's recording rate**: with every result already stored, a
   coordinator resumes the run and records it (snapshots + versions committed per
   second: the single writer's ceiling), and what it means for 100k documents;
4. **politeness**: the highest number of requests in flight on one host, as the
   servers counted it over all workers, against `fetcher.per_host`;
5. **a worker SIGKILLed mid-run** (2 workers, the coordinator recording as results
   come): every document recorded exactly once, `git fsck --strict` clean.

Targets: ≥ 1.7× throughput with 2 workers (2 cores), per-host in flight ≤ per_host,
each document once and fsck clean after the kill.

Usage:
    python bench/distributed.py [--documents 60] [--hosts 3] [--latency 0.05] [--per-host 1]
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import subprocess
import sys
import tempfile
import threading
import time
from datetime import datetime
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

import redis  # noqa: E402
from track import LOOPBACK, Servers  # noqa: E402

from termshift.config import Settings, load_settings  # noqa: E402
from termshift.distributed.broker import declare_job_actor, make_broker, send_job  # noqa: E402
from termshift.distributed.coordinator import Coordinator, _state_key  # noqa: E402
from termshift.distributed.planning import fleet_fetcher, plan_job  # noqa: E402
from termshift.distributed.results import ResultStore  # noqa: E402
from termshift.distributed.worker import fleet_workers  # noqa: E402
from termshift.trackers.run import run_tracking, select_terms  # noqa: E402
from tests.support.redis_server import RedisServer  # noqa: E402
from tests.support.waiting import wait_until  # noqa: E402

HEARTBEAT_TIMEOUT = 3.0


def write_collection(directory: Path, servers: Servers, documents: int) -> int:
    """One service per document; every third one a JavaScript page. Returns the JavaScript pages."""
    directory.mkdir(parents=True)
    javascript = 0
    for number in range(documents):
        if number % 3 == 2:
            javascript += 1
            terms = {"fetch": servers.url(f"/js/delayed?ms=100&n={number}", number), "select": "#terms",
                     "executeClientScripts": True}
        else:
            terms = {"fetch": servers.url(f"/doc/{number}", number), "select": "main"}
        declaration = {"name": f"Service {number:04d}", "terms": {"Terms of Service": terms}}
        (directory / f"Service {number:04d}.json").write_text(json.dumps(declaration), encoding="utf-8")
    return javascript


def settings_for(root: Path, broker: str, per_host: int) -> Settings:
    return load_settings(environ={}, overrides={
        "": {"declarations": str(root / "declarations"), "data": str(root / "data")},
        "schedule": {"refresh_index": False},
        "fetcher": {"allow_private_targets": LOOPBACK, "per_host": per_host, "host_delay": 0.0, "retries": 0},
        "distributed": {"broker": broker, "heartbeat_timeout": HEARTBEAT_TIMEOUT}})


def start_worker(broker: str, declarations: Path, log: Path) -> subprocess.Popen[bytes]:
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")]))}
    with open(log, "w") as output:
        return subprocess.Popen(
            [sys.executable, "-m", "termshift.cli", "worker", "--broker", broker, "--declarations", str(declarations),
             "--heartbeat-timeout", str(HEARTBEAT_TIMEOUT), "--lease", "3"],
            stdout=output, stderr=subprocess.STDOUT, env=env, cwd=ROOT)


def stop(workers: list[subprocess.Popen[bytes]]) -> None:
    for worker in workers:
        if worker.poll() is None:
            worker.send_signal(signal.SIGTERM)
    for worker in workers:
        try:
            worker.wait(30)
        except subprocess.TimeoutExpired:
            worker.kill()
            worker.wait()


def send_all(settings: Settings, broker_url: str, run_id: str) -> list[str]:
    """The coordinator's first half, done here: plan and send every job; note the run as sent."""
    selected, _skipped = select_terms(Path(settings.declarations), None, None)
    broker = make_broker(broker_url, heartbeat_timeout=HEARTBEAT_TIMEOUT)
    actor = declare_job_actor(broker)
    fetcher = fleet_fetcher(settings)
    ids = []
    for service, terms in selected:
        job = plan_job(run_id, service, terms, Path(settings.declarations), fetcher)
        send_job(actor, job)
        ids.append(job.job_id)
    client = broker.client
    store = ResultStore(client)
    client.sadd(store._key(run_id, "sent"), *ids)
    client.hset(_state_key(Path(settings.data)), mapping={"run": run_id})  # a coordinator resumes it
    broker.close()
    return ids


def children_cpu() -> float:
    """CPU seconds (user + system) of this process's children and their descendants that have ended."""
    import resource

    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def git_count(repository: Path) -> int:
    return int(subprocess.run(["git", "-C", str(repository), "rev-list", "--count", "HEAD"], check=True,
                              capture_output=True, text=True).stdout)


def fsck(repository: Path) -> bool:
    return subprocess.run(["git", "-C", str(repository), "fsck", "--strict"], capture_output=True).returncode == 0


def workers_phase(root: Path, broker: str, servers: Servers, count: int, per_host: int, documents: int) -> dict:
    """Send every job, start `count` workers, time until every result is stored; then record."""
    client = redis.Redis.from_url(broker)
    client.flushall()
    settings = settings_for(root, broker, per_host)
    run_id = f"bench-{count}w"
    store = ResultStore(client)
    ids = send_all(settings, broker, run_id)
    cpu_before = children_cpu()
    started = time.perf_counter()
    workers = [start_worker(broker, root / "declarations", root / f"worker-{count}-{n}.log") for n in range(count)]
    try:
        wait_until(lambda: len(store.arrived(run_id)) == len(ids), 1800, "every result")
        boot_and_work = time.perf_counter() - started
    finally:
        stop(workers)
    cpu = children_cpu() - cpu_before  # the workers and everything they started (Scrapy, Chromium), all waited
    # The workers' busy span: first job started → last job finished (their start-up left out).
    spans = [(result.started_at, result.finished_at) for result in (store.get(run_id, job) for job in ids) if result]
    seconds = (datetime.fromisoformat(max(end for _start, end in spans))
               - datetime.fromisoformat(min(start for start, _end in spans))).total_seconds()
    # The coordinator, alone: every result is in Redis, it records them (resuming the run sent above).
    recording_started = time.perf_counter()
    summary = run_tracking(settings, source=Coordinator(settings))
    recording = time.perf_counter() - recording_started
    commits = git_count(root / "data" / "snapshots") + git_count(root / "data" / "versions")
    client.close()
    return {"workers": count, "seconds": seconds, "docs_per_s": documents / seconds, "with_boot": boot_and_work, "cpu": cpu,
            "recording_seconds": recording, "commits": commits, "commits_per_s": commits / recording,
            "new_versions": summary.counts.new_versions, "failed": summary.counts.failed,
            "redeliveries": store.stats(run_id)["redeliveries"]}


def kill_phase(root: Path, broker: str, per_host: int, documents: int) -> dict:
    """Two workers and a recording coordinator; one worker SIGKILLed mid-job."""
    client = redis.Redis.from_url(broker)
    client.flushall()
    settings = settings_for(root, broker, per_host)
    workers = [start_worker(broker, root / "declarations", root / f"worker-kill-{n}.log") for n in range(2)]
    try:
        wait_until(lambda: len(fleet_workers(client, HEARTBEAT_TIMEOUT)) == 2, 60, "both workers")
        coordinator = Coordinator(settings)
        outcome: dict = {}
        thread = threading.Thread(target=lambda: outcome.setdefault("summary", run_tracking(settings,
                                                                                            source=coordinator)))
        thread.start()
        store = ResultStore(client)
        wait_until(lambda: coordinator.run_id and len(store.arrived(coordinator.run_id)) >= documents // 3, 900,
                 "a third of the results")

        def busy() -> list[str]:
            """Workers holding a job whose result is not in yet."""
            done = set(store.arrived(coordinator.run_id))
            return [worker for job, worker in store.claims(coordinator.run_id).items() if job not in done]

        holders = wait_until(busy, 60, "a worker in the middle of a job")
        victim = next(w for w in workers if holders[0].endswith(f":{w.pid}"))
        victim.send_signal(signal.SIGKILL)
        killed_at = time.perf_counter()
        thread.join(1800)
        seconds = time.perf_counter() - killed_at
        summary = outcome["summary"]
        stats = store.stats(coordinator.run_id)
    finally:
        stop(workers)
        client.close()
    data = root / "data"
    return {"mid_job": True, "new_versions": summary.counts.new_versions, "failed": summary.counts.failed,
            "snapshot_commits": git_count(data / "snapshots"), "version_commits": git_count(data / "versions"),
            "fsck": fsck(data / "snapshots") and fsck(data / "versions"), "redeliveries": stats["redeliveries"],
            "duplicates_ignored": stats["ignored"], "after_kill_s": seconds}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--documents", type=int, default=60)
    parser.add_argument("--hosts", type=int, default=3)
    parser.add_argument("--latency", type=float, default=0.05)
    parser.add_argument("--per-host", type=int, default=1)
    args = parser.parse_args()

    servers = Servers(args.hosts, args.latency)
    failures = []
    try:
        with RedisServer() as redis_server, tempfile.TemporaryDirectory(prefix="termshift-dist-") as folder:
            broker = redis_server.url
            results = []
            for count in (1, 2):
                root = Path(folder) / f"w{count}"
                javascript = write_collection(root / "declarations", servers, args.documents)
                results.append(workers_phase(root, broker, servers, count, args.per_host, args.documents))
                row = results[-1]
                print(f"{count} worker(s): {args.documents} documents ({javascript} rendered in Chromium) in "
                      f"{row['seconds']:.1f} s = {row['docs_per_s']:.2f} documents/s ({row['with_boot']:.1f} s with the "
                      f"workers' start-up); load average "
                      f"{os.getloadavg()[0]:.1f} on {os.cpu_count()} CPUs", flush=True)
                print(f"  CPU of the workers and their Scrapy and Chromium processes: {row['cpu']:.1f} s = "
                      f"{row['cpu'] / args.documents:.2f} s per document, {row['cpu'] / row['with_boot']:.2f} cores "
                      f"busy on average", flush=True)
                print(f"  coordinator alone: {row['commits']} commits (snapshots + versions) recorded in "
                      f"{row['recording_seconds']:.1f} s = {row['commits_per_s']:.1f} commits/s; "
                      f"{row['new_versions']} versions, {row['failed']} failed", flush=True)
                if row["new_versions"] != args.documents:
                    failures.append(f"{count} worker(s): {row['new_versions']} versions of {args.documents}")
            speedup = results[1]["docs_per_s"] / results[0]["docs_per_s"]
            print(f"2 workers vs 1: {speedup:.2f}x throughput (target >= 1.7x)")
            if speedup < 1.7:
                failures.append(f"speed-up {speedup:.2f}x < 1.7x")
            busiest = max(servers.stats()["max_in_flight"].values())
            print(f"highest number of requests in flight on one host, over every worker: {busiest} "
                  f"(per_host {args.per_host})")
            if busiest > args.per_host:
                failures.append(f"{busiest} in flight on one host > per_host {args.per_host}")
            rate = max(row["commits_per_s"] for row in results)
            per_document = 2  # a snapshot and a version each, when every document changed
            print(f"recording ceiling: {rate:.1f} commits/s: 100,000 changed documents = "
                  f"{100_000 * per_document / rate / 3600:.1f} h of recording; with 5 % changed "
                  f"(unchanged pages cost no commit) {100_000 * 0.05 * per_document / rate / 60:.0f} min")

            root = Path(folder) / "kill"
            write_collection(root / "declarations", servers, args.documents)
            kill = kill_phase(root, broker, args.per_host, args.documents)
            print(f"one worker SIGKILLed {'mid-job' if kill['mid_job'] else '(between jobs)'}: "
                  f"{kill['snapshot_commits']} snapshot commits, {kill['version_commits']} version commits for "
                  f"{args.documents} documents; {kill['redeliveries']} redelivered, {kill['duplicates_ignored']} "
                  f"duplicates ignored; fsck {'clean' if kill['fsck'] else 'FAILED'}; run ended "
                  f"{kill['after_kill_s']:.1f} s after the kill")
            if not (kill["snapshot_commits"] == kill["version_commits"] == args.documents and kill["fsck"]):
                failures.append("after the SIGKILL: not every document recorded exactly once, or fsck failed")
    finally:
        servers.close()
    print("targets met" if not failures else "TARGETS MISSED: " + "; ".join(failures))
    sys.exit(1 if failures else 0)


if __name__ == "__main__":
    main()
