"""`<data>/runs.sqlite`: what tracking runs did, and what each document's state is between runs.

The tracking run (termshift.trackers.run) is the only writer; the viewer
(termshift.web.document_status), the status page and metrics (termshift.monitoring) read it through
the read methods below (`RunStore.open_read_only`: `latest_runs`, `last_finished_summary`,
`document_statuses`), never with SQL of their own. Three tables:

- `runs`: one row per run: `id, started_at, finished_at, status, counts, summary, error,
  pid, snapshots_head, versions_head`. `status` is `running` while it runs, then
  `completed`, `interrupted` (stop requested), `failed` (an unexpected error ended it)
  or `killed` (found unfinished by a later run, its process gone). `counts` and
  `summary` are JSON. The HEADs of both repositories at the end of a completed run let
  the next run tell whether anything else wrote to the archive meanwhile.
- `document_status`: one row per (service, terms type): `last_success, failing_since,
  error_kind, error, consecutive_failures, blocked` (read by the viewer and the
  scheduler under these names), then `last_run_id` and `fingerprint` (of the
  declaration, filters and engine version last applied to the latest version).
- `source_documents`: one row per source document (combined terms have several): the
  validators of its last successful fetch (`etag`, `last_modified`) for a conditional
  GET, with the `location` they belong to and the `snapshot_path` of the snapshot they
  describe. They are stored only once the terms' version is up to date, so a 304 never
  hides a page that was fetched but not yet turned into a version.

Dates are ISO 8601 UTC strings with `Z`. Writes are small transactions in WAL mode:
readers never wait, and a killed run leaves every committed row intact.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from termshift.sqlite_wal import connect as connect_private
from termshift.sqlite_wal import connect_read_only, enable_wal, has_table, json_object

__all__ = ["RUNS_FILE", "DocumentState", "DocumentStatus", "RunRecord", "RunStore", "SourceValidators", "iso"]

RUNS_FILE = "runs.sqlite"

_SCHEMA = """
CREATE TABLE IF NOT EXISTS runs (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    started_at TEXT NOT NULL,
    finished_at TEXT,
    status TEXT NOT NULL DEFAULT 'running',
    counts TEXT,
    summary TEXT,
    error TEXT,
    pid INTEGER,
    snapshots_head TEXT,
    versions_head TEXT
);
CREATE TABLE IF NOT EXISTS document_status (
    service_id TEXT NOT NULL,
    terms_type TEXT NOT NULL,
    last_success TEXT,
    failing_since TEXT,
    error_kind TEXT,
    error TEXT,
    consecutive_failures INTEGER NOT NULL DEFAULT 0,
    blocked INTEGER NOT NULL DEFAULT 0,
    last_run_id INTEGER,
    fingerprint TEXT,
    PRIMARY KEY (service_id, terms_type)
);
CREATE TABLE IF NOT EXISTS source_documents (
    service_id TEXT NOT NULL,
    terms_type TEXT NOT NULL,
    document_id TEXT NOT NULL,
    location TEXT NOT NULL,
    etag TEXT,
    last_modified TEXT,
    snapshot_path TEXT,
    PRIMARY KEY (service_id, terms_type, document_id)
);
"""


def iso(moment: datetime | None) -> str | None:
    """`2026-01-02T03:04:05Z` (whole seconds, UTC), or None."""
    if moment is None:
        return None
    return moment.astimezone(UTC).replace(microsecond=0).isoformat().replace("+00:00", "Z")


def _parse(value: str | None) -> datetime | None:
    if not value:
        return None
    return datetime.fromisoformat(value.replace("Z", "+00:00"))


def _read_date(value: Any) -> datetime | None:
    """A stored date for readers, as an aware UTC datetime: ISO text (naive means UTC) or
    Unix seconds; None for anything else, so a bad value never fails the status page."""
    if value in (None, ""):
        return None
    try:
        if isinstance(value, int | float):
            return datetime.fromtimestamp(value, UTC)
        moment = datetime.fromisoformat(str(value).replace("Z", "+00:00"))
        return moment if moment.tzinfo else moment.replace(tzinfo=UTC)
    except (ValueError, OverflowError, OSError):
        return None


@dataclass(frozen=True)
class DocumentState:
    """A `document_status` row, as the run needs it."""

    service_id: str
    terms_type: str
    last_success: datetime | None
    failing_since: datetime | None
    error_kind: str | None
    consecutive_failures: int
    fingerprint: str | None

    @property
    def succeeded_last(self) -> bool:
        """Whether the terms' last processing ended well (its version matches its snapshots)."""
        return self.last_success is not None and self.consecutive_failures == 0


