"""The worker side of distributed mode: run jobs, store their results, acknowledge.

`run_job(job, ...)` is one job: the worker's own declarations give the terms (their
fingerprint must be the coordinator's), the existing fetcher fetches its documents
(`trackers.fetcher.iter_fetch`: a Scrapy crawl in a child process, the browser when
needed) with the fleet-wide Redis limiter in place of the in-process one, and
`trackers.extract` turns each page fetched into Markdown. Failures of a document
(fetch or extraction) are part of the result, as in a local run.

`JobRunner` is the actor's body: count the delivery, run the job, store the result
(`results.ResultStore`). Dramatiq acknowledges the message when the actor returns, so
only a stored result is acknowledged; a worker killed before that leaves the message
unacknowledged, and it is delivered again (see `broker`). The one exception the actor
lets out is a result that could not be stored (Redis unreachable): Dramatiq retries.

`serve(url, ...)` runs a Dramatiq worker in this process (threads consuming the
queue) with its heartbeat thread, until SIGTERM or SIGINT: `termshift worker`.
"""

from __future__ import annotations

import logging
import os
import signal
import socket
import threading
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from termshift.config import FetcherSettings
from termshift.distributed.jobs import DocumentResult, JobResult, TermsJob, fetcher_from_json
from termshift.distributed.limiter import DEFAULT_LEASE, host_limiter_spec, redact_url
from termshift.distributed.results import ResultStore
from termshift.errors import ErrorKind, ExtractError, TermshiftError

__all__ = ["WORKERS_KEY", "Heartbeat", "JobRunner", "WorkerOptions", "fleet_workers", "run_job", "serve", "worker_name"]

log = logging.getLogger("termshift.worker")

# Hash: worker name -> "<last sign of life (Unix time)> <jobs done>", written by each worker's heartbeat.
WORKERS_KEY = "termshift:workers"


def worker_name() -> str:
    return f"{socket.gethostname()}:{os.getpid()}"


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


@dataclass
class WorkerOptions:
    """What a worker brings of its own: its declarations, its machine's fetcher settings."""

    declarations: Path
    fetcher: FetcherSettings = field(default_factory=FetcherSettings)  # the worker's own (browser settings used)
    limiter_url: str | None = None  # Redis of the fleet-wide limiter (None: in-process limits only)
    lease: float = DEFAULT_LEASE


class _JobError(TermshiftError):
    kind = ErrorKind.CONFIGURATION


class _Declarations:
    """The worker's declarations, each service loaded again only when one of its files changed."""

    def __init__(self, directory: Path) -> None:
        self.directory = Path(directory)
        self._cache: dict[str, tuple[tuple[Any, ...], Any]] = {}
        self._lock = threading.Lock()

    def _signature(self, service_id: str) -> tuple[Any, ...]:
        from termshift.declarations import ServiceFiles

        files = ServiceFiles(self.directory, service_id)
        paths = (files.declaration, files.history, files.filters, files.javascript_filters,
                 files.javascript_filters_history)
        return tuple((stat.st_mtime_ns, stat.st_size) if (stat := _stat(path)) else None for path in paths)

    def service(self, service_id: str) -> Any:
        from termshift.declarations import load_collection

        signature = self._signature(service_id)
        with self._lock:
            cached = self._cache.get(service_id)
            if cached is not None and cached[0] == signature:
                return cached[1]
        collection = load_collection(self.directory, service_ids=[service_id])
        service = collection.services.get(service_id)
        if service is None:
            reasons = "; ".join(str(error) for error in collection.errors) or "not declared"
            raise _JobError(f"The worker cannot load service '{service_id}' from {self.directory}: {reasons}")
        with self._lock:
            self._cache[service_id] = (signature, service)
        return service


def _stat(path: Path) -> os.stat_result | None:
    try:
        return path.stat()
    except OSError:
        return None


