"""What the service is doing and how it went: status data, health probe, Prometheus metrics.

Everything here is read from the data folder's SQLite files, never from the memory of
the process that ran the jobs, so the viewer (another process, perhaps restarted since)
shows the same state as the scheduler, and metrics survive restarts. Each file is read
through the read methods of the module that owns its tables (no SQL here):

- `runs.sqlite` (termshift.trackers.run_store `RunStore`, written by the tracking run): the
  runs, newest first, the latest finished run's summary, and each terms' status (last
  success, failing-since date, error kind, consecutive failures, blocked);
- `scheduler.sqlite`: the job history and next run times (termshift.job_history) and
  the publish log (termshift.publish);
- `alerts.sqlite` (termshift.alerts): the webhook outbox, for the delivery backlog.

Any of them may be absent (a fresh install, the scheduler never started): the
corresponding part is then empty, never an error.

Public: `status(settings)`, `healthz(settings)`, `StateCollector`, `metrics_registry(settings)`.
"""

from __future__ import annotations

import os
import sqlite3
import threading
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, TypeVar

from prometheus_client.core import (
    CounterMetricFamily,
    GaugeHistogramMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
)
from prometheus_client.registry import Collector, CollectorRegistry

from termshift import __version__, job_history, publish
from termshift.alerts import outbox
from termshift.alerts import store as alerts_store
from termshift.archive_repo.log_reader import (
    GitError,
    count_commits,
    head_commit,
    is_repository,
    looks_like_repository,
)
from termshift.config import Settings
from termshift.locking import describe_holder, process_alive, read_holder
from termshift.trackers.run_store import RUNS_FILE, RunRecord, RunStore

# Durations of runs and documents range from a second (a small collection) to an hour.
RUN_BUCKETS = (1, 5, 15, 30, 60, 120, 300, 600, 1200, 1800, 3600, 7200)
DOCUMENT_BUCKETS = (0.1, 0.25, 0.5, 1, 2.5, 5, 10, 20, 30, 60, 120)
T = TypeVar("T")


# --- reading helpers ------------------------------------------------------------------------

def to_epoch(value: Any) -> float | None:
    """Unix time from a number, an ISO 8601 string (`Z` or offset; naive means UTC) or a datetime."""
    if value is None or value == "":
        return None
    if isinstance(value, int | float):
        return float(value)
    if isinstance(value, str):
        try:
            return float(value)
        except ValueError:
            pass
        try:
            value = datetime.fromisoformat(value.replace("Z", "+00:00"))
        except ValueError:
            return None
    if isinstance(value, datetime):
        return (value if value.tzinfo else value.replace(tzinfo=UTC)).timestamp()
    return None