@dataclass(frozen=True)
class DocumentStatus:
    """A `document_status` row as the status page, /metrics and the viewer show it."""

    service_id: str
    terms_type: str
    last_success: datetime | None
    failing_since: datetime | None
    error_kind: str | None
    error: str | None
    consecutive_failures: int
    blocked: int  # documents of the terms served a block page at the last attempt


@dataclass(frozen=True)
class RunRecord:
    """A `runs` row without its summary (per-terms results, large: `last_finished_summary`)."""

    id: int
    started_at: datetime | None
    finished_at: datetime | None
    status: str
    counts: dict[str, Any]
    error: str | None


@dataclass(frozen=True)
class SourceValidators:
    """What a conditional GET of one source document may send."""

    location: str
    etag: str | None
    last_modified: str | None
    snapshot_path: str | None


@dataclass(frozen=True)
class PreviousRun:
    id: int
    status: str
    snapshots_head: str | None
    versions_head: str | None


class RunStore:
    """The tracking run's connection to `runs.sqlite` (one per run, used from one thread)."""

    def __init__(self, path: Path) -> None:
        self.path = Path(path)
        self._db = connect_private(self.path, timeout=30)
        enable_wal(self._db)
        # NORMAL in WAL mode survives a killed process (only a power cut may lose the last
        # transactions), and saves an fsync per document.
        self._db.execute("PRAGMA synchronous=NORMAL")
        self._db.execute("PRAGMA busy_timeout=30000")
        self._db.executescript(_SCHEMA)
        self._db.commit()

    @classmethod
    def open_read_only(cls, path: Path, timeout: float = 10.0) -> RunStore | None:
        """A store for the read methods only (the viewer, /status, /metrics): it creates
        nothing, and is None when the file does not exist (yet). Raises sqlite3.Error when
        the file cannot be opened."""
        connection = connect_read_only(path, timeout=timeout)
        if connection is None:
            return None
        store = cls.__new__(cls)
        store.path = Path(path)
        store._db = connection
        return store

    def close(self) -> None:
        self._db.close()

    def __enter__(self) -> RunStore:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    # -- runs --------------------------------------------------------------------------

    def start_run(self, started_at: datetime) -> int:
        """A new `running` row; unfinished rows of dead processes are marked `killed` first."""
        from termshift.locking import process_alive

        with self._db:
            for run_id, pid in self._db.execute("SELECT id, pid FROM runs WHERE finished_at IS NULL").fetchall():
                if pid != os.getpid() and process_alive(pid) is not True:
                    self._db.execute("UPDATE runs SET status = 'killed' WHERE id = ?", (run_id,))
            cursor = self._db.execute(
                "INSERT INTO runs (started_at, status, pid) VALUES (?, 'running', ?)", (iso(started_at), os.getpid())
            )
        return int(cursor.lastrowid)

    def previous_run(self, run_id: int) -> PreviousRun | None:
        """The run just before `run_id`, whatever its status."""
        row = self._db.execute(
            "SELECT id, status, snapshots_head, versions_head FROM runs WHERE id < ? ORDER BY id DESC LIMIT 1",
            (run_id,),
        ).fetchone()
        return PreviousRun(*row) if row else None

    def finish_run(
        self,
        run_id: int,
        status: str,
        finished_at: datetime,
        counts: dict[str, Any],
        summary: dict[str, Any],
        *,
        error: str | None = None,
        heads: tuple[str | None, str | None] = (None, None),
    ) -> None:
        with self._db:
            self._db.execute(
                "UPDATE runs SET finished_at = ?, status = ?, counts = ?, summary = ?, error = ?,"
                " snapshots_head = ?, versions_head = ? WHERE id = ?",
                (iso(finished_at), status, json.dumps(counts), json.dumps(summary, ensure_ascii=False), error,
                 heads[0], heads[1], run_id),
            )

    def latest_runs(self, limit: int | None = 20) -> list[RunRecord]:
        """Runs newest first (all of them with `limit=None`), without their summaries."""
        if not has_table(self._db, "runs"):
            return []
        query = "SELECT id, started_at, finished_at, status, counts, error FROM runs ORDER BY id DESC"
        rows = self._db.execute(query + (" LIMIT ?" if limit else ""), (int(limit),) if limit else ()).fetchall()
        return [RunRecord(int(row[0]), _read_date(row[1]), _read_date(row[2]), row[3], json_object(row[4]),
                          row[5] or None) for row in rows]

    def last_finished_summary(self) -> dict[str, Any]:
        """The summary of the latest finished run (`documents`, `skipped_services`…); {} when
        no run finished yet."""
        if not has_table(self._db, "runs"):
            return {}
        row = self._db.execute(
            "SELECT summary FROM runs WHERE finished_at IS NOT NULL ORDER BY id DESC LIMIT 1"
        ).fetchone()
        return json_object(row[0]) if row else {}

    # -- documents ---------------------------------------------------------------------

    def document_statuses(self, service_id: str | None = None) -> list[DocumentStatus]:
        """Every terms' status (or one service's), in no particular order."""
        if not has_table(self._db, "document_status"):
            return []
        where, parameters = ("WHERE service_id = ?", (service_id,)) if service_id is not None else ("", ())
        rows = self._db.execute(
            "SELECT service_id, terms_type, last_success, failing_since, error_kind, error, consecutive_failures,"
            f" blocked FROM document_status {where}",
            parameters,
        ).fetchall()
        return [
            DocumentStatus(row[0], row[1], _read_date(row[2]), _read_date(row[3]), row[4] or None, row[5] or None,
                           int(row[6] or 0), int(row[7] or 0))
            for row in rows
        ]

    def document_states(self) -> dict[tuple[str, str], DocumentState]:
        rows = self._db.execute(
            "SELECT service_id, terms_type, last_success, failing_since, error_kind, consecutive_failures,"
            " fingerprint FROM document_status"
        ).fetchall()
        return {
            (row[0], row[1]): DocumentState(row[0], row[1], _parse(row[2]), _parse(row[3]), row[4], int(row[5] or 0),
                                            row[6])
            for row in rows
        }

    def validators(self) -> dict[tuple[str, str, str], SourceValidators]:
        """Validators per (service id, terms type, document id or '')."""
        rows = self._db.execute(
            "SELECT service_id, terms_type, document_id, location, etag, last_modified, snapshot_path"
            " FROM source_documents"
        ).fetchall()
        return {(row[0], row[1], row[2]): SourceValidators(*row[3:]) for row in rows}

    def record_success(
        self,
        service_id: str,
        terms_type: str,
        run_id: int,
        when: datetime,
        fingerprint: str,
        validators: Iterable[tuple[str, SourceValidators]],
    ) -> int:
        """The terms' version is up to date: reset its failure counters and keep its validators.

        `validators` are (document id or '', validators) pairs. Returns 0, the new
        number of consecutive failures.
        """
        with self._db:
            self._db.execute(
                "INSERT INTO document_status (service_id, terms_type, last_success, failing_since, error_kind, error,"
                " consecutive_failures, blocked, last_run_id, fingerprint) VALUES (?, ?, ?, NULL, NULL, NULL, 0, 0, ?, ?)"
                " ON CONFLICT (service_id, terms_type) DO UPDATE SET last_success = excluded.last_success,"
                " failing_since = NULL, error_kind = NULL, error = NULL, consecutive_failures = 0, blocked = 0,"
                " last_run_id = excluded.last_run_id, fingerprint = excluded.fingerprint",
                (service_id, terms_type, iso(when), run_id, fingerprint),
            )
            self._forget_validators(service_id, terms_type)
            self._save_validators(service_id, terms_type, validators)
        return 0

    def record_failure(
        self,
        service_id: str,
        terms_type: str,
        run_id: int,
        when: datetime,
        error_kind: str,
        error: str,
        *,
        blocked: int = 0,
    ) -> int:
        """One more consecutive failure of the terms; returns the new count.

        `blocked` is the number of its documents that were served a block page. The
        terms' validators are dropped (`forget_validators`).
        """
        with self._db:
            self._db.execute(
                "INSERT INTO document_status (service_id, terms_type, failing_since, error_kind, error,"
                " consecutive_failures, blocked, last_run_id) VALUES (?, ?, ?, ?, ?, 1, ?, ?)"
                " ON CONFLICT (service_id, terms_type) DO UPDATE SET"
                " failing_since = COALESCE(document_status.failing_since, excluded.failing_since),"
                " error_kind = excluded.error_kind, error = excluded.error,"
                " consecutive_failures = document_status.consecutive_failures + 1,"
                " blocked = excluded.blocked, last_run_id = excluded.last_run_id",
                (service_id, terms_type, iso(when), error_kind, error, blocked, run_id),
            )
            self._forget_validators(service_id, terms_type)
            (count,) = self._db.execute(
                "SELECT consecutive_failures FROM document_status WHERE service_id = ? AND terms_type = ?",
                (service_id, terms_type),
            ).fetchone()
        return int(count)

    def forget_validators(self, service_id: str, terms_type: str) -> None:
        """Drop the terms' validators: its next fetch is a full GET.

        Called when the terms' snapshots may have moved on without its version (a failed
        or interrupted terms): validators of an older fetch could otherwise earn a 304 for
        a page that differs from the latest snapshot.
        """
        with self._db:
            self._forget_validators(service_id, terms_type)

    def _forget_validators(self, service_id: str, terms_type: str) -> None:
        self._db.execute(
            "DELETE FROM source_documents WHERE service_id = ? AND terms_type = ?", (service_id, terms_type)
        )

    def set_fingerprints(self, fingerprints: Iterable[tuple[str, str, str]]) -> None:
        """Note that the latest versions of these (service, type) were extracted with `fingerprint`."""
        with self._db:
            self._db.executemany(
                "INSERT INTO document_status (service_id, terms_type, fingerprint) VALUES (?, ?, ?)"
                " ON CONFLICT (service_id, terms_type) DO UPDATE SET fingerprint = excluded.fingerprint",
                list(fingerprints),
            )

    def _save_validators(
        self, service_id: str, terms_type: str, validators: Iterable[tuple[str, SourceValidators]]
    ) -> None:
        for document_id, value in validators:
            self._db.execute(
                "INSERT INTO source_documents (service_id, terms_type, document_id, location, etag, last_modified,"
                " snapshot_path) VALUES (?, ?, ?, ?, ?, ?, ?) ON CONFLICT (service_id, terms_type, document_id)"
                " DO UPDATE SET location = excluded.location, etag = excluded.etag,"
                " last_modified = excluded.last_modified, snapshot_path = excluded.snapshot_path",
                (service_id, terms_type, document_id, value.location, value.etag, value.last_modified,
                 value.snapshot_path),
            )
