"""`<data>/scheduler.sqlite`: the service's state database, and the history of its jobs.

This module owns:
- the file and how it is opened (`state_path`, `connect_state`): WAL, private, waiting
  for locks, since every scheduler process sharing the data folder writes it;
- `run_history`, one row per job execution (or skipped or missed one), and
  `run_documents`, the per-document results of a tracking run: `RunHistory` writes them
  (termshift.scheduler), `recent_runs`, `status_counts` and `last_run_documents` read
  them (the status page and /metrics, termshift.monitoring);
- the name of the job store's table, `JOBS_TABLE`: APScheduler's SQLAlchemyJobStore
  writes it (termshift.scheduler passes the name); `next_run_times` reads the next run
  times from it without APScheduler (no unpickling).

The file's other table, `publish_log`, belongs to termshift.publish.

It sits at the bottom (it imports only termshift.sqlite_wal and termshift.locking), so
that health reads the history without loading APScheduler.
"""

from __future__ import annotations

import json
import os
import socket
import sqlite3
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from termshift.locking import process_alive
from termshift.sqlite_wal import connect as connect_private
from termshift.sqlite_wal import connect_read_only, enable_wal, has_table, json_object

STATE_FILE = "scheduler.sqlite"
JOBS_TABLE = "apscheduler_jobs"  # APScheduler's default name, given explicitly by the scheduler
HISTORY_KEPT = 5000  # run_history rows kept (deliveries only write a row when they sent something)

HISTORY_SCHEMA = """
CREATE TABLE IF NOT EXISTS run_history (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    job_id TEXT NOT NULL,
    status TEXT NOT NULL,          -- running, ok, failed, stopped, skipped, missed, interrupted
    started_at REAL NOT NULL,      -- Unix time
    finished_at REAL,
    pid INTEGER NOT NULL,
    host TEXT NOT NULL,
    counts TEXT NOT NULL DEFAULT '{}',  -- JSON, e.g. the tracking run's counts
    message TEXT NOT NULL DEFAULT ''
);
CREATE INDEX IF NOT EXISTS run_history_job ON run_history (job_id, started_at);
CREATE TABLE IF NOT EXISTS run_documents (
    run_id INTEGER NOT NULL,       -- run_history.id
    service_id TEXT NOT NULL,
    terms_type TEXT NOT NULL,
    outcome TEXT NOT NULL,
    error_kind TEXT,
    seconds REAL                   -- time spent on the document, when the run reports it
);
CREATE INDEX IF NOT EXISTS run_documents_run ON run_documents (run_id);
"""


# --- the file ---------------------------------------------------------------------------------

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


def read_state(data_dir: Path, table: str, query: str, parameters: tuple = ()) -> list[dict[str, Any]]:
    """Rows of a read-only `query` on scheduler.sqlite as dicts, for the read methods of the
    modules owning its tables; [] when the file or `table` is missing, or cannot be read
    (a fresh install, the scheduler never started)."""
    try:
        db = connect_read_only(state_path(data_dir))
        if db is None:
            return []
        try:
            if not has_table(db, table):
                return []
            return [dict(row) for row in db.execute(query, parameters)]
        finally:
            db.close()
    except sqlite3.Error:
        return []


# --- writing ----------------------------------------------------------------------------------

