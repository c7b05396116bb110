"""Read queries over the index: what every page lists, each answered by SQLite alone.

Rows are returned as plain dicts (dates as timezone-aware datetimes) so that views can
hand them to templates and to the JSON twins alike.
"""

from __future__ import annotations

import json
import logging
import queue
import re
import sqlite3
import threading
import zlib
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from termshift.web.index import connect, open_index

log = logging.getLogger(__name__)

MATCHING_KEPT = 256  # counts of versions matching a list's filters (see Catalog._matching)
HEX_REF = re.compile(r"^[0-9a-f]{7,64}$")
SNAPSHOT_REF = re.compile(r"^[0-9a-f]{5,64}$")
VERSION_COLUMNS = (
    "id, commit_id, service_id, terms_type, document_id, path, blob, fetch_date, kind, is_first, "
    "is_technical, size, words, previous_id, size_delta, words_added, words_removed, snapshots, "
    "engine_version, words_approximate"
)
# A version whose date another, later-indexed version of the same document shares cannot
# be addressed by its date (the date resolves to the later one); its permalink uses its id.
SHADOWED = (
    "EXISTS (SELECT 1 FROM versions w WHERE w.service_id = v.service_id AND w.terms_type = v.terms_type "
    "AND w.fetch_date = v.fetch_date AND w.id > v.id) AS shadowed"
)


def to_datetime(timestamp: int | None) -> datetime | None:
    return None if timestamp is None else datetime.fromtimestamp(timestamp, UTC)


def _version(row: sqlite3.Row | dict | None) -> dict | None:
    """A version row as a dict (a dict from `Catalog._dicts` is completed in place)."""
    if row is None:
        return None
    version = row if isinstance(row, dict) else dict(row)
    version["date"] = to_datetime(version.pop("fetch_date"))
    version["snapshots"] = json.loads(version["snapshots"])
    version["is_first"] = bool(version["is_first"])
    version["is_technical"] = bool(version["is_technical"])
    version["shadowed"] = bool(version.get("shadowed", False))
    return version


def _escape_like(text: str) -> str:
    return text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")


@dataclass(frozen=True)
class ChangeFilter:
    """The filters of the latest-changes list (all optional)."""

    service_id: str | None = None
    terms_type: str | None = None
    since: datetime | None = None  # inclusive
    until: datetime | None = None  # exclusive
    technical: bool = False  # include technical upgrades


