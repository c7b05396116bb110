"""Termshift as a service: tracking on a schedule, webhook deliveries, dataset exports.

`termshift schedule` (or `python scheduler.py`) runs an APScheduler 3 scheduler with
three jobs, persisted in `<data>/scheduler.sqlite` (SQLAlchemyJobStore) under stable
ids, so a restart neither loses nor duplicates them:

- `tracking` on `schedule.tracking` (OTA's `30 */12 * * *`): one tracking run, under
  the data folder's run lock (termshift.locking) so that two runs never overlap, even
  from two processes: a run that finds the lock taken is skipped with a log line. The
  run logs one line per document (termshift.trackers.run), and its listeners
  (termshift.listeners, attached here as `termshift track` does) queue webhook events
  and refresh the viewer's index; after it, both repositories are pushed in the background
  (termshift.publish) and the delivery job is woken up at once.
- `deliveries` every `schedule.deliveries` seconds: one pass of webhook deliveries.
- `dataset` on `schedule.dataset` (weekly): a ZIP export into `dataset.directory`.

A run missed while the machine was off runs once at start-up (coalesce), if it is no
later than `schedule.misfire_grace`. Each execution leaves a row in the `run_history`
table (same file; termshift.job_history owns it), read by the status page and /metrics
(termshift.monitoring).

SIGTERM or SIGINT: the running tracking run is told to stop (its `stop_event`); it
finishes the document it is recording, leaving both repositories consistent; then the
scheduler stops without starting anything else. A second signal exits at once (the
archive recovers from that too, on next open).
"""

from __future__ import annotations

import atexit
import contextlib
import logging
import os
import signal
import threading
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import filelock
from apscheduler.events import EVENT_JOB_MAX_INSTANCES, EVENT_JOB_MISSED, JobEvent
from apscheduler.executors.pool import ThreadPoolExecutor
from apscheduler.jobstores.base import JobLookupError
from apscheduler.jobstores.sqlalchemy import SQLAlchemyJobStore
from apscheduler.schedulers.background import BackgroundScheduler
from apscheduler.triggers.base import BaseTrigger
from apscheduler.triggers.interval import IntervalTrigger

from termshift.config import Settings
from termshift.job_history import JOBS_TABLE, RunHistory, state_path
from termshift.locking import RunLock, RunLockBusy
from termshift.publish import Publisher
from termshift.schedules import parse_schedule, parse_timezone

log = logging.getLogger(__name__)

JOB_TRACKING = "tracking"
JOB_DELIVERIES = "deliveries"
JOB_DATASET = "dataset"
# Held while a scheduler creates its job table and registers its jobs (see start).
START_LOCK_FILE = "scheduler.start.lock"

TrackingFunction = Callable[..., Any]


# --- what a tracking run returned -----------------------------------------------------------

def summary_counts(summary: Any) -> dict[str, Any]:
    """The counts of a RunSummary (or of a dict with "counts"), as plain JSON-able values."""
    counts = summary.get("counts") if isinstance(summary, dict) else getattr(summary, "counts", None)
    if hasattr(counts, "__dataclass_fields__"):
        counts = {name: getattr(counts, name) for name in counts.__dataclass_fields__}
    return dict(counts) if isinstance(counts, dict) else {}


def _field(result: Any, *names: str) -> Any:
    """The first of `names` that `result` (an object or a dict) has and is not None."""
    for name in names:
        value = result.get(name) if isinstance(result, dict) else getattr(result, name, None)
        if value is not None:
            return value
    return None


def summary_documents(summary: Any) -> list[dict[str, Any]]:
    """Per-document results of a RunSummary as dicts: service_id, terms_type, outcome,
    error_kind, error, seconds. Tolerates results as objects or dicts, and missing fields."""
    results = _field(summary, "documents", "results", "terms")
    documents = []
    for result in results or []:
        kind = _field(result, "error_kind", "kind")
        error = _field(result, "error")
        outcome = _field(result, "outcome", "status") or ("failed" if error or kind else "ok")
        seconds = _field(result, "seconds", "duration", "fetch_seconds")
        if isinstance(seconds, timedelta):
            seconds = seconds.total_seconds()
        documents.append({
            "service_id": str(_field(result, "service_id", "service") or "?"),
            "terms_type": str(_field(result, "terms_type", "type") or "?"),
            "outcome": str(getattr(outcome, "value", outcome)),
            "error_kind": str(getattr(kind, "value", kind)) if kind else None,
            "error": str(error) if error else None,
            "seconds": float(seconds) if isinstance(seconds, int | float) else None,
        })
    return documents