def _terms_for(job: TermsJob, declarations: _Declarations) -> tuple[Any, Any]:
    from termshift.trackers.run import terms_fingerprint

    service = declarations.service(job.service_id)
    terms = service.terms.get(job.terms_type)
    if terms is None:
        raise _JobError(f"The worker's declaration of '{job.service_id}' has no terms '{job.terms_type}'")
    if terms_fingerprint(service, terms, declarations.directory) != job.fingerprint:
        raise _JobError(
            f"The worker's declaration of '{job.service_id}' / '{job.terms_type}' (or its filters, or the engine "
            f"version) differs from the coordinator's: update the worker's declarations in {declarations.directory}")
    if len(terms.documents) != len(job.documents) or any(
            terms.documents[document.position].location != document.location for document in job.documents):
        raise _JobError(f"The documents of '{job.service_id}' / '{job.terms_type}' differ from the coordinator's")
    return service, terms


def run_job(job: TermsJob, options: WorkerOptions, *, declarations: _Declarations | None = None,
            worker: str = "", attempt: int = 1) -> JobResult:
    """Fetch and extract the documents of one job (see the module docstring). Never raises for a
    document's failure, nor for a job the worker cannot run (its `error`)."""
    from termshift.trackers.extract import extract
    from termshift.trackers.fetcher import iter_fetch

    result = JobResult(job.run_id, job.job_id, job.service_id, job.terms_type, worker=worker or worker_name(),
                       attempt=attempt, started_at=_now())
    try:
        service, terms = _terms_for(job, declarations or _Declarations(options.declarations))
    except TermshiftError as error:
        result.error, result.error_kind, result.finished_at = str(error), str(error.kind), _now()
        return result
    fetcher = fetcher_from_json(job.fetcher, options.fetcher)
    limiter = host_limiter_spec(options.limiter_url, lease=options.lease) if options.limiter_url else None
    fetched = {fetch.key: fetch for fetch in iter_fetch([document.fetch_request() for document in job.documents],
                                                        fetcher, host_limiter=limiter)}
    for document in job.documents:
        fetch = fetched[document.position]  # iter_fetch gives every request exactly one result
        markdown = extract_error = None
        if fetch.ok and not fetch.not_modified and fetch.content not in (None, "", b""):
            try:
                markdown = extract(fetch.content, fetch.mime_type or "text/html", terms.documents[document.position],
                                   service.filters)
            except (TermshiftError, ValueError) as error:  # as a local run: the extraction step failed
                extract_error = str(error) if isinstance(error, ExtractError) else str(ExtractError(str(error)))
        result.documents.append(DocumentResult.from_fetch(document.position, fetch, markdown, extract_error))
    result.finished_at = _now()
    return result


class JobRunner:
    """The job actor's body, one per worker process (its threads share it)."""

    def __init__(self, store: ResultStore, options: WorkerOptions, name: str | None = None) -> None:
        self.store = store
        self.options = options
        self.name = name or worker_name()
        self.declarations = _Declarations(options.declarations)
        self.jobs_done = 0

    def __call__(self, job_json: dict[str, Any]) -> None:
        job = TermsJob.from_json(job_json)
        attempt = self.store.begin_attempt(job.run_id, job.job_id, self.name)
        if attempt > 1:
            log.info("run %s: %s delivered again (delivery %d)", job.run_id, job.job_id, attempt)
        started = time.monotonic()
        try:
            result = run_job(job, self.options, declarations=self.declarations, worker=self.name, attempt=attempt)
        except Exception as error:  # noqa: BLE001 - a bug must not lose the job: it becomes its result
            log.exception("run %s: %s failed", job.run_id, job.job_id)
            result = JobResult(job.run_id, job.job_id, job.service_id, job.terms_type,
                               error=f"The worker failed: {type(error).__name__}: {error}",
                               error_kind=str(ErrorKind.TRANSIENT), worker=self.name, attempt=attempt,
                               started_at=_now(), finished_at=_now())
        outcome = self.store.put(result)  # raises when Redis is unreachable: not acknowledged, retried
        self.jobs_done += 1
        log.info("run %s: %s done in %.1f s (%s)", job.run_id, job.job_id, time.monotonic() - started, outcome)


