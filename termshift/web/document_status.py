"""Tracking status of each document, as the tracking run's `runs.sqlite` says.

The tracking engine owns that database (termshift.trackers.run_store); the viewer reads it
through `RunStore.document_statuses`. Anything missing (the file, the table) reads as
"unknown" rather than failing the page.
"""

from __future__ import annotations

import logging
import os
import sqlite3
import threading
from dataclasses import asdict, dataclass
from datetime import datetime
from pathlib import Path

from termshift.trackers.run_store import DocumentStatus as StoredStatus
from termshift.trackers.run_store import RunStore

log = logging.getLogger(__name__)

# Statuses read, by (database, service, `runs_stamp`): pages ask on every view, and the
# database changes once per tracking run of a document.
_READ: dict[tuple, dict] = {}
_READ_KEPT = 512
_read_lock = threading.Lock()


@dataclass(frozen=True)
class DocumentStatus:
    state: str  # "ok" | "failing" | "blocked" | "unknown"
    last_success: datetime | None = None
    failing_since: datetime | None = None
    error_kind: str | None = None
    error: str | None = None
    consecutive_failures: int = 0

    def to_json(self) -> dict:
        return asdict(self)


UNKNOWN = DocumentStatus("unknown")


def _status(stored: StoredStatus) -> DocumentStatus:
    if stored.blocked:
        state = "blocked"
    elif stored.failing_since is not None or stored.consecutive_failures > 0:
        state = "failing"
    elif stored.last_success is not None:
        state = "ok"
    else:
        state = "unknown"
    return DocumentStatus(
        state,
        last_success=stored.last_success,
        failing_since=stored.failing_since,
        error_kind=stored.error_kind,
        error=stored.error,
        consecutive_failures=stored.consecutive_failures,
    )


def runs_stamp(runs_db: Path | str | None) -> tuple | None:
    """Changes whenever the tracking database does: the tracker commits into its write-ahead
    log (`-wal`), and the database file itself only changes at a checkpoint."""
    if not runs_db:
        return None
    stamps = []
    for path in (str(runs_db), f"{runs_db}-wal"):
        try:
            found = os.stat(path)
        except OSError:
            stamps.append(None)
        else:
            stamps.append((found.st_mtime_ns, found.st_size))
    return tuple(stamps)


def read_statuses(runs_db: Path | None, service_id: str | None = None) -> dict[tuple[str, str], DocumentStatus]:
    """Status per (service id, terms type); empty when nothing can be read. Read again only
    when the database has changed (`runs_stamp`)."""
    if runs_db is None:
        return {}
    key = (str(runs_db), service_id, runs_stamp(runs_db))
    with _read_lock:
        found = _READ.get(key)
    if found is not None:
        return found
    try:
        store = RunStore.open_read_only(Path(runs_db), timeout=2)
        if store is None:
            return {}
        with store:
            stored = store.document_statuses(service_id)
    except sqlite3.Error as error:
        log.warning("%s: cannot read document_status: %s", runs_db, error)
        return {}
    found = {(item.service_id, item.terms_type): _status(item) for item in stored}
    with _read_lock:
        if len(_READ) >= _READ_KEPT:
            _READ.clear()
        _READ[key] = found
    return found
