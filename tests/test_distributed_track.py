"""The coordinator of a distributed run against real components: Redis, `termshift worker`
processes, `termshift track --broker` processes, loopback HTTP servers, real SIGKILLs.

What is checked is the archive: every document recorded exactly once (one snapshot
commit each, one version per terms), in the planned order, `git fsck --strict` clean,
whoever was killed — a worker in the middle of a job, or the coordinator in the middle
of recording.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

pytest.importorskip("dramatiq")
pytest.importorskip("redis")

import redis  # noqa: E402
from click.testing import CliRunner  # noqa: E402

from termshift.cli import main  # noqa: E402
from termshift.config import load_settings  # noqa: E402
from termshift.distributed.coordinator import BrokerUnavailable, Coordinator, current_run, fleet_status  # noqa: E402
from termshift.distributed.results import ResultStore  # noqa: E402
from termshift.distributed.worker import fleet_workers  # noqa: E402
from termshift.trackers.run import run_tracking  # noqa: E402
from tests.support.servers import FaultServer  # noqa: E402
from tests.support.waiting import wait_until  # noqa: E402
from tests.test_distributed_worker import REPO_ROOT, start_worker  # noqa: E402
from tests.test_track import declare  # noqa: E402

pytestmark = pytest.mark.redis

NAMES = [f"Service{number:02d}" for number in range(8)]


def declare_services(declarations: Path, server: FaultServer, slow: str = "") -> None:
    """Eight services, one terms each, two of them combined (two documents), on two hosts."""
    for number, name in enumerate(NAMES):
        delay = "?delay=1.5" if name == slow else ""
        if number % 4 == 3:
            terms = {"combine": [{"fetch": server.url(f"/page/{name}A{delay}", number % 2), "select": "main"},
                                 {"fetch": server.url(f"/page/{name}B", number % 2), "select": "main"}]}
        else:
            terms = {"fetch": server.url(f"/page/{name}{delay}", number % 2), "select": "main"}
        declare(declarations, name, {"Terms of Service": terms})


def documents_declared() -> int:
    return sum(2 if number % 4 == 3 else 1 for number in range(len(NAMES)))


def settings_for(tmp_path: Path, redis_url: str = ""):
    return load_settings(environ={}, overrides={
        "": {"declarations": str(tmp_path / "declarations"), "data": str(tmp_path / "data")},
        "fetcher": {"timeout": 10.0, "host_delay": 0.0, "retries": 0, "per_host": 2},
        "schedule": {"refresh_index": False},
        "distributed": {"broker": redis_url, "heartbeat_timeout": 1.5}})


def git(repository: Path, *args: str) -> str:
    return subprocess.run(["git", "-C", str(repository), *args], check=True, capture_output=True, text=True).stdout


def commit_subjects(repository: Path) -> list[str]:
    return git(repository, "log", "--reverse", "--format=%s").splitlines()


def assert_recorded_exactly_once(data: Path) -> None:
    snapshots, versions = commit_subjects(data / "snapshots"), commit_subjects(data / "versions")
    assert len(snapshots) == documents_declared(), snapshots
    assert len(versions) == len(NAMES), versions
    # In the planned order (services sorted), whatever order the workers finished in.
    assert [next(name for name in NAMES if name in subject) for subject in versions] == NAMES
    for repository in (data / "snapshots", data / "versions"):
        git(repository, "fsck", "--strict")


def track_process(tmp_path: Path, redis_url: str, log: Path) -> subprocess.Popen[str]:
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(REPO_ROOT), os.environ.get("PYTHONPATH")])),
           "TERMSHIFT_SCHEDULE_REFRESH_INDEX": "false", "TERMSHIFT_FETCHER_HOST_DELAY": "0",
           "TERMSHIFT_FETCHER_RETRIES": "0", "TERMSHIFT_DISTRIBUTED_HEARTBEAT_TIMEOUT": "1.5"}
    with open(log, "w") as stderr:
        return subprocess.Popen(
            [sys.executable, "-m", "termshift.cli", "track", "--quiet", "--broker", redis_url,
             "--declarations", str(tmp_path / "declarations"), "--data", str(tmp_path / "data")],
            stdout=stderr, stderr=subprocess.STDOUT, text=True, env=env, cwd=tmp_path)


def stop_all(processes: list[subprocess.Popen[str]]) -> None:
    for process in processes:
        if process.poll() is None:
            process.kill()
        process.wait()


def test_a_distributed_run_records_what_a_local_run_records(redis_url, tmp_path):
    """Same versions as a local run; a worker SIGKILLed mid-job changes nothing in the archive."""
    with FaultServer(hosts=2) as server:
        declare_services(tmp_path / "declarations", server, slow="Service02")
        client = redis.Redis.from_url(redis_url)
        workers = [start_worker(redis_url, tmp_path / "declarations", tmp_path / f"worker{n}.log") for n in range(2)]
        try:
            wait_until(lambda: len(fleet_workers(client, 1.5)) == 2, 30, "both workers to start")
            settings = settings_for(tmp_path, redis_url)
            coordinator = Coordinator(settings)
            killed: list[int] = []

            def kill_the_slow_jobs_worker() -> None:
                store = ResultStore(client)
                holder = wait_until(lambda: store.claims(coordinator.run_id).get("Service02/Terms of Service"),
                                  30, "a worker to take the slow job")
                wait_until(lambda: server.hits("/page/Service02?delay=1.5") == 1, 30, "the slow page")
                victim = next(worker for worker in workers if holder.endswith(f":{worker.pid}"))
                victim.send_signal(signal.SIGKILL)
                killed.append(victim.pid)

            import threading

            killer = threading.Thread(target=kill_the_slow_jobs_worker, daemon=True)
            killer.start()
            summary = run_tracking(settings, source=coordinator)
            killer.join(30)
            assert killed, "the slow job's worker was not killed"
            assert summary.status == "completed" and summary.counts.new_versions == len(NAMES), summary.describe()
            assert_recorded_exactly_once(tmp_path / "data")
            stats = ResultStore(client).stats(coordinator.run_id)
            assert stats["redeliveries"] >= 1 and stats["new"] == len(NAMES)
            assert current_run(client, tmp_path / "data") == {}  # the run is over

            status = fleet_status(redis_url, tmp_path / "data", heartbeat_timeout=1.5)
            assert status["queue_waiting"] == 0 and status["jobs_in_flight"] == 0
            assert status["run"] == coordinator.run_id and status["run_stats"]["redeliveries"] >= 1

            # The same declarations tracked locally give the same Markdown.
            local = tmp_path / "local"
            local_settings = load_settings(environ={}, overrides={
                "": {"declarations": str(tmp_path / "declarations"), "data": str(local)},
                "fetcher": {"timeout": 10.0, "host_delay": 0.0, "retries": 0, "per_host": 2},
                "schedule": {"refresh_index": False}})
            run_tracking(local_settings)
            for name in NAMES:
                path = f"{name}/Terms of Service.md"
                assert (local / "versions" / path).read_text() == (tmp_path / "data" / "versions" / path).read_text()

            # Nothing changed: a second distributed run records nothing.
            again = run_tracking(settings_for(tmp_path, redis_url), source=Coordinator(settings_for(tmp_path, redis_url)))
            assert again.counts.new_versions == 0 and again.counts.snapshots_recorded == 0
            assert_recorded_exactly_once(tmp_path / "data")
        finally:
            stop_all(workers)
            client.close()


def test_a_killed_coordinator_resumes_its_run_on_restart(redis_url, tmp_path):
    with FaultServer(hosts=2) as server:
        declare_services(tmp_path / "declarations", server)
        client = redis.Redis.from_url(redis_url)
        store = ResultStore(client)
        processes: list[subprocess.Popen[str]] = []
        try:
            coordinator = track_process(tmp_path, redis_url, tmp_path / "track1.log")
            processes.append(coordinator)
            # No worker yet: the coordinator sends every job, then waits.
            run = wait_until(lambda: current_run(client, tmp_path / "data").get("local_run")
                           and current_run(client, tmp_path / "data")["run"], 60, "the coordinator to send")
            wait_until(lambda: len(client.smembers(store._key(run, "sent"))) == len(NAMES), 30, "every job sent")
            # One worker records a few jobs, then the coordinator is killed while recording.
            worker = start_worker(redis_url, tmp_path / "declarations", tmp_path / "worker.log")
            processes.append(worker)
            wait_until(lambda: len(client.smembers(store._key(run, "recorded"))) >= 3, 60, "three jobs recorded")
            coordinator.send_signal(signal.SIGKILL)
            coordinator.wait()
            recorded_before = len(client.smembers(store._key(run, "recorded")))
            assert recorded_before < len(NAMES), "the run ended before the kill: nothing to resume"

            restarted = track_process(tmp_path, redis_url, tmp_path / "track2.log")
            processes.append(restarted)
            assert restarted.wait(120) == 0, (tmp_path / "track2.log").read_text()
            log = (tmp_path / "track2.log").read_text()
            assert f"resuming distributed run {run}" in log
            assert_recorded_exactly_once(tmp_path / "data")
            assert current_run(client, tmp_path / "data") == {}
            # The killed coordinator's run is not left "running" in runs.sqlite.
            from termshift.trackers.run_store import RUNS_FILE, RunStore

            with RunStore(tmp_path / "data" / RUNS_FILE) as runs:
                statuses = [record.status for record in runs.latest_runs(10)]
            assert "running" not in statuses and statuses[0] == "completed", statuses
        finally:
            stop_all(processes)
            client.close()


def test_a_broker_gone_mid_run_stops_the_run_cleanly_and_the_next_run_completes(redis_server, redis_url, tmp_path):
    """The broker killed mid-run: after `outage` seconds the run stops with a clear error and
    the archive holds only whole records; with the broker back (empty: it saved nothing), the
    next run records what is missing, each document once."""
    import threading

    with FaultServer(hosts=2) as server:
        declare_services(tmp_path / "declarations", server, slow="Service05")
        client = redis.Redis.from_url(redis_url)
        workers = [start_worker(redis_url, tmp_path / "declarations", tmp_path / "worker1.log")]
        try:
            wait_until(lambda: len(fleet_workers(client, 1.5)) == 1, 30, "the worker to start")
            coordinator = Coordinator(settings_for(tmp_path, redis_url), outage=3.0)
            store = ResultStore(client)

            def stop_the_broker() -> None:
                wait_until(lambda: coordinator.run_id
                         and len(client.smembers(store._key(coordinator.run_id, "recorded"))) >= 2,
                         60, "two jobs recorded")
                redis_server.stop()

            stopper = threading.Thread(target=stop_the_broker, daemon=True)
            stopper.start()
            with pytest.raises(BrokerUnavailable, match="stopped answering"):
                run_tracking(settings_for(tmp_path, redis_url), source=coordinator)
            stopper.join(30)
            data = tmp_path / "data"
            recorded = commit_subjects(data / "versions")
            assert 2 <= len(recorded) < len(NAMES), recorded
            for repository in (data / "snapshots", data / "versions"):
                git(repository, "fsck", "--strict")

            redis_server.start()
            stop_all(workers)
            workers.append(start_worker(redis_url, tmp_path / "declarations", tmp_path / "worker2.log"))
            summary = run_tracking(settings_for(tmp_path, redis_url), source=Coordinator(settings_for(tmp_path, redis_url)))
            assert summary.status == "completed", summary.describe()
            assert summary.counts.new_versions == len(NAMES) - len(recorded), summary.describe()
            assert_recorded_exactly_once(data)
        finally:
            stop_all(workers)
            client.close()


def test_a_broker_that_cannot_be_reached_is_a_clear_error_and_nothing_is_written(tmp_path):
    import socket

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    declare(tmp_path / "declarations", "Acme", {"Terms of Service": {"fetch": "http://127.0.0.1:9/", "select": "main"}})
    outcome = CliRunner().invoke(main, ["track", "--quiet", "--broker", f"redis://user:secret@127.0.0.1:{port}/0",
                                        "--declarations", str(tmp_path / "declarations"),
                                        "--data", str(tmp_path / "data")])
    assert outcome.exit_code == 1, outcome.output
    assert f"the broker at redis://127.0.0.1:{port}/0 cannot be reached" in outcome.output
    assert "secret" not in outcome.output
    assert not (tmp_path / "data" / "snapshots").exists() and not (tmp_path / "data" / "versions").exists()


def test_status_and_metrics_show_the_fleet(redis_url, tmp_path):
    """Workers, queue depth, jobs in flight and redeliveries on /status, /status.json and /metrics."""
    import time

    from termshift.distributed.broker import declare_job_actor, make_broker, send_job
    from termshift.distributed.jobs import TermsJob
    from termshift.distributed.worker import WORKERS_KEY
    from tests.test_health import ADMIN, make_app, metrics

    settings = load_settings(environ={}, overrides={
        "": {"data": str(tmp_path / "data")}, "schedule": {"deliveries": 0, "dataset": ""},
        "distributed": {"broker": redis_url, "heartbeat_timeout": 5.0}})
    client = redis.Redis.from_url(redis_url)
    client.hset(WORKERS_KEY, mapping={"render-1:101": f"{time.time():.3f} 7", "render-2:102": f"{time.time() - 60:.3f} 2"})
    broker = make_broker(redis_url)
    actor = declare_job_actor(broker)
    for name in ("A", "B", "C"):
        send_job(actor, TermsJob("r1", f"{name}/Terms", name, "Terms", "f", []))
    # A run in progress with a redelivered job.
    client.hset(Coordinator(settings).state_key, mapping={"run": "r1"})
    store = ResultStore(client)
    store.begin_attempt("r1", "A/Terms", "render-1:101")
    store.begin_attempt("r1", "A/Terms", "render-2:102")

    web = make_app(settings).test_client()
    fleet = web.get("/status.json", headers=ADMIN).json["fleet"]
    assert fleet["workers_alive"] == 1 and [worker["name"] for worker in fleet["workers"]] == ["render-1:101",
                                                                                                 "render-2:102"]
    assert fleet["queue_waiting"] == 3 and fleet["jobs_in_flight"] == 0 and fleet["run"] == "r1"
    assert fleet["run_stats"]["redeliveries"] == 1
    public = web.get("/status.json").json["fleet"]
    assert "workers" not in public and "broker" not in public and public["queue_waiting"] == 3
    page = web.get("/status", headers=ADMIN).get_data(as_text=True)
    assert "Workers alive: 1" in page and "render-2:102" in page
    samples = metrics(web)
    assert samples["termshift_broker_up"][()] == 1 and samples["termshift_workers"][()] == 1
    assert samples["termshift_queue_depth"][()] == 3 and samples["termshift_jobs_in_flight"][()] == 0
    assert samples["termshift_job_redeliveries"][()] == 1

    # The broker away: said, not a failed page.
    down = load_settings(environ={}, overrides={"": {"data": str(tmp_path / "data")},
                                                 "distributed": {"broker": "redis://127.0.0.1:1/0"}})
    web = make_app(down).test_client()
    assert "error" in web.get("/status.json", headers=ADMIN).json["fleet"]
    assert metrics(web)["termshift_broker_up"][()] == 0
    broker.close()
    client.close()
