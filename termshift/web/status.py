"""Tracking status of each document, read from the tracking run's `runs.sqlite`.

The tracking engine owns that database; the viewer only reads one table, assumed to be
`document_status(service_id, terms_type, last_success, failing_since, error_kind, error,
consecutive_failures, blocked)`. Anything missing (the file, the table, a column) reads
as "unknown" rather than failing the page.
"""

from __future__ import annotations

import logging
import sqlite3
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from pathlib import Path

log = logging.getLogger(__name__)

COLUMNS = ("last_success", "failing_since", "error_kind", "error", "consecutive_failures", "blocked")


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


def _date(value) -> datetime | None:
    """Dates may be stored as ISO text or epoch seconds; anything else is ignored."""
    if value in (None, ""):
        return None
    try:
        if isinstance(value, int | float):
            return datetime.fromtimestamp(value, UTC)
        moment = datetime.fromisoformat(str(value).replace("Z", "+00:00"))
        return moment if moment.tzinfo else moment.replace(tzinfo=UTC)
    except (ValueError, OverflowError, OSError):
        return None


def _status(row: dict) -> DocumentStatus:
    failing_since = _date(row.get("failing_since"))
    if row.get("blocked"):
        state = "blocked"
    elif failing_since is not None or (row.get("consecutive_failures") or 0) > 0:
        state = "failing"
    elif row.get("last_success") is not None:
        state = "ok"
    else:
        state = "unknown"
    return DocumentStatus(
        state,
        last_success=_date(row.get("last_success")),
        failing_since=failing_since,
        error_kind=row.get("error_kind"),
        error=row.get("error"),
        consecutive_failures=int(row.get("consecutive_failures") or 0),
    )


def read_statuses(runs_db: Path | None, service_id: str | None = None) -> dict[tuple[str, str], DocumentStatus]:
    """Status per (service id, terms type); empty when nothing can be read."""
    if runs_db is None or not Path(runs_db).is_file():
        return {}
    try:
        connection = sqlite3.connect(f"file:{runs_db}?mode=ro", uri=True, timeout=2)
    except sqlite3.Error:
        return {}
    try:
        present = {row[1] for row in connection.execute("PRAGMA table_info(document_status)")}
        if not {"service_id", "terms_type"} <= present:
            return {}
        columns = [column for column in COLUMNS if column in present]
        select = ", ".join(["service_id", "terms_type", *columns])
        where, parameters = ("WHERE service_id = ?", (service_id,)) if service_id is not None else ("", ())
        rows = connection.execute(f"SELECT {select} FROM document_status {where}", parameters).fetchall()
    except sqlite3.Error as error:
        log.warning("%s: cannot read document_status: %s", runs_db, error)
        return {}
    finally:
        connection.close()
    statuses = {}
    for row in rows:
        values = dict(zip(["service_id", "terms_type", *columns], row, strict=True))
        statuses[(values["service_id"], values["terms_type"])] = _status(values)
    return statuses