def default_tracking() -> TrackingFunction:
    """`termshift.trackers.run.run_tracking` with the listeners `termshift track` attaches too
    (alerts, the viewer's index: termshift.listeners), imported when first needed (it pulls
    in Scrapy). With `distributed.broker` set, the run hands the documents to the workers and
    records their results: this process coordinates (termshift.distributed.coordinator)."""
    from termshift.listeners import run_listeners
    from termshift.trackers.run import run_tracking

    def tracking(settings: Settings, **options: Any) -> Any:
        if settings.distributed.broker:
            from termshift.distributed.coordinator import Coordinator

            options.setdefault("source", Coordinator(settings))
        return run_tracking(settings, listeners=run_listeners(settings), **options)

    return tracking


# --- the service ----------------------------------------------------------------------------

# Jobs in the persistent store name a module-level function and plain arguments (they are
# pickled); the function finds the live service of the data folder here.
_SERVICES: dict[str, SchedulerService] = {}


def _dispatch(service_key: str, job_id: str) -> None:
    service = _SERVICES.get(service_key)
    if service is None:
        log.warning("job %s: no scheduler running for %s in this process", job_id, service_key)
        return
    service.run_job(job_id)


class SchedulerService:
    """The scheduler of one data folder and the jobs it runs.

    `tracking` is the tracking function (default: termshift.trackers.run.run_tracking
    with the run's listeners, see `default_tracking`), called as
    `tracking(settings, stop_event=event)`; it owns what belongs to the run (refreshing
    the viewer's index, the log line per document), so the scheduler does neither twice. `deliver` and `export_dataset` take the settings; None picks the real ones.
    """

    def __init__(
        self,
        settings: Settings,
        *,
        tracking: TrackingFunction | None = None,
        deliver: Callable[[Settings], Any] | None = None,
        export_dataset: Callable[[Settings], Any] | None = None,
    ) -> None:
        self.settings = settings
        self.data_dir = Path(settings.data)
        self.data_dir.mkdir(parents=True, exist_ok=True)
        self.key = str(self.data_dir.resolve())
        self.stop_event = threading.Event()  # set: the running tracking run stops after its document
        self.run_lock = RunLock(self.data_dir)
        self.history = RunHistory(self.data_dir)
        self.publisher = Publisher.from_settings(settings, stop_event=self.stop_event)
        self._tracking = tracking
        self.last_skipped: list[str] = []  # services the last tracking run left out (their files do not load)
        self._deliver = deliver or _deliver_due
        self._export_dataset = export_dataset or _export_dataset
        self.scheduler: BackgroundScheduler | None = None

    # --- lifecycle --------------------------------------------------------------------------

    def start(self) -> None:
        """Start the scheduler thread with the three jobs (re)registered under stable ids."""
        if self.key in _SERVICES:
            raise RuntimeError(f"a scheduler already runs for {self.data_dir} in this process")
        schedule = self.settings.schedule
        timezone = parse_timezone(schedule.timezone)
        interrupted = self.history.mark_interrupted()
        if interrupted:
            log.warning("%d run(s) were interrupted by the end of their process", interrupted)
        self.history.prune()
        store = SQLAlchemyJobStore(
            url=f"sqlite:///{state_path(self.data_dir)}",
            tablename=JOBS_TABLE,
            engine_options={"connect_args": {"timeout": 60}},
        )
        self.scheduler = BackgroundScheduler(
            jobstores={"default": store},
            executors={"default": ThreadPoolExecutor(max_workers=4)},
            job_defaults={
                "coalesce": True,  # N missed runs → one run
                "max_instances": 1,
                "misfire_grace_time": max(1, int(schedule.misfire_grace)),
            },
            timezone=timezone,
        )
        self.scheduler.add_listener(self._on_missed, EVENT_JOB_MISSED | EVENT_JOB_MAX_INSTANCES)
        _SERVICES[self.key] = self
        # Two schedulers may share a data folder. APScheduler creates its job table with
        # a check-then-create and registers jobs with a lookup-then-insert, so two starting
        # at once could both create the table ("table apscheduler_jobs already exists") or
        # insert the same job: start-ups take turns on a file lock.
        # Paused while jobs are registered: nothing may fire before all are in place, and
        # get_job() reads the stored state of the previous process.
        try:
            with filelock.FileLock(str(self.data_dir / START_LOCK_FILE), timeout=120):
                self.scheduler.start(paused=True)
                self._register(JOB_TRACKING, parse_schedule(schedule.tracking, timezone))
                deliveries = schedule.deliveries
                self._register(JOB_DELIVERIES, IntervalTrigger(seconds=deliveries) if deliveries > 0 else None)
                self._register(JOB_DATASET, parse_schedule(schedule.dataset, timezone))
        except BaseException:
            self.shutdown()
            raise
        self.scheduler.resume()
        for job in self.scheduler.get_jobs():
            log.info("job %s: %s, next run %s", job.id, job.trigger, _iso(job.next_run_time))

    def _register(self, job_id: str, trigger: BaseTrigger | None) -> None:
        """Add or replace the job `job_id`, keeping its stored next run time when the
        trigger is unchanged: that is how a run missed while we were down is still due."""
        assert self.scheduler is not None
        existing = self.scheduler.get_job(job_id)
        if trigger is None:
            if existing is not None:
                self.scheduler.remove_job(job_id)
            log.info("job %s: disabled by configuration", job_id)
            return
        options: dict[str, Any] = {}
        if existing is not None and str(existing.trigger) == str(trigger) and existing.next_run_time:
            options["next_run_time"] = existing.next_run_time
        self.scheduler.add_job(
            "termshift.scheduler:_dispatch", trigger, args=[self.key, job_id], id=job_id, name=job_id,
            replace_existing=True, **options,
        )

    def shutdown(self, wait: bool = True) -> None:
        """Stop: the tracking run finishes its current document, nothing new starts.

        With `wait`, returns once the running jobs have returned.
        """
        self.stop_event.set()
        if self.scheduler is not None and self.scheduler.running:
            self.scheduler.shutdown(wait=wait)
        if self.publisher is not None:
            self.publisher.wait(timeout=10 if wait else 0)
        _SERVICES.pop(self.key, None)

    def next_run_times(self) -> dict[str, datetime | None]:
        if self.scheduler is None:
            return {}
        return {job.id: job.next_run_time for job in self.scheduler.get_jobs()}

    def _on_missed(self, event: JobEvent) -> None:
        if event.code == EVENT_JOB_MISSED:
            message = f"run due at {_iso(event.scheduled_run_time)} missed by more than schedule.misfire_grace"
            log.warning("job %s: %s", event.job_id, message)
            self.history.note(event.job_id, "missed", message)
        elif event.job_id == JOB_TRACKING:
            # Our own previous run is still going: same outcome as a busy lock.
            log.warning("tracking run skipped: the previous run in this process is still in progress")
            self.history.note(event.job_id, "skipped", "previous run still in progress (this process)")

    # --- jobs -----------------------------------------------------------------------------

    def run_job(self, job_id: str) -> str:
        jobs = {JOB_TRACKING: self.run_tracking, JOB_DELIVERIES: self.run_deliveries, JOB_DATASET: self.run_dataset}
        return jobs[job_id]()

    def run_tracking(self) -> str:
        """One tracking run under the run lock, then publishing and deliveries.
        Returns the status recorded: ok, failed, stopped or skipped."""
        if self.stop_event.is_set():
            return "stopped"
        try:
            self.run_lock.acquire(JOB_TRACKING)
        except RunLockBusy as busy:
            log.warning("tracking run skipped: %s", busy)
            self.history.note(JOB_TRACKING, "skipped", str(busy))
            return "skipped"
        try:
            status = self._track()
        finally:
            self.run_lock.release()
        if status == "ok":
            self._after_run()
        return status

    def _track(self) -> str:
        row = self.history.start(JOB_TRACKING)
        started = time.monotonic()
        log.info("tracking run started")
        try:
            tracking = self._tracking or default_tracking()
            summary = tracking(self.settings, stop_event=self.stop_event)
        except Exception as error:
            if getattr(error, "kind", None) == "configuration":
                # Bad declarations or settings: the message names file, field and reason; a
                # traceback would only bury it.
                log.error("tracking run cannot start: %s", error)
            else:
                log.exception("tracking run failed")
            self.history.finish(row, "failed", message=f"{type(error).__name__}: {error}")
            return "failed"
        status = "stopped" if self.stop_event.is_set() else "ok"
        counts, documents = summary_counts(summary), summary_documents(summary)
        # Kept for the status page and /metrics; the run logged its documents itself.
        skipped = [str(getattr(item, "service_id", item)) for item in getattr(summary, "skipped", None) or []]
        self.last_skipped = skipped
        message = f"services skipped, their declarations do not load: {', '.join(skipped)}" if skipped else ""
        self.history.finish(row, status, counts, message=message, documents=documents)
        log.info("tracking run %s in %.1f s: %s", status, time.monotonic() - started,
                 ", ".join(f"{key} {value}" for key, value in counts.items()) or "no counts",
                 extra={"event": "run", "run_id": row, "status": status, "counts": counts})
        return status

    def _after_run(self) -> None:
        if self.publisher is not None:
            self.publisher.publish_in_background()
        self.wake(JOB_DELIVERIES)

    def wake(self, job_id: str) -> None:
        """Run a job now (e.g. deliveries right after a run brought new versions)."""
        if self.scheduler is None or not self.scheduler.running:
            return
        with contextlib.suppress(JobLookupError):  # disabled by configuration
            self.scheduler.modify_job(job_id, next_run_time=datetime.now(UTC))

    def run_deliveries(self) -> str:
        """One delivery pass. Written to the history only when something was attempted,
        or on failure: a pass every 30 s would otherwise drown the runs."""
        try:
            report = self._deliver(self.settings)
        except Exception as error:
            log.exception("webhook delivery pass failed")
            self.history.note(JOB_DELIVERIES, "failed", f"{type(error).__name__}: {error}")
            return "failed"
        attempted = getattr(report, "attempted", 0)
        if attempted:
            counts = {name: getattr(report, name) for name in ("delivered", "retried", "failed") if hasattr(report, name)}
            row = self.history.start(JOB_DELIVERIES)
            self.history.finish(row, "ok", {"attempted": attempted, **counts})
        return "ok"

    def run_dataset(self) -> str:
        return self._timed(JOB_DATASET, lambda: self._export_dataset(self.settings))

    def _timed(self, job_id: str, action: Callable[[], Any]) -> str:
        """Run `action` with a history row (ok / failed with the error)."""
        row = self.history.start(job_id)
        try:
            result = action()
        except Exception as error:
            log.exception("%s failed", job_id)
            self.history.finish(row, "failed", message=f"{type(error).__name__}: {error}")
            return "failed"
        if isinstance(result, dict):
            self.history.finish(row, "ok", _flat_counts(result))
        else:
            self.history.finish(row, "ok", message=str(result or "")[:500])
        return "ok"