def iso(epoch: float | None) -> str | None:
    if epoch is None:
        return None
    return datetime.fromtimestamp(epoch, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


# --- tracking runs and documents (runs.sqlite) ----------------------------------------------

def _from_runs(data_dir: Path, read: Callable[[RunStore], T], default: T) -> T:
    """What `read` gets from runs.sqlite; `default` when the file is missing or unreadable."""
    try:
        store = RunStore.open_read_only(Path(data_dir) / RUNS_FILE)
        if store is None:
            return default
        with store:
            return read(store)
    except sqlite3.Error:
        return default


def _run_as_dict(run: RunRecord) -> dict[str, Any]:
    """A run in the status page's shape: started/finished (Unix), duration, status, counts."""
    started, finished = to_epoch(run.started_at), to_epoch(run.finished_at)
    return {
        "id": run.id,
        "started_at": started,
        "finished_at": finished,
        "duration": finished - started if started is not None and finished is not None else None,
        "status": str(run.status or ("running" if finished is None else "finished")),
        "counts": run.counts,
        "error": run.error,
    }


def read_runs(data_dir: Path, limit: int | None = 20) -> list[dict[str, Any]]:
    """Tracking runs recorded by the tracking run itself, newest first."""
    return [_run_as_dict(run) for run in _from_runs(data_dir, lambda store: store.latest_runs(limit), [])]


def _last_summary(data_dir: Path) -> dict[str, Any]:
    return _from_runs(data_dir, RunStore.last_finished_summary, {})


def last_run_documents(data_dir: Path) -> list[dict[str, Any]]:
    """Per-terms results of the latest finished run (with `seconds` spent fetching each).

    From the run's own `summary` in runs.sqlite; else from what the scheduler kept of
    its last tracking run (`run_documents`), for a tracking function without runs.sqlite.
    """
    documents = _last_summary(data_dir).get("documents")
    if isinstance(documents, list):
        return [document for document in documents if isinstance(document, dict)]
    return job_history.last_run_documents(data_dir)


def read_documents(data_dir: Path) -> list[dict[str, Any]]:
    """Each terms' status: failing first (longest failing first), then by service and type."""
    documents = [
        {
            "service_id": document.service_id,
            "terms_type": document.terms_type,
            "last_success": to_epoch(document.last_success),
            "failing_since": to_epoch(document.failing_since),
            "error_kind": document.error_kind,
            "error": document.error,
            "consecutive_failures": document.consecutive_failures,
            "blocked": document.blocked,
        }
        for document in _from_runs(data_dir, RunStore.document_statuses, [])
    ]
    documents.sort(key=lambda d: (d["failing_since"] is None, d["failing_since"] or 0,
                                  str(d["service_id"]), str(d["terms_type"])))
    return documents


# --- the scheduler's state (scheduler.sqlite) -----------------------------------------------

def read_history(data_dir: Path, job_id: str | None = None, limit: int = 20) -> list[dict[str, Any]]:
    """run_history rows, newest first."""
    return job_history.recent_runs(data_dir, job_id, limit)


def read_next_runs(data_dir: Path) -> dict[str, float | None]:
    """Next run time of each scheduled job."""
    return job_history.next_run_times(data_dir)


def read_publish(data_dir: Path) -> list[dict[str, Any]]:
    """The last push of each repository, with the time of its last success."""
    return publish.last_pushes(data_dir)


def read_deliveries(data_dir: Path) -> dict[str, Any] | None:
    """Outbox counts per status and the age of the oldest undelivered event; None without alerts."""
    summary = outbox.status_summary(data_dir)
    if summary is None:
        return None
    counts, oldest = summary
    return {"counts": counts, "backlog": counts["pending"] + counts["delivering"],
            "oldest_pending_age": time.time() - oldest if oldest is not None else None}


def alerts_problem(data_dir: Path) -> str | None:
    """Why `alerts.sqlite` cannot be read (SQLite's words), or None when it can (or does not exist yet)."""
    return alerts_store.unreadable(data_dir)


def problems(data_dir: Path) -> list[dict[str, str]]:
    """What is broken in the data folder, each as {"what", "public", "detail"}: `public` in plain
    words for anyone, `detail` (paths, SQLite's message, what to do) for the administrator."""
    found = []
    alerts = alerts_problem(data_dir)
    if alerts is not None:
        path = alerts_store.database_path(data_dir)
        found.append({
            "what": "alerts_database",
            "public": "The alerts database cannot be read: webhook and Apprise deliveries are stopped, "
                      "and feeds are served without word counts.",
            "detail": f"{path}: {alerts}. Restore it from a backup, or move it aside to start with no "
                      "subscriptions (a new one is created).",
        })
    return found


def running_run(data_dir: Path) -> dict[str, Any] | None:
    """The tracking run in progress, if any: the lock holder, when its process is alive."""
    holder = read_holder(data_dir)
    if not holder or not isinstance(holder.get("pid"), int):
        return None
    if process_alive(holder["pid"], holder.get("host")) is False:
        return None  # a stale holder file: the kernel released the lock with the process
    since = to_epoch(holder.get("since"))
    return {**holder, "since": since, "elapsed": time.time() - since if since else None,
            "description": describe_holder(holder)}


_version_counts: dict[Path, tuple[str, int]] = {}  # repository -> (HEAD, commits): counted once per HEAD
_version_counts_lock = threading.Lock()


def versions_in_repository(repository: Path) -> int | None:
    """Commits of the versions repository (each is one recorded version), None when it cannot be read.

    Counted from git, not from run summaries: a version committed by a run that was then
    killed before writing its summary is counted too. Recounted only when HEAD moves."""
    if not looks_like_repository(repository):
        return None
    try:
        head = head_commit(repository)
        if head is None:
            return 0 if is_repository(repository) else None  # a repository with no commit yet
        with _version_counts_lock:
            cached = _version_counts.get(Path(repository))
        if cached and cached[0] == head:
            return cached[1]
        # Commits of record files, not of a README.
        counted = count_commits(repository, None, head, pathspecs=("*/*",), include_merges=True, timeout=60)
    except (GitError, OSError, ValueError):
        return None
    with _version_counts_lock:
        _version_counts[Path(repository)] = (head, counted)
    return counted


# --- the status page ------------------------------------------------------------------------

def last_run(data_dir: Path) -> dict[str, Any] | None:
    """The latest finished tracking run: from runs.sqlite, else from the scheduler's history."""
    for run in read_runs(data_dir, limit=5):
        if run["finished_at"] is not None:
            return run
    for row in read_history(data_dir, "tracking", limit=50):
        if row["status"] in ("ok", "failed", "stopped"):
            return {"id": row["id"], "started_at": row["started_at"], "finished_at": row["finished_at"],
                    "duration": row["duration"], "status": row["status"], "counts": row["counts"],
                    "error": row["message"] or None}
    return None


def last_run_skipped_services(data_dir: Path) -> list[dict[str, Any]]:
    """Services the latest finished tracking run left out because their files do not load:
    `[{"service_id", "errors": ["<file>: <json path>: <reason>", …]}]`."""
    skipped = _last_summary(data_dir).get("skipped_services")
    if not isinstance(skipped, list):
        return []
    return [{"service_id": str(item.get("service_id")), "errors": [str(error) for error in item.get("errors") or []]}
            for item in skipped if isinstance(item, dict)]


def read_fleet(settings: Settings) -> dict[str, Any] | None:
    """Distributed mode's fleet (workers, queue depth, jobs in flight, redeliveries of the current or
    last run), when a broker is configured; None otherwise. A broker that cannot be read gives `error`."""
    if not settings.distributed.broker:
        return None
    from termshift.distributed.coordinator import fleet_status

    return fleet_status(settings.distributed.broker, Path(settings.data), queue=settings.distributed.queue,
                        heartbeat_timeout=settings.distributed.heartbeat_timeout)


def status(settings: Settings, details: bool = True) -> dict[str, Any]:
    """Everything the status page shows, as JSON-able data (times as ISO 8601 strings).

    `details=False` is the public view: what is wrong in plain words, without the push
    remotes, git's or SQLite's messages, the lock holder's host and pid, or paths.
    """
    data_dir = Path(settings.data)
    documents = read_documents(data_dir)
    failures_by_kind: dict[str, int] = {}
    for document in documents:
        if document["failing_since"] is not None or document["consecutive_failures"]:
            kind = document["error_kind"] or "unknown"
            failures_by_kind[kind] = failures_by_kind.get(kind, 0) + 1
    run = last_run(data_dir)
    running = running_run(data_dir)
    report = {
        "generated_at": iso(time.time()),
        "version": __version__,
        "last_run": _iso_fields(run, "started_at", "finished_at") if run else None,
        "running": _iso_fields(running, "since") if running else None,
        "next_runs": {job: iso(moment) for job, moment in sorted(read_next_runs(data_dir).items())},
        "history": [_iso_fields(row, "started_at", "finished_at") for row in read_history(data_dir, limit=20)],
        "documents": [_iso_fields(doc, "last_success", "failing_since") for doc in documents],
        "failures_by_kind": failures_by_kind,
        "skipped_services": last_run_skipped_services(data_dir),
        "deliveries": read_deliveries(data_dir),
        "publish": [_iso_fields(row, "started_at", "finished_at", "last_success") for row in read_publish(data_dir)],
        "problems": problems(data_dir),
        "fleet": read_fleet(settings),
    }
    return {**report, "details": True} if details else public_status(report)


PUBLIC_RUN_FIELDS = ("id", "started_at", "finished_at", "duration", "status", "counts")
PUBLIC_PUSH_FIELDS = ("repository", "ok", "attempts", "started_at", "finished_at", "last_success", "failures")
PUBLIC_JOB_FIELDS = ("id", "job_id", "status", "started_at", "finished_at", "duration", "counts")


def public_file_error(error: str) -> str:
    """`/srv/declarations/Acme.json: $.name: reason` → `Acme.json: $.name: reason`."""
    file, separator, rest = error.partition(": ")
    return f"{Path(file).name}{separator}{rest}" if separator else error


def public_status(report: dict[str, Any]) -> dict[str, Any]:
    """The status without what only the administrator should see (see `status`)."""
    def keep(row: dict[str, Any] | None, fields: tuple[str, ...]) -> dict[str, Any] | None:
        return None if row is None else {name: row.get(name) for name in fields if name in row}

    run = keep(report["last_run"], PUBLIC_RUN_FIELDS)
    if run is not None and report["last_run"].get("error"):
        run["error"] = "the run failed: the administrator can see why"
    running = report["running"]
    return {
        **report,
        "last_run": run,
        "running": None if running is None else {"since": running.get("since"), "elapsed": running.get("elapsed")},
        "history": [keep(row, PUBLIC_JOB_FIELDS) for row in report["history"]],
        "publish": [{**keep(row, PUBLIC_PUSH_FIELDS),
                     "error": None if row.get("ok") else "the push failed: the administrator can see why"}
                    for row in report["publish"]],
        "problems": [{"what": problem["what"], "public": problem["public"]} for problem in report["problems"]],
        # Declaration errors name their file: its name, not the folder it is in.
        "skipped_services": [{**item, "errors": [public_file_error(error) for error in item["errors"]]}
                             for item in report.get("skipped_services", [])],
        # The fleet's size and load, not the broker's address nor the workers' host names.
        "fleet": None if report.get("fleet") is None else {
            key: value for key, value in report["fleet"].items()
            if key in ("workers_alive", "queue_waiting", "jobs_in_flight", "run_in_progress", "run_stats")
        } | ({"error": "the broker cannot be read: the administrator can see why"}
             if report["fleet"].get("error") else {}),
        "details": False,
    }


def _iso_fields(row: dict[str, Any], *names: str) -> dict[str, Any]:
    return {**row, **{name: iso(row.get(name)) for name in names}}


# --- the health probe -----------------------------------------------------------------------

def _check_readable_dir(path: Path) -> tuple[bool, str, str]:
    """(ok, public words, detail)."""
    if not path.is_dir():
        return False, "the data folder is missing", f"{path}: not a folder"
    if not os.access(path, os.R_OK | os.X_OK):
        return False, "the data folder cannot be read", f"{path}: not readable"
    return True, "readable", "readable"


def _check_repository(path: Path) -> tuple[bool, str, str]:
    if not path.exists():
        # A fresh install has no repositories until its first run; that is not a failure.
        return True, "not created yet (no run so far)", "not created yet (no run so far)"
    head = path / ".git" / "HEAD" if (path / ".git").exists() else path / "HEAD"
    try:
        head.read_bytes()
    except OSError as error:
        return False, "the repository cannot be read", \
            f"{path}: not a readable git repository ({error.strerror or error})"
    return True, "readable", "readable"


def healthz(settings: Settings, details: bool = True) -> tuple[bool, dict[str, Any]]:
    """(healthy, body) for probes: data folder and repositories readable, no stuck run.

    `details=False` (the public probe) says what is wrong in plain words, without paths
    or the lock holder's host and pid.
    """
    data_dir = Path(settings.data)
    checks: dict[str, dict[str, Any]] = {}

    def check(name: str, ok: bool, public: str, detail: str) -> None:
        checks[name] = {"ok": ok, "detail": detail if details else public}

    check("data_dir", *_check_readable_dir(data_dir))
    for name in ("snapshots", "versions"):
        check(name, *_check_repository(data_dir / name))
    stuck_after = settings.schedule.stuck_after
    running = running_run(data_dir)
    if running and running["elapsed"] is not None and running["elapsed"] > stuck_after:
        public = (f"a tracking run has been in progress for {running['elapsed']:.0f} s "
                  f"(more than schedule.stuck_after = {stuck_after:g} s)")
        check("tracking", False, public, f"{public}: {running['description']}")
    else:
        check("tracking", True, "running" if running else "idle", "running" if running else "idle")
    healthy = all(item["ok"] for item in checks.values())
    return healthy, {"status": "ok" if healthy else "fail", "checks": checks, "time": iso(time.time())}


# --- Prometheus metrics ---------------------------------------------------------------------

# Names the tracking run may give its counts, per metric (first found wins).
COUNT_ALIASES = {
    "documents_fetched": ("documents_fetched", "documents", "fetched", "snapshots_fetched"),
    "snapshots_recorded": ("snapshots_recorded", "snapshots", "new_snapshots"),
    "versions_recorded": ("versions_recorded", "versions", "new_versions"),
}


def _histogram(name: str, documentation: str, values: list[float], bounds: tuple[float, ...], *,
               gauge: bool = False) -> HistogramMetricFamily | GaugeHistogramMetricFamily:
    """A histogram of `values` (cumulative buckets), or a gauge histogram for a snapshot that may shrink."""
    buckets = [(str(float(bound)), float(sum(1 for value in values if value <= bound))) for bound in bounds]
    buckets.append(("+Inf", float(len(values))))
    if gauge:
        return GaugeHistogramMetricFamily(name, documentation, buckets=buckets, gsum_value=float(sum(values)))
    return HistogramMetricFamily(name, documentation, buckets=buckets, sum_value=float(sum(values)))


class StateCollector(Collector):
    """Collects metrics from the data folder's SQLite files at every scrape.

    A custom collector rather than counters incremented in memory: the process serving
    /metrics is not the one running the jobs, and both may restart.
    """

    def __init__(self, data_dir: Path, settings: Settings | None = None) -> None:
        self.data_dir = Path(data_dir)
        self.settings = settings  # for distributed mode's fleet (distributed.broker)

    def collect(self) -> Iterator[Any]:
        info = GaugeMetricFamily("termshift_info", "Termshift version.", labels=["version"])
        info.add_metric([__version__], 1)
        yield info
        yield from self._runs()
        yield from self._documents()
        yield from self._scheduler()
        yield from self._deliveries()
        yield from self._publish()
        yield from self._problems()
        yield from self._fleet()

    def _fleet(self) -> Iterator[Any]:
        fleet = read_fleet(self.settings) if self.settings is not None else None
        if fleet is None:
            return
        yield GaugeMetricFamily("termshift_broker_up", "1 when the distributed mode's broker answers.",
                                value=0 if fleet.get("error") else 1)
        if fleet.get("error"):
            return
        yield GaugeMetricFamily("termshift_workers", "Workers heard from within the heartbeat time-out.",
                                value=fleet["workers_alive"])
        yield GaugeMetricFamily("termshift_queue_depth", "Jobs waiting in the broker's queue.",
                                value=fleet["queue_waiting"])
        yield GaugeMetricFamily("termshift_jobs_in_flight", "Jobs taken by workers and not acknowledged yet.",
                                value=fleet["jobs_in_flight"])
        stats = fleet.get("run_stats") or {}
        yield GaugeMetricFamily("termshift_job_redeliveries", "Jobs delivered again (a worker lost) in the "
                                "current or last distributed run.", value=stats.get("redeliveries", 0))
        yield GaugeMetricFamily("termshift_job_results_ignored", "Duplicate results dropped (already recorded) "
                                "in the current or last distributed run.", value=stats.get("ignored", 0))

    def _runs(self) -> Iterator[Any]:
        runs = read_runs(self.data_dir, limit=None)
        # Finished runs only: a run in progress is a state (the gauge termshift_tracking_run_in_progress),
        # not an event to count.
        by_status = CounterMetricFamily("termshift_tracking_runs", "Finished tracking runs, by outcome.",
                                        labels=["status"])
        totals: dict[str, int] = {}
        for run in runs:
            if run["status"] != "running":
                totals[run["status"]] = totals.get(run["status"], 0) + 1
        for name, value in sorted(totals.items()):
            by_status.add_metric([name], value)
        yield by_status
        sums: dict[str, float] = {}
        for run in runs:
            for key, value in run["counts"].items():
                if isinstance(value, int | float) and not isinstance(value, bool):
                    sums[key] = sums.get(key, 0) + value
        counts = CounterMetricFamily("termshift_tracking_counts", "Sum over all runs of each count the "
                                     "tracking run reports.", labels=["count"])
        for key, value in sorted(sums.items()):
            counts.add_metric([key], value)
        yield counts
        for metric, aliases in COUNT_ALIASES.items():
            if metric == "versions_recorded":
                continue  # counted from the versions repository (below): a killed run's commits count too
            found = next((sums[alias] for alias in aliases if alias in sums), None)
            if found is not None:
                yield CounterMetricFamily(f"termshift_{metric}", f"{metric.replace('_', ' ').capitalize()}, "
                                          "all runs.", value=found)
        recorded = versions_in_repository(self.data_dir / "versions")
        if recorded is not None:
            yield CounterMetricFamily("termshift_versions_recorded", "Versions recorded: the commits of the "
                                      "versions repository, whatever run made them.", value=recorded)
        finished = [run for run in runs if run["duration"] is not None]
        yield _histogram("termshift_tracking_run_duration_seconds", "Duration of tracking runs.",
                         [run["duration"] for run in finished], RUN_BUCKETS)
        if finished:
            latest = finished[0]
            yield GaugeMetricFamily("termshift_last_run_start_timestamp_seconds",
                                    "Start of the last finished tracking run.", value=latest["started_at"])
            yield GaugeMetricFamily("termshift_last_run_duration_seconds",
                                    "Duration of the last finished tracking run.", value=latest["duration"])
        running = running_run(self.data_dir)
        yield GaugeMetricFamily("termshift_tracking_run_in_progress", "1 while a tracking run holds the lock.",
                                value=1 if running else 0)

    def _documents(self) -> Iterator[Any]:
        documents = read_documents(self.data_dir)
        yield GaugeMetricFamily("termshift_documents", "Terms (service, type) with a status.", value=len(documents))
        failing = GaugeMetricFamily("termshift_documents_failing", "Terms whose last attempt failed, by error "
                                    "class.", labels=["error_kind"])
        kinds: dict[str, int] = {}
        for document in documents:
            if document["failing_since"] is not None or document["consecutive_failures"]:
                kind = document["error_kind"] or "unknown"
                kinds[kind] = kinds.get(kind, 0) + 1
        for kind, value in sorted(kinds.items()):
            failing.add_metric([kind], value)
        yield failing
        yield GaugeMetricFamily("termshift_documents_blocked", "Terms currently served a block page.",
                                value=sum(1 for d in documents if d["blocked"]))
        # The distribution of the last run only (a gauge histogram): all runs' per-terms
        # figures would mean parsing every stored summary at every scrape.
        seconds = [float(document["seconds"]) for document in last_run_documents(self.data_dir)
                   if isinstance(document.get("seconds"), int | float)]
        yield _histogram("termshift_last_run_fetch_duration_seconds",
                         "Time spent fetching each terms' documents in the last finished run.",
                         seconds, DOCUMENT_BUCKETS, gauge=True)

    def _scheduler(self) -> Iterator[Any]:
        jobs = CounterMetricFamily("termshift_scheduler_jobs", "Finished job executions by job and outcome "
                                   "(ok, failed, stopped, skipped, missed, interrupted).", labels=["job", "status"])
        running = GaugeMetricFamily("termshift_scheduler_jobs_running", "Executions of each job in progress now.",
                                    labels=["job"])
        for job_id, job_status, executions in job_history.status_counts(self.data_dir):
            if job_status == "running":
                running.add_metric([job_id], executions)
            else:
                jobs.add_metric([job_id, job_status], executions)
        yield jobs
        yield running
        next_runs = GaugeMetricFamily("termshift_scheduler_next_run_timestamp_seconds", "Next run of each job.",
                                      labels=["job"])
        for job, moment in sorted(read_next_runs(self.data_dir).items()):
            if moment is not None:
                next_runs.add_metric([job], moment)
        yield next_runs

    def _problems(self) -> Iterator[Any]:
        problem = GaugeMetricFamily("termshift_problem", "1 for each part of the data folder that cannot be "
                                    "read (see /status).", labels=["what"])
        for found in problems(self.data_dir):
            problem.add_metric([found["what"]], 1)
        yield problem

    def _deliveries(self) -> Iterator[Any]:
        deliveries = read_deliveries(self.data_dir)
        if deliveries is None:
            return
        events = GaugeMetricFamily("termshift_webhook_events", "Webhook outbox events by status.", labels=["status"])
        for name, value in deliveries["counts"].items():
            events.add_metric([name], value)
        yield events
        yield GaugeMetricFamily("termshift_webhook_backlog", "Events waiting for delivery (pending or in flight).",
                                value=deliveries["backlog"])
        yield GaugeMetricFamily("termshift_webhook_oldest_pending_age_seconds",
                                "Age of the oldest undelivered event (0 when none).",
                                value=deliveries["oldest_pending_age"] or 0)

    def _publish(self) -> Iterator[Any]:
        rows = read_publish(self.data_dir)
        ok = GaugeMetricFamily("termshift_publish_last_ok", "1 if the last push of the repository succeeded.",
                               labels=["repository"])
        failures = CounterMetricFamily("termshift_publish_failures", "Failed pushes (after retries).",
                                       labels=["repository"])
        success = GaugeMetricFamily("termshift_publish_last_success_timestamp_seconds",
                                    "Time of the last successful push.", labels=["repository"])
        for row in rows:
            ok.add_metric([row["repository"]], row["ok"])
            failures.add_metric([row["repository"]], row["failures"])
            if row["last_success"] is not None:
                success.add_metric([row["repository"]], row["last_success"])
        yield ok
        yield failures
        yield success


def metrics_registry(settings: Settings) -> CollectorRegistry:
    """A registry holding only Termshift's state collector (no process metrics of the viewer)."""
    registry = CollectorRegistry(auto_describe=False)
    registry.register(StateCollector(Path(settings.data), settings))
    return registry
