"""The coordinator of a distributed run: hand out one job per terms, record what comes back.

`Coordinator` is the `ResultSource` of `trackers.run.run_tracking` in distributed mode
(`termshift track --broker URL`, or the scheduler with `distributed.broker` set): the
run plans, records snapshots and versions, keeps runs.sqlite and announces versions
exactly as a local run does — this process is the only writer of the archive — and
only the fetching and extracting happen on the workers.

- **Planning and sending.** Each selected terms becomes a job (`planning.plan_job`,
  with the validators the run found usable), sent once per run: the ids of the jobs
  sent are kept in Redis, so a restarted coordinator sends only those it had not.
- **Recording in a deterministic order.** Results are taken in the run's planned order
  (sorted services, then terms), whatever order the workers finish in: job *i* is
  recorded when its result is in and every job before it is recorded. The archive's
  history does not depend on which worker was fast.
- **Exactly once.** After a job's versions and snapshots are committed, it is marked
  recorded in the results store (`ResultStore.mark_recorded`); a duplicate arriving
  later is ignored there. A coordinator killed between the commit and the mark
  records the job again on restart, and the archive does not record a snapshot or a
  version identical to the latest one: still once.
- **Resuming.** The run in progress is kept in Redis per data folder
  (`<namespace>:coordinator:<data folder hash>`). A coordinator started on the same
  data folder while it exists resumes that run: the jobs already recorded are left
  out, the results already stored are recorded, the jobs never sent are sent. It is
  deleted when every job is recorded; a run stopped by a signal is resumed by the next.
- **The broker away.** At start: `BrokerUnavailable` before anything is written. During
  the run: the coordinator retries for `outage` seconds, then raises
  `BrokerUnavailable`; the run is stored as failed, what was committed stays
  committed, and the next start resumes the run.
"""

from __future__ import annotations

import hashlib
import logging
import secrets
import threading
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from termshift.config import Settings
from termshift.distributed.jobs import JobResult, TermsJob
from termshift.distributed.limiter import redact_url
from termshift.distributed.planning import fleet_fetcher, plan_job
from termshift.distributed.results import ResultStore
from termshift.errors import ErrorKind, FetchError, TermshiftError

__all__ = ["BrokerUnavailable", "Coordinator", "current_run", "fleet_status"]

log = logging.getLogger("termshift.coordinator")

NAMESPACE = "termshift"
# Seconds the coordinator keeps trying while the broker does not answer, before the run fails.
DEFAULT_OUTAGE = 60.0


class BrokerUnavailable(TermshiftError):
    """The broker cannot be reached (or stopped answering for too long)."""

    kind = ErrorKind.CONFIGURATION


def _state_key(data_dir: Path, namespace: str = NAMESPACE) -> str:
    digest = hashlib.sha256(str(Path(data_dir).resolve()).encode()).hexdigest()[:16]
    return f"{namespace}:coordinator:{digest}"


def current_run(client: Any, data_dir: Path) -> dict[str, str]:
    """The distributed run in progress on this data folder (run, local_run, started_at), or {}."""
    return {key.decode(): value.decode() for key, value in client.hgetall(_state_key(data_dir)).items()}


