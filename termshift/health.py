"""What the service is doing and how it went: status data, health probe, Prometheus metrics.

Everything here is read from the data folder's SQLite files, never from the memory of
the process that ran the jobs, so the viewer (another process, perhaps restarted since)
shows the same state as the scheduler, and metrics survive restarts:

- `runs.sqlite` (written by the tracking run, termshift.trackers.run): table `runs`,
  one row per run, and `document_status`, one row per (service, terms type) with its
  last success, failing-since date, error kind, consecutive failures, blocked flag;
- `scheduler.sqlite` (ours): APScheduler's `apscheduler_jobs` (next run times),
  `run_history` (every job execution, skip or miss; termshift.scheduler) and
  `publish_log` (termshift.publish);
- `alerts.sqlite` (termshift.alerts): the webhook outbox, for the delivery backlog.

Any of them may be absent (a fresh install, the scheduler never started): the
corresponding part is then empty, never an error.

Public: `connect_state`, `state_path`, `status(settings)`, `healthz(settings)`,
`StateCollector`, `metrics_registry(settings)`.
"""

from __future__ import annotations

import json
import os
import sqlite3
import subprocess
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from prometheus_client.core import (
    CounterMetricFamily,
    GaugeHistogramMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
)
from prometheus_client.registry import Collector, CollectorRegistry

from termshift import __version__
from termshift.config import Settings
from termshift.locking import describe_holder, process_alive, read_holder
from termshift.sqlite_wal import connect as connect_private
from termshift.sqlite_wal import enable_wal

STATE_FILE = "scheduler.sqlite"
RUNS_FILE = "runs.sqlite"
ALERTS_FILE = "alerts.sqlite"
# Durations of runs and documents range from a second (a small collection) to an hour.
RUN_BUCKETS = (1, 5, 15, 30, 60, 120, 300, 600, 1200, 1800, 3600, 7200)
DOCUMENT_BUCKETS = (0.1, 0.25, 0.5, 1, 2.5, 5, 10, 20, 30, 60, 120)


# --- the service's own state database ------------------------------------------------------

def state_path(data_dir: Path) -> Path:
    return Path(data_dir) / STATE_FILE


@contextmanager
def connect_state(data_dir: Path) -> Iterator[sqlite3.Connection]:
    """A connection to `<data>/scheduler.sqlite` (WAL, so readers never wait for writers);
    committed and closed on exit. Several processes write it: waits for locks up to 60 s."""
    db = connect_private(state_path(data_dir), timeout=60)
    try:
        db.row_factory = sqlite3.Row
        enable_wal(db)
        db.execute("PRAGMA busy_timeout=60000")
        yield db
        db.commit()
    finally:
        db.close()


# --- reading helpers ------------------------------------------------------------------------

@contextmanager
def _read(path: Path) -> Iterator[sqlite3.Connection | None]:
    """A read-only connection, or None when the file does not exist (yet)."""
    if not path.is_file():
        yield None
        return
    db = sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=10)
    try:
        db.row_factory = sqlite3.Row
        yield db
    finally:
        db.close()


def _has_table(db: sqlite3.Connection | None, name: str) -> bool:
    return db is not None and db.execute(
        "SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = ?", (name,)
    ).fetchone() is not None


def _rows(path: Path, table: str, query: str, parameters: tuple = ()) -> list[dict[str, Any]]:
    """Rows of `query` as dicts; [] when the file or the table is missing, or unreadable."""
    try:
        with _read(path) as db:
            if not _has_table(db, table):
                return []
            return [dict(row) for row in db.execute(query, parameters)]
    except sqlite3.Error:
        return []


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


def _json_object(value: Any) -> dict[str, Any]:
    if isinstance(value, dict):
        return value
    if isinstance(value, str | bytes):
        try:
            parsed = json.loads(value)
        except ValueError:
            return {}
        return parsed if isinstance(parsed, dict) else {}
    return {}


# --- tracking runs and documents (runs.sqlite) ----------------------------------------------

_RUN_TIME_COLUMNS = ("started_at", "finished_at")
_RUN_OTHER_COLUMNS = ("id", "run_id", "status", "outcome", "error", "message", "counts", "stopped", "pid", "host")


