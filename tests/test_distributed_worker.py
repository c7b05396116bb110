"""Distributed mode's worker side against real components: Redis, loopback HTTP servers, the
real fetcher (a Scrapy crawl in its own process) and real `termshift worker` processes.

A job is run and its pages extracted as a local run would; results are stored once per
job whatever the deliveries; a worker SIGKILLed in the middle of a job leaves the job
unacknowledged, another worker gets it again, and its result is stored exactly once.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

pytest.importorskip("dramatiq")
pytest.importorskip("redis")

import redis  # noqa: E402
from click.testing import CliRunner  # noqa: E402

from termshift.cli import main  # noqa: E402
from termshift.config import load_settings  # noqa: E402
from termshift.declarations import load_collection  # noqa: E402
from termshift.distributed.broker import declare_job_actor, make_broker, queue_depth, send_job  # noqa: E402
from termshift.distributed.jobs import JobResult, TermsJob  # noqa: E402
from termshift.distributed.planning import fleet_fetcher, plan_job  # noqa: E402
from termshift.distributed.results import IGNORED, NEW, REPLACED, ResultStore, decode, encode  # noqa: E402
from termshift.distributed.worker import WorkerOptions, fleet_workers, run_job  # noqa: E402
from tests.support.servers import FaultServer  # noqa: E402
from tests.support.waiting import wait_until
from tests.test_track import declare  # noqa: E402

pytestmark = pytest.mark.redis

REPO_ROOT = Path(__file__).resolve().parent.parent


def settings(**fetcher: Any):
    return load_settings(environ={}, overrides={
        "fetcher": {"timeout": 10.0, "host_delay": 0.0, "retries": 0, "per_host": 2, **fetcher}})


def jobs_for(declarations: Path, run_id: str = "1", validators: dict | None = None) -> dict[str, TermsJob]:
    collection = load_collection(declarations)
    fetcher = fleet_fetcher(settings())
    return {terms.type if len(collection.services) == 1 else service.id:
            plan_job(run_id, service, terms, declarations, fetcher, (validators or {}).get(service.id))
            for service in collection.services.values() for terms in service.terms.values()}


@pytest.fixture
def server():
    with FaultServer(hosts=2) as running:
        yield running


def test_a_job_is_fetched_and_extracted_as_a_local_run_would(server, tmp_path):
    declarations = tmp_path / "declarations"
    declare(declarations, "Acme", {"Privacy Policy": {"combine": [
        {"fetch": server.url("/page/Privacy"), "select": "main"},
        {"fetch": server.url("/pdf", 1)},
        {"fetch": server.url("/etag"), "select": "main"},
    ]}})
    [job] = jobs_for(declarations, validators={"Acme": {"etag": ('"v1"', None)}}).values()
    assert [document.etag for document in job.documents] == [None, None, '"v1"']
    # Through JSON, as it travels.
    job = TermsJob.from_json(json.loads(json.dumps(job.to_json())))

    result = run_job(job, WorkerOptions(declarations=declarations), worker="test", attempt=1)
    result = decode(encode(result))  # as stored in Redis

    assert result.error is None and [document.position for document in result.documents] == [0, 1, 2]
    page, pdf, not_modified = result.documents
    assert page.fetch_result().ok and "These terms govern your use" in page.markdown
    assert page.markdown.startswith("Privacy")
    assert pdf.fetch_result().content == server.pdf  # bytes survive JSON (base64)
    assert "Terms of the PDF" in pdf.markdown
    assert not_modified.fetch_result().not_modified and not_modified.markdown is None
    assert not_modified.fetch_result(key="mine").key == "mine"


def test_a_worker_whose_declaration_differs_refuses_the_job_without_fetching(server, tmp_path):
    coordinator, worker = tmp_path / "coordinator", tmp_path / "worker"
    declare(coordinator, "Acme", {"Terms of Service": {"fetch": server.url("/page/Terms"), "select": "main"}})
    declare(worker, "Acme", {"Terms of Service": {"fetch": server.url("/page/Terms"), "select": "body"}})
    [job] = jobs_for(coordinator).values()
    result = run_job(job, WorkerOptions(declarations=worker))
    assert result.error_kind == "configuration" and "differs from the coordinator's" in result.error
    assert result.documents == [] and server.requests == []
    unknown = run_job(TermsJob(**{**job.to_json(), "service_id": "Nobody", "documents": []}),
                      WorkerOptions(declarations=worker))
    assert "cannot load service 'Nobody'" in unknown.error


def test_results_are_stored_once_per_job_and_a_late_duplicate_is_ignored(redis_url):
    store = ResultStore.from_url(redis_url)
    first = JobResult("7", "Acme/Terms", "Acme", "Terms", worker="a:1")
    assert store.begin_attempt("7", "Acme/Terms", "a:1") == 1
    assert store.put(first) == NEW
    assert store.begin_attempt("7", "Acme/Terms", "b:2") == 2  # delivered again
    assert store.put(JobResult("7", "Acme/Terms", "Acme", "Terms", worker="b:2", attempt=2)) == REPLACED
    assert store.arrived("7") == ["Acme/Terms"]  # announced once
    assert store.get("7", "Acme/Terms").worker == "b:2"  # the latest overwrote the first
    store.mark_recorded("7", "Acme/Terms")
    assert store.put(first) == IGNORED and store.get("7", "Acme/Terms") is None
    assert store.arrived("7") == ["Acme/Terms"]
    assert store.stats("7") == {NEW: 1, REPLACED: 1, IGNORED: 1, "deliveries": 2, "redeliveries": 1}
    assert store.claims("7") == {"Acme/Terms": "b:2"}
    assert store.arrived("8") == [] and store.get("8", "Acme/Terms") is None


def start_worker(redis_url: str, declarations: Path, log: Path, *extra: str) -> subprocess.Popen[str]:
    """A `termshift worker` process; its log goes to `log` (a pipe nobody reads would block it)."""
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(REPO_ROOT), os.environ.get("PYTHONPATH")])),
           "TERMSHIFT_LOGGING_LEVEL": "INFO"}
    with open(log, "w") as stderr:
        return subprocess.Popen(
            [sys.executable, "-m", "termshift.cli", "worker", "--broker", redis_url, "--declarations",
             str(declarations), "--heartbeat-timeout", "1.5", "--lease", "1", *extra],
            stdout=subprocess.DEVNULL, stderr=stderr, text=True, env=env, cwd=REPO_ROOT)


def test_a_killed_workers_job_is_delivered_again_and_its_result_stored_exactly_once(redis_url, server, tmp_path):
    declarations = tmp_path / "declarations"
    # The slow page is on a host of its own: the killed worker's fetch of it keeps its slot a while.
    declare(declarations, "Slow", {"Terms of Service": {"fetch": server.url("/page/Slow?delay=2.5", 1),
                                                         "select": "main"}})
    for name in ("Alpha", "Beta"):
        declare(declarations, name, {"Terms of Service": {"fetch": server.url(f"/page/{name}"), "select": "main"}})
    jobs = jobs_for(declarations, run_id="42")
    client = redis.Redis.from_url(redis_url)
    store = ResultStore(client)
    logs = [tmp_path / f"worker{number}.log" for number in range(2)]
    workers = [start_worker(redis_url, declarations, log) for log in logs]
    try:
        wait_until(lambda: len(fleet_workers(client, 1.5)) == 2, 30, "both workers to start")
        broker = make_broker(redis_url)
        actor = declare_job_actor(broker)
        for name in ("Slow", "Alpha", "Beta"):
            send_job(actor, jobs[name])

        slow = jobs["Slow"].job_id
        holder = wait_until(lambda: store.claims("42").get(slow), 30, "a worker to take the slow job")
        wait_until(lambda: server.hits("/page/Slow?delay=2.5") == 1, 30, "the slow page to be asked for")
        victim = next(worker for worker in workers if holder.endswith(f":{worker.pid}"))
        victim.send_signal(signal.SIGKILL)
        victim.wait()
        killed = time.monotonic()
        assert queue_depth(broker)["in_flight"] >= 1  # the dead worker's job is not acknowledged

        survivor = next(worker for worker in workers if worker is not victim)
        wait_until(lambda: store.attempts("42").get(slow) == 2, 30, "the slow job to be delivered again")
        redelivered_after = time.monotonic() - killed
        wait_until(lambda: len(store.arrived("42")) == 3, 30, "every result")
        time.sleep(0.5)  # anything late would show now

        arrived = store.arrived("42")
        assert sorted(arrived) == sorted(job.job_id for job in jobs.values())  # each job once
        assert store.attempts("42") == {job.job_id: (2 if job.job_id == slow else 1) for job in jobs.values()}
        assert store.stats("42")[NEW] == 3 and store.stats("42")[REPLACED] == 0
        result = store.get("42", slow)
        assert result.attempt == 2 and result.worker.endswith(f":{survivor.pid}")
        assert "These terms govern your use" in result.documents[0].markdown
        assert server.hits("/page/Slow?delay=2.5") == 2
        assert queue_depth(broker) == {"waiting": 0, "in_flight": 0}  # every message acknowledged
        # Heartbeat time-out 1.5 s, maintenance every 0.25 s: the job comes back within ~2 s of the kill.
        assert redelivered_after < 10, redelivered_after
        print(f"redelivered {redelivered_after:.2f} s after SIGKILL")

        survivor.send_signal(signal.SIGTERM)  # a clean stop
        assert survivor.wait(30) == 0, logs[workers.index(survivor)].read_text()
        # The survivor left the fleet; the victim, which could not, is seen as dead.
        assert [(worker["name"], worker["alive"]) for worker in fleet_workers(client, 1.5)] == [(holder, False)]
        broker.close()
    finally:
        for worker in workers:
            if worker.poll() is None:
                worker.kill()
            worker.wait()
        client.close()


def test_the_worker_command_says_when_the_broker_cannot_be_reached(tmp_path):
    outcome = CliRunner().invoke(main, ["worker", "--broker", "redis://user:secret@127.0.0.1:1/0",
                                        "--declarations", str(tmp_path)])
    assert outcome.exit_code == 1
    assert "the broker at redis://127.0.0.1:1/0 cannot be used" in outcome.output and "secret" not in outcome.output