class Heartbeat(threading.Thread):
    """Keeps the worker alive in the broker's eyes (and runs its maintenance), every `interval` seconds.

    Also notes the worker in `<namespace>:workers` (name → last sign of life, jobs done),
    for /status.
    """

    def __init__(self, broker: Any, runner: JobRunner | None = None, interval: float | None = None) -> None:
        super().__init__(name="termshift worker heartbeat", daemon=True)
        self.broker = broker
        self.runner = runner
        self.interval = broker.maintenance_interval if interval is None else interval
        self.stopped = threading.Event()

    def run(self) -> None:
        while not self.stopped.is_set():
            try:
                self.broker.heartbeat()
                if self.runner is not None:
                    self.broker.client.hset(WORKERS_KEY, self.runner.name,
                                            f"{time.time():.3f} {self.runner.jobs_done}")
            except Exception as error:  # noqa: BLE001 - Redis away: say so, keep trying
                log.warning("heartbeat to the broker failed: %s", error)
            self.stopped.wait(self.interval)

    def stop(self) -> None:
        self.stopped.set()


def fleet_workers(client: Any, heartbeat_timeout: float, *, forget_after: float = 86400.0) -> list[dict[str, Any]]:
    """The workers known to the broker (for /status): name, last sign of life, jobs done, and whether it
    is alive (heard from within `heartbeat_timeout`). Workers silent for `forget_after` seconds are dropped
    (a SIGKILLed worker cannot remove itself)."""
    now = time.time()
    workers = []
    for name, value in sorted(client.hgetall(WORKERS_KEY).items()):
        seen, _, done = value.decode().partition(" ")
        silent = now - float(seen)
        if silent > forget_after:
            client.hdel(WORKERS_KEY, name)
            continue
        workers.append({"name": name.decode(), "last_seen": float(seen), "jobs_done": int(done or 0),
                        "alive": silent <= heartbeat_timeout})
    return workers


def serve(url: str, options: WorkerOptions, *, threads: int = 1, queue: str | None = None,
          heartbeat_timeout: float | None = None, stop_event: threading.Event | None = None) -> None:
    """Run jobs from the broker at `url` until `stop_event` is set (or SIGTERM/SIGINT, from the main thread).

    A first signal stops taking jobs and waits for those in progress; a second one exits at once
    (their messages are delivered again after the heartbeat time-out).
    """
    import dramatiq

    from termshift.distributed.broker import (
        DEFAULT_HEARTBEAT_TIMEOUT,
        DEFAULT_QUEUE,
        declare_job_actor,
        make_broker,
    )

    broker = make_broker(url, heartbeat_timeout=heartbeat_timeout or DEFAULT_HEARTBEAT_TIMEOUT)
    broker.client.ping()  # a broker that cannot be reached at start is an error (later outages are waited out)
    store = ResultStore(broker.client)
    runner = JobRunner(store, options)
    declare_job_actor(broker, runner, queue=queue or DEFAULT_QUEUE)
    stop_event = stop_event or threading.Event()
    previous = {}
    if threading.current_thread() is threading.main_thread():
        def on_signal(signum: int, _frame: Any) -> None:
            if stop_event.is_set():
                log.warning("stopping at once: the jobs in progress will be delivered again")
                os._exit(1)
            log.info("%s: finishing the jobs in progress, then stopping (again to stop at once)",
                     signal.Signals(signum).name)
            stop_event.set()

        previous = {signum: signal.signal(signum, on_signal) for signum in (signal.SIGTERM, signal.SIGINT)}
    worker = dramatiq.Worker(broker, worker_threads=threads, worker_timeout=1000)
    worker.queue_prefetch = threads  # one job per thread: no job waits behind a long one on a busy worker
    broker.emit_after("process_boot")  # starts the time-limit watcher (Dramatiq's CLI does this)
    heartbeat = Heartbeat(broker, runner)
    heartbeat.start()
    worker.start()
    log.info("worker %s: %d thread(s) on queue %s at %s", runner.name, threads, queue or DEFAULT_QUEUE,
             redact_url(url))
    try:
        while not stop_event.wait(0.5):
            pass
    finally:
        worker.stop(timeout=int(3600 * 1000))
        heartbeat.stop()
        heartbeat.join(5)
        broker.client.hdel(WORKERS_KEY, runner.name)
        broker.close()
        for signum, handler in previous.items():
            signal.signal(signum, handler)
        log.info("worker %s stopped after %d job(s)", runner.name, runner.jobs_done)