def _normalise_run(row: dict[str, Any]) -> dict[str, Any]:
    """A `runs` row in one shape: started/finished (Unix), duration, status, counts.

    Counts come from a JSON `counts` column, else from the row's other numeric columns,
    so the page keeps working whatever exact columns the tracking run writes.
    """
    started, finished = to_epoch(row.get("started_at")), to_epoch(row.get("finished_at"))
    counts = _json_object(row.get("counts"))
    if not counts:
        counts = {
            key: value for key, value in row.items()
            if key not in _RUN_TIME_COLUMNS + _RUN_OTHER_COLUMNS and isinstance(value, int | float)
            and not isinstance(value, bool)
        }
    status = row.get("status") or row.get("outcome") or ("running" if finished is None else "finished")
    return {
        "id": row.get("id", row.get("run_id")),
        "started_at": started,
        "finished_at": finished,
        "duration": finished - started if started is not None and finished is not None else None,
        "status": str(status),
        "counts": counts,
        "error": row.get("error") or row.get("message") or None,
    }


def _run_columns(path: Path) -> str:
    """The `runs` columns to read: all but `summary` (per-terms results, large; read alone)."""
    columns = [row["name"] for row in _rows(path, "runs", "PRAGMA table_info(runs)")]
    return ", ".join(f'"{name}"' for name in columns if name != "summary") or "*"


def read_runs(data_dir: Path, limit: int | None = 20) -> list[dict[str, Any]]:
    """Tracking runs recorded by the tracking run itself, newest first."""
    path = Path(data_dir) / RUNS_FILE
    query = f"SELECT {_run_columns(path)} FROM runs ORDER BY rowid DESC" + (f" LIMIT {int(limit)}" if limit else "")
    return [_normalise_run(row) for row in _rows(path, "runs", query)]


def last_run_documents(data_dir: Path) -> list[dict[str, Any]]:
    """Per-terms results of the latest finished run (with `seconds` spent fetching each).

    From the run's own `summary` in runs.sqlite; else from what the scheduler kept of
    its last tracking run (`run_documents`), for a tracking function without runs.sqlite.
    """
    rows = _rows(Path(data_dir) / RUNS_FILE, "runs",
                 "SELECT summary FROM runs WHERE finished_at IS NOT NULL ORDER BY rowid DESC LIMIT 1")
    if rows:
        documents = _json_object(rows[0]["summary"]).get("documents")
        if isinstance(documents, list):
            return [document for document in documents if isinstance(document, dict)]
    return _rows(state_path(data_dir), "run_documents",
                 "SELECT * FROM run_documents WHERE run_id = (SELECT MAX(run_id) FROM run_documents)")


def read_documents(data_dir: Path) -> list[dict[str, Any]]:
    """`document_status` rows: failing first (longest failing first), then by service and type."""
    rows = _rows(Path(data_dir) / RUNS_FILE, "document_status", "SELECT * FROM document_status")
    documents = []
    for row in rows:
        documents.append({
            "service_id": row.get("service_id"),
            "terms_type": row.get("terms_type"),
            "last_success": to_epoch(row.get("last_success")),
            "failing_since": to_epoch(row.get("failing_since")),
            "error_kind": row.get("error_kind") or None,
            "error": row.get("error") or None,
            "consecutive_failures": int(row.get("consecutive_failures") or 0),
            "blocked": _blocked_count(row.get("blocked")),
        })
    documents.sort(key=lambda d: (d["failing_since"] is None, d["failing_since"] or 0,
                                  str(d["service_id"]), str(d["terms_type"])))
    return documents


def _blocked_count(value: Any) -> int:
    """`blocked` as a number of blocked pages (stored as a flag, a count or a JSON list)."""
    if isinstance(value, str):
        try:
            value = json.loads(value)
        except ValueError:
            return 1 if value else 0
    if isinstance(value, list):
        return len(value)
    return int(value or 0)


# --- our own state (scheduler.sqlite) -------------------------------------------------------

def read_history(data_dir: Path, job_id: str | None = None, limit: int = 20) -> list[dict[str, Any]]:
    """run_history rows, newest first."""
    where, parameters = ("WHERE job_id = ?", (job_id,)) if job_id else ("", ())
    rows = _rows(state_path(data_dir), "run_history",
                 f"SELECT * FROM run_history {where} ORDER BY id DESC LIMIT {int(limit)}", parameters)
    for row in rows:
        row["counts"] = _json_object(row.get("counts"))
        finished = row.get("finished_at")
        row["duration"] = finished - row["started_at"] if finished is not None else None
    return rows


def read_next_runs(data_dir: Path) -> dict[str, float | None]:
    """Next run time of each scheduled job, from APScheduler's table (no unpickling needed)."""
    rows = _rows(state_path(data_dir), "apscheduler_jobs", "SELECT id, next_run_time FROM apscheduler_jobs")
    return {row["id"]: row["next_run_time"] for row in rows}