class RunHistory:
    """The `run_history` table: one row per job execution, or per skipped or missed one.

    Written by every scheduler process sharing the data folder; a row is committed when
    a run starts (status `running`) so a crash leaves a trace (`interrupted` at next start).
    """

    def __init__(self, data_dir: Path) -> None:
        self.data_dir = Path(data_dir)
        with connect_state(self.data_dir) as db:
            db.executescript(HISTORY_SCHEMA)

    def start(self, job_id: str) -> int:
        with connect_state(self.data_dir) as db:
            cursor = db.execute(
                "INSERT INTO run_history (job_id, status, started_at, pid, host) VALUES (?, 'running', ?, ?, ?)",
                (job_id, time.time(), os.getpid(), socket.gethostname()),
            )
            return int(cursor.lastrowid)

    def finish(
        self, row_id: int, status: str, counts: dict[str, Any] | None = None, message: str = "",
        documents: list[dict[str, Any]] | None = None,
    ) -> None:
        with connect_state(self.data_dir) as db:
            db.execute(
                "UPDATE run_history SET status = ?, finished_at = ?, counts = ?, message = ? WHERE id = ?",
                (status, time.time(), json.dumps(counts or {}, default=str), message, row_id),
            )
            db.executemany(
                "INSERT INTO run_documents (run_id, service_id, terms_type, outcome, error_kind, seconds)"
                " VALUES (?, ?, ?, ?, ?, ?)",
                [(row_id, d["service_id"], d["terms_type"], d["outcome"], d.get("error_kind"), d.get("seconds"))
                 for d in documents or []],
            )

    def note(self, job_id: str, status: str, message: str) -> None:
        """A row for something that did not run (skipped, missed)."""
        now = time.time()
        with connect_state(self.data_dir) as db:
            db.execute(
                "INSERT INTO run_history (job_id, status, started_at, finished_at, pid, host, message)"
                " VALUES (?, ?, ?, ?, ?, ?, ?)",
                (job_id, status, now, now, os.getpid(), socket.gethostname(), message),
            )

    def mark_interrupted(self) -> int:
        """Close the `running` rows of dead processes on this host (killed, power cut)."""
        with connect_state(self.data_dir) as db:
            rows = db.execute("SELECT id, pid, host FROM run_history WHERE status = 'running'").fetchall()
            dead = [row["id"] for row in rows if process_alive(row["pid"], row["host"]) is False]
            db.executemany(
                "UPDATE run_history SET status = 'interrupted', message = 'the process ended during the run'"
                " WHERE id = ?",
                [(row_id,) for row_id in dead],
            )
        return len(dead)

    def prune(self, keep: int = HISTORY_KEPT) -> None:
        with connect_state(self.data_dir) as db:
            db.execute("DELETE FROM run_history WHERE id <= (SELECT MAX(id) FROM run_history) - ?", (keep,))
            db.execute("DELETE FROM run_documents WHERE run_id NOT IN (SELECT id FROM run_history)")


# --- reading (never creates the file) ---------------------------------------------------------

def recent_runs(data_dir: Path, job_id: str | None = None, limit: int = 20) -> list[dict[str, Any]]:
    """`run_history` rows, newest first, with `counts` decoded and `duration` (None while running)."""
    where, parameters = ("WHERE job_id = ?", (job_id,)) if job_id else ("", ())
    rows = read_state(data_dir, "run_history",
                      f"SELECT * FROM run_history {where} ORDER BY id DESC LIMIT ?", (*parameters, int(limit)))
    for row in rows:
        row["counts"] = json_object(row.get("counts"))
        finished = row.get("finished_at")
        row["duration"] = finished - row["started_at"] if finished is not None else None
    return rows


def status_counts(data_dir: Path) -> list[tuple[str, str, int]]:
    """(job id, status, executions) for every job and status in the history."""
    rows = read_state(data_dir, "run_history",
                      "SELECT job_id, status, COUNT(*) AS n FROM run_history GROUP BY job_id, status")
    return [(row["job_id"], row["status"], row["n"]) for row in rows]


def last_run_documents(data_dir: Path) -> list[dict[str, Any]]:
    """The per-document results (service_id, terms_type, outcome, error_kind, seconds) of the
    latest execution that reported some."""
    return read_state(data_dir, "run_documents",
                      "SELECT * FROM run_documents WHERE run_id = (SELECT MAX(run_id) FROM run_documents)")


def next_run_times(data_dir: Path) -> dict[str, float | None]:
    """Next run time (Unix) of each scheduled job, from the job store's table."""
    rows = read_state(data_dir, JOBS_TABLE, f"SELECT id, next_run_time FROM {JOBS_TABLE}")
    return {row["id"]: row["next_run_time"] for row in rows}