class Catalog:
    """Queries over one index file, from any thread (a small pool of connections)."""

    def __init__(self, index_path: Path, pool_size: int = 8):
        self.path = Path(index_path)
        open_index(self.path).close()  # creates the tables; moves an unreadable file aside
        self._pool: queue.LifoQueue[sqlite3.Connection] = queue.LifoQueue()
        self._pool_size = pool_size
        self._lock = threading.Lock()
        self._writer: sqlite3.Connection | None = None  # cache writes only, never waits long
        self._totals: dict[tuple, int] = {}  # versions matching filters, by (generation, filters)
        self._totals_lock = threading.Lock()

    @contextmanager
    def _connection(self) -> Iterator[sqlite3.Connection]:
        try:
            connection = self._pool.get_nowait()
        except queue.Empty:
            connection = connect(self.path)
        try:
            yield connection
        finally:
            if self._pool.qsize() < self._pool_size:
                self._pool.put(connection)
            else:
                connection.close()

    def _all(self, sql: str, parameters: tuple = ()) -> list[sqlite3.Row]:
        with self._connection() as connection:
            return connection.execute(sql, parameters).fetchall()

    def _dicts(self, sql: str, parameters: tuple = ()) -> list[dict]:
        """`_all` as dicts, built from plain tuples: `dict(sqlite3.Row)` costs 5 µs a row, and
        lists convert hundreds of rows a page."""
        with self._connection() as connection:
            cursor = connection.cursor()
            cursor.row_factory = None
            rows = cursor.execute(sql, parameters).fetchall()
            names = [column[0] for column in cursor.description]
        return [dict(zip(names, row, strict=True)) for row in rows]

    def _one(self, sql: str, parameters: tuple = ()) -> sqlite3.Row | None:
        with self._connection() as connection:
            return connection.execute(sql, parameters).fetchone()

    def generation(self) -> str:
        """Changes whenever the index is refreshed: a key for caching what is derived from it."""
        row = self._one("SELECT group_concat(name || ':' || coalesce(last_commit, '') || ':' || "
                        "coalesce(indexed_at, ''), ';') FROM repositories")
        return row[0] or ""

    def versions_count(self) -> int:
        return self._one("SELECT count(*) FROM versions")[0]

    def close(self) -> None:
        if self._writer is not None:
            self._writer.close()
        while True:
            try:
                self._pool.get_nowait().close()
            except queue.Empty:
                return

    # --- the collection

    def documents(self, service_id: str | None = None) -> list[dict]:
        """Every document (or a service's), with its current version and its last change."""
        where = "WHERE d.service_id = ?" if service_id is not None else ""
        rows = self._all(
            f"""
            SELECT d.service_id, d.terms_type, d.versions, d.changes, d.first_date, d.removed,
                d.last_change_date, latest.fetch_date AS latest_date, latest.commit_id AS latest_commit,
                change.commit_id AS last_change_commit, change.words_added AS last_change_added,
                change.words_removed AS last_change_removed, change.kind AS last_change_kind,
                change.is_first AS last_change_is_first
            FROM documents d
            JOIN versions latest ON latest.id = d.latest_id
            LEFT JOIN versions change ON change.id = d.last_change_id
            {where}
            ORDER BY d.service_id, d.terms_type
            """,
            (service_id,) if service_id is not None else (),
        )
        documents = []
        for row in rows:
            document = dict(row)
            for key in ("first_date", "last_change_date", "latest_date"):
                document[key] = to_datetime(document[key])
            document["removed"] = bool(document["removed"])
            documents.append(document)
        return documents

    def service_ids(self) -> list[str]:
        return [row[0] for row in self._all("SELECT DISTINCT service_id FROM documents ORDER BY service_id")]

    def terms_types(self) -> list[str]:
        return [row[0] for row in self._all("SELECT DISTINCT terms_type FROM documents ORDER BY terms_type")]

    def has_service(self, service_id: str) -> bool:
        return self._one("SELECT 1 FROM documents WHERE service_id = ? LIMIT 1", (service_id,)) is not None

    def document(self, service_id: str, terms_type: str) -> dict | None:
        found = self.documents(service_id)
        return next((d for d in found if d["terms_type"] == terms_type), None)

    def totals(self) -> dict:
        row = self._one(
            "SELECT count(DISTINCT service_id) AS services, count(*) AS documents, "
            "coalesce(sum(versions), 0) AS versions FROM documents"
        )
        return dict(row) if row else {"services": 0, "documents": 0, "versions": 0}

    # --- versions

    def timeline(self, service_id: str, terms_type: str, *, technical: bool, limit: int,
                 offset: int) -> tuple[list[dict], int]:
        """A document's versions, newest first, and how many there are."""
        condition = "" if technical else "AND is_technical = 0"
        rows = self._dicts(
            f"SELECT {VERSION_COLUMNS}, {SHADOWED} FROM versions v WHERE service_id = ? AND terms_type = ? "
            f"{condition} ORDER BY fetch_date DESC, id DESC LIMIT ? OFFSET ?",
            (service_id, terms_type, limit, offset),
        )
        total = self._one(
            f"SELECT count(*) FROM versions WHERE service_id = ? AND terms_type = ? {condition}",
            (service_id, terms_type),
        )[0]
        return [_version(row) for row in rows], total

    def timeline_points(self, service_id: str, terms_type: str, *, technical: bool) -> list[dict]:
        """Every version of a document, oldest first, with only what its timeline picture
        needs (date, words, kind flags, and what its links need): a document may have
        thousands, and this runs on each view of its page."""
        condition = "" if technical else "AND is_technical = 0"
        rows = self._dicts(
            f"SELECT id, commit_id, service_id, terms_type, fetch_date, is_first, is_technical, previous_id, "
            f"words_added, words_removed, {SHADOWED} FROM versions v WHERE service_id = ? AND terms_type = ? "
            f"{condition} ORDER BY fetch_date, id",
            (service_id, terms_type),
        )
        for point in rows:
            point["date"] = to_datetime(point.pop("fetch_date"))
        return rows

    def version_by_id(self, service_id: str, terms_type: str, ref: str) -> dict | None:
        """The document's version whose commit id is or starts with `ref` (hex)."""
        if not HEX_REF.match(ref):
            return None
        return _version(self._one(
            f"SELECT {VERSION_COLUMNS}, {SHADOWED} FROM versions v WHERE service_id = ? AND terms_type = ? "
            "AND commit_id >= ? AND commit_id < ? ORDER BY id DESC LIMIT 1",
            (service_id, terms_type, ref, ref + "g"),
        ))

    def version_at(self, service_id: str, terms_type: str, moment: datetime) -> dict | None:
        """The version in force at `moment`: the latest recorded at or before it."""
        return _version(self._one(
            f"SELECT {VERSION_COLUMNS}, {SHADOWED} FROM versions v WHERE service_id = ? AND terms_type = ? "
            "AND fetch_date <= ? ORDER BY fetch_date DESC, id DESC LIMIT 1",
            (service_id, terms_type, int(moment.timestamp())),
        ))

    def version_by_rowid(self, rowid: int | None) -> dict | None:
        if rowid is None:
            return None
        return _version(self._one(f"SELECT {VERSION_COLUMNS}, {SHADOWED} FROM versions v WHERE id = ?", (rowid,)))

    def neighbours(self, version: dict, *, technical: bool) -> tuple[dict | None, dict | None]:
        """The versions just before and just after `version` in the document's timeline."""
        condition = "" if technical else "AND is_technical = 0"
        stamp = int(version["date"].timestamp())
        before = self._one(
            f"SELECT {VERSION_COLUMNS}, {SHADOWED} FROM versions v WHERE service_id = ? AND terms_type = ? "
            f"{condition} AND (fetch_date < ? OR (fetch_date = ? AND id < ?)) "
            "ORDER BY fetch_date DESC, id DESC LIMIT 1",
            (version["service_id"], version["terms_type"], stamp, stamp, version["id"]),
        )
        after = self._one(
            f"SELECT {VERSION_COLUMNS}, {SHADOWED} FROM versions v WHERE service_id = ? AND terms_type = ? "
            f"{condition} AND (fetch_date > ? OR (fetch_date = ? AND id > ?)) "
            "ORDER BY fetch_date ASC, id ASC LIMIT 1",
            (version["service_id"], version["terms_type"], stamp, stamp, version["id"]),
        )
        return _version(before), _version(after)

    def latest_changes(self, filters: ChangeFilter, *, limit: int, offset: int) -> tuple[list[dict], int]:
        """Versions across the collection, newest first, filtered; and how many match."""
        conditions, parameters = _change_conditions(filters)
        where = ("WHERE " + " AND ".join(conditions)) if conditions else ""
        rows = self._dicts(
            f"SELECT {VERSION_COLUMNS}, {SHADOWED} FROM versions v {where} "
            "ORDER BY fetch_date DESC, id DESC LIMIT ? OFFSET ?",
            (*parameters, limit, offset),
        )
        return [_version(row) for row in rows], self._matching(filters, where, parameters)

    def _matching(self, filters: ChangeFilter, where: str, parameters: list) -> int:
        """How many versions `filters` select: counted once per index generation, not on every
        page of the list (a count over the whole index: 1.5 ms at 40,000 versions)."""
        key = (self.generation(), filters)
        with self._totals_lock:
            total = self._totals.get(key)
        if total is None:
            total = self._one(f"SELECT count(*) FROM versions {where}", tuple(parameters))[0]
            with self._totals_lock:
                if len(self._totals) >= MATCHING_KEPT:
                    self._totals.clear()
                self._totals[key] = total
        return total

    def monthly_activity(self, filters: ChangeFilter) -> list[dict]:
        """Changes per service and month ("YYYY-MM", UTC) matching `filters`, first records left out:
        [{"service_id", "month", "changes", "words_added", "words_removed"}]."""
        conditions, parameters = _change_conditions(filters)
        conditions.insert(0, "is_first = 0")
        rows = self._all(
            "SELECT service_id, strftime('%Y-%m', fetch_date, 'unixepoch') AS month, count(*) AS changes, "
            "sum(words_added) AS words_added, sum(words_removed) AS words_removed FROM versions "
            f"WHERE {' AND '.join(conditions)} GROUP BY service_id, month",
            tuple(parameters),
        )
        return [dict(row) for row in rows]

    # --- snapshots

    def snapshot(self, ref: str) -> dict | None:
        """The snapshot whose commit id is or starts with `ref`."""
        if not SNAPSHOT_REF.match(ref):
            return None
        row = self._one(
            "SELECT * FROM snapshots WHERE commit_id >= ? AND commit_id < ? ORDER BY id LIMIT 1",
            (ref, ref + "g"),
        )
        if row is None:
            return None
        snapshot = dict(row)
        snapshot["date"] = to_datetime(snapshot.pop("fetch_date"))
        return snapshot

    def versions_from_snapshot(self, commit_id: str) -> list[dict]:
        """Versions whose message names this snapshot (by its full id or an abbreviation)."""
        prefixes = tuple(commit_id[:length] for length in range(5, len(commit_id) + 1))
        marks = ", ".join("?" * len(prefixes))
        rows = self._dicts(
            f"SELECT {VERSION_COLUMNS}, {SHADOWED} FROM versions v WHERE id IN "
            f"(SELECT version_id FROM version_snapshots WHERE snapshot_ref IN ({marks})) "
            "ORDER BY fetch_date, id",
            prefixes,
        )
        return [_version(row) for row in rows]

    def has_snapshots(self) -> bool:
        return self._one("SELECT 1 FROM snapshots LIMIT 1") is not None

    # --- search

    def search(self, words: list[str], limit: int = 50) -> list[dict]:
        """Documents whose version in force contains every word (the last one as a prefix)."""
        if not words:
            return []
        terms = [f'"{word.replace(chr(34), "")}"' for word in words]
        terms[-1] += "*"
        rows = self._all(
            "SELECT d.service_id, d.terms_type, "
            "snippet(current_text, 0, char(2), char(3), '…', 16) AS snippet "
            "FROM current_text JOIN documents d ON d.id = current_text.rowid "
            "WHERE current_text MATCH ? ORDER BY rank LIMIT ?",
            (" ".join(terms), limit),
        )
        return [dict(row) for row in rows]

    def documents_matching(self, text: str) -> list[dict]:
        """Documents whose service id or terms type contains `text` (case-insensitive)."""
        pattern = f"%{_escape_like(text)}%"
        rows = self._all(
            "SELECT service_id, terms_type FROM documents WHERE service_id LIKE ? ESCAPE '\\' "
            "OR terms_type LIKE ? ESCAPE '\\' ORDER BY service_id, terms_type",
            (pattern, pattern),
        )
        return [dict(row) for row in rows]

    # --- caches (content-addressed: keys are blob ids)

    def cached(self, table: str, key: tuple, format_version: int) -> bytes | None:
        columns = {"diff_cache": ("old_blob", "new_blob"), "render_cache": ("blob",)}[table]
        value_column = "payload" if table == "diff_cache" else "html"
        where = " AND ".join(f"{column} = ?" for column in columns)
        row = self._one(f"SELECT {value_column} FROM {table} WHERE {where} AND format = ?", (*key, format_version))
        return zlib.decompress(row[0]) if row else None

    def store(self, table: str, key: tuple, format_version: int, value: bytes) -> None:
        """Remember a computed value; skipped (not waited for) while a refresh holds the database."""
        placeholders = ", ".join("?" * (len(key) + 2))
        with self._lock:
            if self._writer is None:
                self._writer = connect(self.path, busy_timeout=0.05)
                # A cache: a power cut may lose its last entries (recomputed), never corrupt it
                # (WAL). Not waiting for fsync on each write saves a first-view diff ~5 ms.
                self._writer.execute("PRAGMA synchronous=NORMAL")
            try:
                self._writer.execute(
                    f"INSERT OR REPLACE INTO {table} VALUES ({placeholders})",
                    (*key, format_version, zlib.compress(value, 1)),  # level 1: 25 % faster than 3, 10 % larger
                )
                self._writer.commit()
            except sqlite3.OperationalError as error:  # "database is locked": a refresh is writing
                self._writer.rollback()
                log.info("cache write skipped: %s", error)


def _change_conditions(filters: ChangeFilter) -> tuple[list[str], list[object]]:
    """The SQL conditions (on the versions table) and their parameters for `filters`."""
    conditions: list[str] = [] if filters.technical else ["is_technical = 0"]
    parameters: list[object] = []
    for column, value in (("service_id", filters.service_id), ("terms_type", filters.terms_type)):
        if value:
            conditions.append(f"{column} = ?")
            parameters.append(value)
    for condition, moment in (("fetch_date >= ?", filters.since), ("fetch_date < ?", filters.until)):
        if moment:
            conditions.append(condition)
            parameters.append(int(moment.timestamp()))
    return conditions, parameters