def _flat_counts(result: dict[str, Any]) -> dict[str, Any]:
    """`{"versions": {"new": 2, "head": "…"}}` → `{"versions_new": 2}`: the numbers worth showing."""
    flat: dict[str, Any] = {}
    for key, value in result.items():
        if isinstance(value, dict):
            flat.update({f"{key}_{name}": inner for name, inner in value.items()
                         if isinstance(inner, int | float) and not isinstance(inner, bool)})
        elif isinstance(value, int | float | str) and not isinstance(value, bool):
            flat[key] = value
    return flat


def _iso(moment: datetime | None) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ") if moment else "never"


# --- the real collaborators, imported when first used ---------------------------------------

def _deliver_due(settings: Settings) -> Any:
    from termshift.alerts.delivery import deliver_due

    return deliver_due(Path(settings.data), settings.webhooks)


def _export_dataset(settings: Settings) -> dict[str, Any]:
    from termshift.dataset import scheduled_export

    return scheduled_export(settings)


# --- entry points ---------------------------------------------------------------------------

def start_background_scheduler(settings: Settings, *, tracking: TrackingFunction | None = None) -> SchedulerService:
    """Start the scheduler in background threads (for `termshift serve --with-scheduler`).

    Returns the running service (`.scheduler` is the APScheduler instance). In the main
    thread, SIGTERM and SIGINT first tell a running tracking run to stop after its current
    document, then end the web server as Ctrl-C does; at exit the scheduler is shut down.
    (Setting the stop event in the handler matters: Python joins the job threads before
    it runs exit handlers, so a stop requested only at exit would wait for a whole run.)
    """
    service = SchedulerService(settings, tracking=tracking)
    service.start()
    atexit.register(service.shutdown)
    if threading.current_thread() is threading.main_thread():
        def stop_then_interrupt(signum: int, _frame: Any) -> None:
            log.info("%s received: stopping after the current document", signal.Signals(signum).name)
            service.stop_event.set()
            raise KeyboardInterrupt

        for number in (signal.SIGTERM, signal.SIGINT):
            signal.signal(number, stop_then_interrupt)
    return service


def run_service(settings: Settings, *, tracking: TrackingFunction | None = None) -> int:
    """Run the scheduler in the foreground until SIGTERM or SIGINT; the exit code."""
    stop_requested = threading.Event()

    def request_stop(signum: int, _frame: Any) -> None:
        if stop_requested.is_set():
            log.error("second %s: exiting now", signal.Signals(signum).name)
            os._exit(128 + signum)
        log.info("%s received: stopping after the current document", signal.Signals(signum).name)
        stop_requested.set()

    previous = {number: signal.signal(number, request_stop) for number in (signal.SIGTERM, signal.SIGINT)}
    service = SchedulerService(settings, tracking=tracking)
    try:
        service.start()
        log.info("scheduler started for %s (pid %d)", service.data_dir, os.getpid())
        while not stop_requested.wait(0.5):
            pass
        service.shutdown(wait=True)
        log.info("scheduler stopped")
    finally:
        for number, handler in previous.items():
            signal.signal(number, handler)
    return 0