class Coordinator:
    """A run's `ResultSource` over the broker at `url` (see the module docstring)."""

    def __init__(self, settings: Settings, url: str | None = None, *, queue: str | None = None,
                 heartbeat_timeout: float | None = None, poll: float = 0.1, outage: float = DEFAULT_OUTAGE,
                 client: Any = None) -> None:
        self.settings = settings
        self.url = url or settings.distributed.broker
        self.queue = queue or settings.distributed.queue
        self.heartbeat_timeout = heartbeat_timeout or settings.distributed.heartbeat_timeout
        self.poll = poll
        self.outage = outage
        self._client = client
        self.run_id = ""
        self.resumed = False
        self.state_key = _state_key(Path(settings.data))
        self._broker: Any = None
        self._actor: Any = None
        self.store: ResultStore | None = None

    # -- connecting ---------------------------------------------------------------------------

    def _connect(self) -> None:
        import redis

        from termshift.distributed.broker import declare_job_actor, make_broker

        try:
            self._broker = make_broker(self.url, heartbeat_timeout=self.heartbeat_timeout)
            self._broker.client.ping()
        except (redis.RedisError, ValueError, OSError) as error:
            raise BrokerUnavailable(f"the broker at {redact_url(self.url)} cannot be reached: {error}") from None
        self._client = self._client or self._broker.client
        self._actor = declare_job_actor(self._broker, queue=self.queue)
        self.store = ResultStore(self._client, namespace=NAMESPACE)

    def _retrying(self, what: str, call: Any, stop_event: threading.Event | None = None) -> Any:
        """`call()`, retried while the broker is away, for at most `outage` seconds."""
        import redis

        deadline = None
        while True:
            try:
                return call()
            except (redis.ConnectionError, redis.TimeoutError, OSError) as error:
                now = time.monotonic()
                deadline = deadline or now + self.outage
                if now >= deadline or (stop_event is not None and stop_event.is_set()):
                    raise BrokerUnavailable(f"the broker at {redact_url(self.url)} stopped answering ({what}): "
                                            f"{error}; the run can be resumed once it is back") from None
                log.warning("the broker does not answer (%s): %s; retrying", what, error)
                time.sleep(min(1.0, self.outage / 10))

    # -- ResultSource -------------------------------------------------------------------------

    def select(self, selected: list[tuple[Any, Any]]) -> list[tuple[Any, Any]]:
        """Connect; resume the run in progress on this data folder, leaving out its recorded jobs."""
        from termshift.distributed.jobs import job_id

        self._connect()
        assert self.store is not None
        state = current_run(self._client, Path(self.settings.data))
        if state.get("run"):
            self.run_id, self.resumed = state["run"], True
            recorded = self._client.smembers(self.store._key(self.run_id, "recorded"))
            done = {item.decode() for item in recorded}
            kept = [(service, terms) for service, terms in selected if job_id(service.id, terms.type) not in done]
            log.info("resuming distributed run %s: %d terms recorded before, %d to go", self.run_id,
                     len(selected) - len(kept), len(kept))
            return kept
        self.run_id = f"{datetime.now(UTC):%Y%m%dT%H%M%S}-{secrets.token_hex(3)}"
        self._client.hset(self.state_key, mapping={"run": self.run_id, "started_at": datetime.now(UTC).isoformat()})
        return selected

    def results(self, run_id: int, jobs: list[Any], requests: list[Any],
                stop_event: threading.Event | None) -> Iterator[tuple[Any, str | None]]:
        """Send the jobs, then yield their documents' results in planned order, each job once recorded."""
        assert self.store is not None
        self._take_over_local_run(run_id)
        planned = self._plan(jobs)
        self._send(planned, stop_event)
        store = self.store
        arrived: set[str] = set()
        for index, job in enumerate(planned):
            name = job.job_id
            result = None
            while result is None:
                if stop_event is not None and stop_event.is_set():
                    return
                if name not in arrived:
                    cursor = len(arrived)
                    arrived.update(self._retrying("reading results", lambda c=cursor: store.arrived(self.run_id, c)))
                    if name not in arrived:
                        time.sleep(self.poll)
                        continue
                result = self._retrying("reading a result", lambda n=name: store.get(self.run_id, n))
                if result is None:  # announced, then recorded by a coordinator before us and dropped
                    break
            if result is not None:
                yield from self._documents(index, job, result)
            # The run recorded the terms while we were suspended at its last document: mark it.
            self._retrying("marking a job recorded", lambda n=name: store.mark_recorded(self.run_id, n))
        self._client.delete(self.state_key)
        self._client.set(f"{self.state_key}:last", self.run_id, ex=7 * 86400)
        log.info("distributed run %s recorded: %d jobs", self.run_id, len(planned))

    # -- steps ---------------------------------------------------------------------------------

    def _take_over_local_run(self, run_id: int) -> None:
        """Note this process's runs.sqlite run; one left running by a killed coordinator is interrupted."""
        previous = self._client.hget(self.state_key, "local_run")
        self._client.hset(self.state_key, "local_run", str(run_id))
        if previous is None or int(previous) == run_id:
            return
        from termshift.trackers.run_store import RUNS_FILE, RunStore

        with RunStore(Path(self.settings.data) / RUNS_FILE) as runs:
            if any(record.id == int(previous) and record.status == "running" for record in runs.latest_runs(100)):
                runs.finish_run(int(previous), "interrupted", datetime.now(UTC), {}, {},
                                error=f"coordinator stopped; resumed by run {run_id}")

    def _plan(self, jobs: list[Any]) -> list[TermsJob]:
        fetcher = fleet_fetcher(self.settings)
        planned = []
        for job in jobs:
            validators = {document.state_key: (document.validators.etag, document.validators.last_modified)
                          for document in job.documents if document.validators is not None}
            planned.append(plan_job(self.run_id, job.service, job.terms, Path(self.settings.declarations),
                                    fetcher, validators))
        return planned

    def _send(self, planned: list[TermsJob], stop_event: threading.Event | None) -> None:
        from termshift.distributed.broker import send_job

        sent_key = self.store._key(self.run_id, "sent") if self.store else ""
        already = {item.decode() for item in self._retrying("reading the jobs sent",
                                                            lambda: self._client.smembers(sent_key))}
        count = 0
        for job in planned:
            if job.job_id in already:
                continue
            if stop_event is not None and stop_event.is_set():
                return
            self._retrying("sending a job", lambda job=job: send_job(self._actor, job))
            self._client.sadd(sent_key, job.job_id)
            count += 1
        self._client.expire(sent_key, 7 * 86400)
        log.info("distributed run %s: %d jobs sent (%d sent before) to queue %s", self.run_id, count,
                 len(already), self.queue)

    def _documents(self, index: int, job: TermsJob, result: JobResult) -> Iterator[tuple[Any, str | None]]:
        from termshift.trackers.fetcher import FetchResult

        if result.error is not None:
            kind = ErrorKind(result.error_kind) if result.error_kind else ErrorKind.TRANSIENT
            for document in job.documents:
                error = FetchError(f"The worker {result.worker} could not run the job: {result.error}", kind,
                                   location=document.location)
                yield FetchResult(location=document.location, key=(index, document.position), error=error,
                                  attempts=0), None
            return
        by_position = {document.position: document for document in result.documents}
        for document in job.documents:
            done = by_position.get(document.position)
            if done is None:
                error = FetchError(f"The worker {result.worker} returned no result for '{document.location}'",
                                   ErrorKind.TRANSIENT, location=document.location)
                yield FetchResult(location=document.location, key=(index, document.position), error=error), None
                continue
            yield done.fetch_result((index, document.position)), done.markdown