def read_publish(data_dir: Path) -> list[dict[str, Any]]:
    """The last push of each repository, with the time of its last success."""
    return _rows(
        state_path(data_dir), "publish_log",
        "SELECT p.*, (SELECT MAX(finished_at) FROM publish_log s WHERE s.repository = p.repository AND s.ok = 1)"
        " AS last_success, (SELECT COUNT(*) FROM publish_log f WHERE f.repository = p.repository AND f.ok = 0)"
        " AS failures FROM publish_log p WHERE p.id IN (SELECT MAX(id) FROM publish_log GROUP BY repository)"
        " ORDER BY p.repository",
    )


def read_deliveries(data_dir: Path) -> dict[str, Any] | None:
    """Outbox counts per status and the age of the oldest undelivered event; None without alerts."""
    path = Path(data_dir) / ALERTS_FILE
    rows = _rows(path, "outbox", "SELECT status, COUNT(*) AS n, MIN(created_at) AS oldest FROM outbox GROUP BY status")
    if not rows and not path.is_file():
        return None
    counts = {status: 0 for status in ("pending", "delivering", "delivered", "failed", "cancelled")}
    oldest = None
    for row in rows:
        counts[row["status"]] = row["n"]
        if row["status"] in ("pending", "delivering") and row["oldest"] is not None:
            oldest = row["oldest"] if oldest is None else min(oldest, row["oldest"])
    return {"counts": counts, "backlog": counts["pending"] + counts["delivering"],
            "oldest_pending_age": time.time() - oldest if oldest is not None else None}


def alerts_problem(data_dir: Path) -> str | None:
    """Why `alerts.sqlite` cannot be read (SQLite's words), or None when it can (or does not exist yet)."""
    path = Path(data_dir) / ALERTS_FILE
    if not path.is_file():
        return None
    try:
        with _read(path) as db:
            db.execute("SELECT COUNT(*) FROM sqlite_master").fetchone()
            db.execute("PRAGMA user_version").fetchone()
    except sqlite3.Error as error:
        return str(error)
    return None


def problems(data_dir: Path) -> list[dict[str, str]]:
    """What is broken in the data folder, each as {"what", "public", "detail"}: `public` in plain
    words for anyone, `detail` (paths, SQLite's message, what to do) for the administrator."""
    found = []
    alerts = alerts_problem(data_dir)
    if alerts is not None:
        path = Path(data_dir) / ALERTS_FILE
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
    environment = {**os.environ, "GIT_OPTIONAL_LOCKS": "0", "LC_ALL": "C"}

    def git(*arguments: str) -> str | None:
        try:
            completed = subprocess.run(["git", "-C", str(repository), *arguments], capture_output=True,
                                       text=True, timeout=60, env=environment, check=False)
        except (OSError, subprocess.TimeoutExpired):
            return None
        return completed.stdout.strip() if completed.returncode == 0 else None

    if not (Path(repository) / ".git").exists() and not (Path(repository) / "HEAD").is_file():
        return None
    head = git("rev-parse", "--verify", "--quiet", "HEAD")
    if head is None:
        return 0 if git("rev-parse", "--git-dir") is not None else None  # a repository with no commit yet
    with _version_counts_lock:
        cached = _version_counts.get(Path(repository))
    if cached and cached[0] == head:
        return cached[1]
    counted = git("rev-list", "--count", head, "--", "*/*")  # commits of record files, not of a README
    if counted is None or not counted.isdigit():
        return None
    with _version_counts_lock:
        _version_counts[Path(repository)] = (head, int(counted))
    return int(counted)


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
    rows = _rows(Path(data_dir) / RUNS_FILE, "runs",
                 "SELECT summary FROM runs WHERE finished_at IS NOT NULL ORDER BY rowid DESC LIMIT 1")
    skipped = _json_object(rows[0]["summary"]).get("skipped_services") if rows else None
    if not isinstance(skipped, list):
        return []
    return [{"service_id": str(item.get("service_id")), "errors": [str(error) for error in item.get("errors") or []]}
            for item in skipped if isinstance(item, dict)]


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

    def __init__(self, data_dir: Path) -> None:
        self.data_dir = Path(data_dir)

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
        for row in _rows(state_path(self.data_dir), "run_history",
                         "SELECT job_id, status, COUNT(*) AS n FROM run_history GROUP BY job_id, status"):
            if row["status"] == "running":
                running.add_metric([row["job_id"]], row["n"])
            else:
                jobs.add_metric([row["job_id"], row["status"]], row["n"])
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
    registry.register(StateCollector(Path(settings.data)))
    return registry