def fleet_status(url: str, data_dir: Path | None = None, *, queue: str = "termshift",
                 heartbeat_timeout: float = 30.0, client: Any = None) -> dict[str, Any]:
    """What /status and /metrics show of the fleet: workers, queue depth, jobs in flight, redeliveries.

    Never raises: a broker that cannot be read gives `{"error": ...}`.
    """
    try:
        import redis

        from termshift.distributed.broker import NAMESPACE as BROKER_NAMESPACE
        from termshift.distributed.worker import fleet_workers

        client = client or redis.Redis.from_url(url, socket_timeout=2, socket_connect_timeout=2)
        workers = fleet_workers(client, heartbeat_timeout)
        waiting = int(client.llen(f"{BROKER_NAMESPACE}:{queue}"))
        in_flight = 0
        for key in client.scan_iter(match=f"{BROKER_NAMESPACE}:__acks__.*.{queue}", count=500):
            in_flight += int(client.scard(key))
        status: dict[str, Any] = {"broker": redact_url(url), "queue": queue, "workers": workers,
                                  "workers_alive": sum(1 for worker in workers if worker["alive"]),
                                  "queue_waiting": waiting, "jobs_in_flight": in_flight}
        if data_dir is not None:
            key = _state_key(Path(data_dir))
            run = client.hget(key, "run")
            run_id = run.decode() if run else (client.get(f"{key}:last") or b"").decode()
            status["run"] = run_id or None
            status["run_in_progress"] = run is not None
            if run_id:
                status["run_stats"] = ResultStore(client, namespace=NAMESPACE).stats(run_id)
        return status
    except Exception as error:  # noqa: BLE001 - status pages report, they do not fail
        return {"broker": redact_url(url), "error": f"{type(error).__name__}: {error}"}
