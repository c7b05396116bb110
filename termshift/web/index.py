"""The viewer's SQLite index of the versions and snapshots repositories.

Requests never walk git history: everything a page lists (documents, timelines, latest
changes, sizes, word counts, snapshot links) comes from this index. It is built
incrementally: each repository's last indexed commit is recorded, and a refresh reads
only the commits after it, with one `git log` pass plus `git cat-file --batch` for the
contents it needs. If that commit is no longer an ancestor of HEAD (history was
rewritten), the repository's part of the index is rebuilt from scratch.

A first build of a large archive takes a while, so new versions are committed to the
index in batches (`BATCH_VERSIONS`): pages show what is indexed so far, a progress
callback reports (versions indexed, versions in all), and an interrupted build resumes
from its last batch. The index is only a cache: a file that is not an SQLite database is
moved aside and rebuilt.

Public entry points for other modules (this module owns `index.sqlite`; pages read it
through `termshift.web.catalog`, other modules through these functions, never with SQL):
`refresh_index(source, index_path=None) -> dict` (statistics; called after each
tracking run by termshift.web.index_listener) and `word_counts(source, index_path=None)` (the dataset export).
"""

from __future__ import annotations

import hashlib
import json
import logging
import mimetypes
import os
import sqlite3
import sys
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

from filelock import FileLock

from termshift.archive_repo.blob_reader import BlobReader, blob_sizes
from termshift.archive_repo.log_reader import (
    LoggedCommit,
    check_repository,
    commits_between,
    count_commits,
    head_commit,
    is_ancestor,
)
from termshift.archive_repo.messages import (
    RecordKind,
    parse_record_path,
    parse_subject,
    parse_trailers,
    snapshot_ids_in,
    split_message,
)
from termshift.sqlite_wal import enable_wal
from termshift.web.index_workers import Job, statistics_pool

log = logging.getLogger(__name__)

SCHEMA_VERSION = 10  # 7: words_approximate, search_pending; 8: costly regions anchored on unique words;
# 9: lines aligned in one C++ call when cheap; 10: comparisons computed one way round (8-10: recount)
KINDS = {
    RecordKind.FIRST_RECORD: "first",
    RecordKind.CHANGE: "change",
    RecordKind.TECHNICAL_UPGRADE: "technical",
}
# Below this many new commits, word counts are computed in-process; above it, by worker
# processes (one per core), each with its own `git cat-file`.
PARALLEL_THRESHOLD = 500  # a worker costs about 0.5 s of CPU to start: worth it from a few hundred versions
# Versions of a document handed to a worker at once (each job also reads the version before).
CHUNK_VERSIONS = 32
# New versions committed to the index at once: pages see a first build progress.
BATCH_VERSIONS = 2_000

Progress = Callable[[int, int], None]  # (versions indexed, versions in all)

SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);

-- One row per repository: where it is and how far it has been indexed.
CREATE TABLE IF NOT EXISTS repositories (
    name TEXT PRIMARY KEY,            -- 'versions' or 'snapshots'
    path TEXT NOT NULL,
    last_commit TEXT,                 -- the HEAD indexed last; NULL before the first build
    indexed_at INTEGER,               -- epoch seconds
    records INTEGER NOT NULL DEFAULT 0
);

-- One row per version: a Markdown file changed by a commit of the versions repository.
-- id follows history order (parents first), which breaks ties between equal dates.
CREATE TABLE IF NOT EXISTS versions (
    id INTEGER PRIMARY KEY,
    commit_id TEXT NOT NULL,
    service_id TEXT NOT NULL,
    terms_type TEXT NOT NULL,
    document_id TEXT,
    path TEXT NOT NULL,
    blob TEXT NOT NULL,
    fetch_date INTEGER NOT NULL,      -- author date = OTA's fetch date, epoch seconds UTC
    kind TEXT NOT NULL,               -- first | change | technical | other (subject prefix)
    is_first INTEGER NOT NULL,        -- no earlier version of this document
    is_technical INTEGER NOT NULL,
    size INTEGER NOT NULL,            -- bytes
    words INTEGER NOT NULL,
    previous_id INTEGER,              -- the version this commit changed (history order)
    size_delta INTEGER NOT NULL,
    words_added INTEGER NOT NULL,
    words_removed INTEGER NOT NULL,
    snapshots TEXT NOT NULL,          -- JSON [{"id": "<hex>", "url": "<reference in the body>"}]
    engine_version TEXT,
    words_approximate INTEGER NOT NULL DEFAULT 0  -- added/removed estimated (diff over its time budget)
);
CREATE INDEX IF NOT EXISTS versions_by_commit ON versions (commit_id);
CREATE INDEX IF NOT EXISTS versions_by_document ON versions (service_id, terms_type, fetch_date, id);
CREATE INDEX IF NOT EXISTS versions_by_date ON versions (is_technical, fetch_date, id);
CREATE INDEX IF NOT EXISTS versions_by_document_kind ON versions (service_id, terms_type, is_technical, fetch_date, id);

-- Which snapshot(s) each version says it was extracted from (ids may be abbreviated).
CREATE TABLE IF NOT EXISTS version_snapshots (
    version_id INTEGER NOT NULL,
    snapshot_ref TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS version_snapshots_by_ref ON version_snapshots (snapshot_ref);
CREATE INDEX IF NOT EXISTS version_snapshots_by_version ON version_snapshots (version_id);

-- One row per snapshot: a raw page changed by a commit of the snapshots repository.
CREATE TABLE IF NOT EXISTS snapshots (
    id INTEGER PRIMARY KEY,
    commit_id TEXT NOT NULL,
    service_id TEXT NOT NULL,
    terms_type TEXT NOT NULL,
    document_id TEXT,
    path TEXT NOT NULL,
    blob TEXT NOT NULL,
    extension TEXT NOT NULL,
    mime_type TEXT NOT NULL,
    fetch_date INTEGER NOT NULL,
    kind TEXT NOT NULL,
    size INTEGER NOT NULL,
    location TEXT,                    -- X-source-document-location trailer
    fetcher TEXT                      -- X-fetcher trailer
);
CREATE INDEX IF NOT EXISTS snapshots_by_commit ON snapshots (commit_id);
CREATE INDEX IF NOT EXISTS snapshots_by_document ON snapshots (service_id, terms_type, fetch_date);

-- One row per document (service, terms type): what the collection pages list.
CREATE TABLE IF NOT EXISTS documents (
    id INTEGER PRIMARY KEY,           -- stable: also the rowid of the document's search entry
    service_id TEXT NOT NULL,
    terms_type TEXT NOT NULL,
    versions INTEGER NOT NULL,
    changes INTEGER NOT NULL,         -- versions that are not technical upgrades
    first_date INTEGER NOT NULL,
    latest_id INTEGER NOT NULL,       -- the version in force now
    last_change_id INTEGER,           -- the newest version that is not a technical upgrade
    last_change_date INTEGER,
    removed INTEGER NOT NULL DEFAULT 0,  -- the file was deleted from the repository
    UNIQUE (service_id, terms_type)
);

-- Full-text search over the version in force of each document (rowid = documents.id).
CREATE VIRTUAL TABLE IF NOT EXISTS current_text USING fts5(
    content, tokenize = 'unicode61 remove_diacritics 2'
);
-- Documents whose search entry is to be brought up to date when the refresh ends (kept
-- across an interrupted build, so none is forgotten).
CREATE TABLE IF NOT EXISTS search_pending (document_id INTEGER PRIMARY KEY);

-- Content-addressed caches, kept across rebuilds: keys are blob ids.
CREATE TABLE IF NOT EXISTS diff_cache (
    old_blob TEXT NOT NULL, new_blob TEXT NOT NULL, format INTEGER NOT NULL, payload BLOB NOT NULL,
    PRIMARY KEY (old_blob, new_blob, format)
);
CREATE TABLE IF NOT EXISTS render_cache (
    blob TEXT NOT NULL, format INTEGER NOT NULL, html BLOB NOT NULL, PRIMARY KEY (blob, format)
);
"""
INDEX_TABLES = ("versions", "version_snapshots", "snapshots", "documents", "current_text", "repositories",
                "search_pending")


@dataclass(frozen=True)
class Sources:
    """Where the archive is: the versions repository, optionally snapshots, and the index file."""

    versions: Path
    snapshots: Path | None
    index: Path

    @classmethod
    def resolve(cls, source: Path | str | tuple | dict, index_path: Path | None = None) -> Sources:
        """From a data folder (`versions/`, `snapshots/`, `index.sqlite` inside), or repositories.

        `source` may be a data folder, a (versions, snapshots) tuple, or a dict with
        keys `versions` and `snapshots`.
        """
        if isinstance(source, dict):
            versions, snapshots = Path(source["versions"]), source.get("snapshots")
        elif isinstance(source, tuple):
            versions, snapshots = Path(source[0]), source[1] if len(source) > 1 else None
        else:
            data = Path(source)
            versions = data / "versions"
            snapshots = data / "snapshots" if (data / "snapshots").exists() else None
            index_path = index_path or data / "index.sqlite"
        snapshots = Path(snapshots) if snapshots else None
        return cls(versions, snapshots, Path(index_path) if index_path else default_index_path(versions))


def default_index_path(versions_repo: Path) -> Path:
    """Index of a repository given alone: in the user's cache folder, one file per repository."""
    cache = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "termshift"
    key = hashlib.sha1(str(Path(versions_repo).resolve()).encode()).hexdigest()[:12]
    return cache / f"index-{key}.sqlite"


def connect(path: Path, *, busy_timeout: float = 30.0) -> sqlite3.Connection:
    """A connection in WAL mode, so pages read while a refresh writes."""
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    connection = sqlite3.connect(path, check_same_thread=False, timeout=busy_timeout)
    try:
        enable_wal(connection)
    except sqlite3.Error:
        connection.close()
        raise
    connection.row_factory = sqlite3.Row
    return connection


def open_index(path: Path) -> sqlite3.Connection:
    """A connection to the index with its tables; an unreadable file is moved aside first.

    The index is a cache of the repositories: a file that is not a database (a disk error,
    a half-copied backup, anything written over it) is renamed `<name>.corrupt-<time>`
    with its -wal and -shm files, logged, and a new index is built.
    """
    path = Path(path)
    try:
        connection = connect(path)
        ensure_schema(connection)
        return connection
    except sqlite3.DatabaseError as error:
        if "locked" in str(error) or "busy" in str(error):
            raise
        reason = str(error)
    with FileLock(str(path) + ".lock"):
        aside = path.with_name(f"{path.name}.corrupt-{time.strftime('%Y%m%dT%H%M%S')}")
        try:
            probe = connect(path)  # another process may have replaced it meanwhile
            ensure_schema(probe)
            return probe
        except sqlite3.DatabaseError:
            pass
        for suffix in ("", "-wal", "-shm"):
            part = Path(str(path) + suffix)
            if part.exists():
                part.replace(Path(str(aside) + suffix))
        log.warning("%s: not a readable index (%s); moved aside to %s, rebuilding it", path, reason, aside)
    connection = connect(path)
    ensure_schema(connection)
    return connection


def ensure_schema(connection: sqlite3.Connection) -> None:
    """Create the tables; drop the index tables first when they come from another schema version."""
    connection.executescript("CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);")
    row = connection.execute("SELECT value FROM meta WHERE key = 'schema_version'").fetchone()
    if row is None or int(row[0]) != SCHEMA_VERSION:
        for table in (*INDEX_TABLES, "diff_cache", "render_cache"):
            connection.execute(f"DROP TABLE IF EXISTS {table}")
    connection.executescript(SCHEMA)
    connection.execute(
        "INSERT OR REPLACE INTO meta (key, value) VALUES ('schema_version', ?)", (str(SCHEMA_VERSION),)
    )
    connection.commit()


# ------------------------------------------------------------------------- commit parsing


@dataclass(slots=True)
class NewRecord:
    """A record found in a new commit, before its statistics are computed."""

    commit_id: str
    service_id: str
    terms_type: str
    document_id: str | None
    path: str
    extension: str
    blob: str
    fetch_date: int
    kind: str
    metadata: dict[str, str]
    snapshots: list[dict[str, str | None]] = field(default_factory=list)


def record_kind(subject: str) -> str:
    kind = parse_subject(subject)
    return KINDS.get(kind, "other") if kind else "other"


def snapshot_references(body: str) -> list[dict[str, str | None]]:
    """The snapshot ids a version body names, each with the reference it appears in.

    OTA writes `snapshotIdentiferTemplate` with the id inside, e.g. a GitHub commit URL;
    keeping that reference lets the viewer link to a snapshot it does not have locally.
    """
    references = []
    seen = set()
    urls = [word for word in body.split() if word.startswith(("https://", "http://"))]
    for snapshot_id in snapshot_ids_in(body):
        if snapshot_id in seen:
            continue
        seen.add(snapshot_id)
        url = next((candidate for candidate in urls if snapshot_id in candidate), None)
        references.append({"id": snapshot_id, "url": url})
    return references


def records_in(commits: Iterable[LoggedCommit], want_markdown: bool) -> Iterator[NewRecord | tuple]:
    """Records of new commits; a deleted record file yields ("removed", service, type)."""
    for commit in commits:
        subject, body = split_message(commit.message)
        kind = record_kind(subject)
        trailers = parse_trailers(commit.message)
        for change in commit.changes:
            parsed = parse_record_path(change.path)
            if parsed is None:
                continue
            service_id, terms_type, document_id, extension = parsed
            if (extension == "md") != want_markdown:
                continue
            if change.status == "D":
                yield ("removed", service_id, terms_type)
                continue
            yield NewRecord(  # names interned: a first build holds every new record at once
                commit.id, sys.intern(service_id), sys.intern(terms_type), document_id, change.path, extension,
                change.blob,
                commit.timestamp, kind, trailers, snapshot_references(body) if want_markdown else [],
            )


# ------------------------------------------------------------------------- the indexer


class Indexer:
    """Brings the index up to date with the repositories."""

    def __init__(self, sources: Sources, progress: Progress | None = None):
        self.sources = sources
        self.progress = progress
        self.connection = open_index(sources.index)

    def close(self) -> None:
        self.connection.close()

    def refresh(self) -> dict:
        """Index new commits of both repositories; returns statistics per repository."""
        stats: dict[str, dict] = {}
        with FileLock(str(self.sources.index) + ".lock"):
            stats["versions"] = self._refresh_repository("versions", self.sources.versions)
            if self.sources.snapshots is not None and Path(self.sources.snapshots).exists():
                stats["snapshots"] = self._refresh_repository("snapshots", self.sources.snapshots)
        return stats

    def versions_indexed(self) -> int:
        return self.connection.execute("SELECT count(*) FROM versions").fetchone()[0]

    def _report(self, indexed: int, total: int) -> None:
        if self.progress is not None:
            self.progress(indexed, total)

    def _refresh_repository(self, name: str, repo: Path) -> dict:
        started = time.perf_counter()
        check_repository(repo)
        head = head_commit(repo)
        row = self.connection.execute(
            "SELECT path, last_commit FROM repositories WHERE name = ?", (name,)
        ).fetchone()
        last = row["last_commit"] if row else None
        rebuilt = False
        if row is not None and (row["path"] != str(Path(repo).resolve()) or (
            last and (head is None or not is_ancestor(repo, last, head))
        )):
            log.warning("%s: history was rewritten or the repository changed; rebuilding its index", repo)
            self._forget(name)
            last, rebuilt = None, True
        new = 0
        if head is not None and head != last:
            commits = commits_between(repo, last, head)
            if name == "versions":
                new = self._index_versions(repo, commits, last)
            else:
                new = self._index_snapshots(repo, commits)
                self._checkpoint(name, repo, head, new)
        if new:
            # Fresh statistics keep SQLite's query plans right as the tables grow.
            self.connection.execute("ANALYZE" if new > 1000 or rebuilt else "PRAGMA optimize")
        self._checkpoint(name, repo, head, 0)
        return {"new": new, "rebuilt": rebuilt, "head": head, "seconds": round(time.perf_counter() - started, 3)}

    def _checkpoint(self, name: str, repo: Path, commit: str | None, new: int) -> None:
        """Record that everything up to `commit` is indexed, and commit the transaction."""
        self.connection.execute(
            "INSERT INTO repositories (name, path, last_commit, indexed_at, records) VALUES (?, ?, ?, ?, ?) "
            "ON CONFLICT (name) DO UPDATE SET path = excluded.path, last_commit = excluded.last_commit, "
            "indexed_at = excluded.indexed_at, records = records + excluded.records",
            (name, str(Path(repo).resolve()), commit, int(time.time()), new),
        )
        self.connection.commit()

    def _forget(self, name: str) -> None:
        tables = ("snapshots",) if name == "snapshots" else (
            "versions", "version_snapshots", "documents", "current_text", "search_pending")
        for table in tables:
            self.connection.execute(f"DELETE FROM {table}")
        self.connection.execute("DELETE FROM repositories WHERE name = ?", (name,))

    # --- versions

    def _index_versions(self, repo: Path, commits: Iterable[LoggedCommit], last: str | None) -> int:
        """Index new versions in batches of about BATCH_VERSIONS, each committed when done.

        The whole new log is read first (one `git log`: seconds even for 40,000 commits),
        so the number of versions to index is known from the start; the statistics jobs of
        every batch are then queued at once, and batches are written as their jobs return.
        """
        commits = list(commits)
        per_commit = [list(records_in([commit], want_markdown=True)) for commit in commits]
        expected = sum(1 for items in per_commit for item in items if not isinstance(item, tuple))
        already = self.versions_indexed()
        self._report(already, already + expected)
        before = count_commits(repo, None, last) if last else 0
        pool = statistics_pool(repo, expected, PARALLEL_THRESHOLD)
        try:
            jobs = _JobPlanner(pool, self._latest_version)
            batches = [(batch, jobs.submit(batch[1])) for batch in _batches(commits, per_commit)]
            indexed = commits_read = unrecorded = 0
            for (batch_commits, records, removed), (first, positions) in batches:
                results = pool.take(list(range(first, first + len(positions))))
                statistics = {
                    position: result
                    for number, job_positions in enumerate(positions, start=first)
                    for position, result in zip(job_positions, results[number], strict=True)
                }
                self._write_batch(records, statistics, removed)
                indexed += len(records)
                unrecorded += len(records)
                commits_read += len(batch_commits)
                # Commit the batch if the index is then whole up to its last commit: always in
                # a linear history; after a merge, once every branch before it has been read.
                if count_commits(repo, None, batch_commits[-1].id) == before + commits_read:
                    self._checkpoint("versions", repo, batch_commits[-1].id, unrecorded)
                    unrecorded = 0
                self._report(already + indexed, already + expected)
            self._update_search(repo)
        finally:
            pool.close()
        return expected

    def _write_batch(self, records: list[NewRecord], statistics: dict[int, tuple],
                     removed: set[tuple[str, str]]) -> None:
        documents = {(r.service_id, r.terms_type) for r in records}
        self._insert_versions(records, statistics, self._latest_versions(documents))
        touched = documents | removed
        self._update_documents(touched, removed)
        self.connection.executemany(
            "INSERT OR IGNORE INTO search_pending (document_id) "
            "SELECT id FROM documents WHERE service_id = ? AND terms_type = ?",
            sorted(touched),
        )

    def _latest_version(self, document: tuple[str, str]) -> sqlite3.Row | None:
        """The last indexed version (history order) of a document, for incremental runs."""
        return self.connection.execute(
            "SELECT id, blob, size, words FROM versions WHERE service_id = ? AND terms_type = ? "
            "ORDER BY id DESC LIMIT 1",
            document,
        ).fetchone()

    def _latest_versions(self, documents: set[tuple[str, str]]) -> dict[tuple[str, str], sqlite3.Row]:
        latest = {document: self._latest_version(document) for document in documents}
        return {document: row for document, row in latest.items() if row is not None}

    def _insert_versions(self, records: list[NewRecord], statistics: dict[int, tuple], previous) -> None:
        """Insert the new versions; `statistics` is keyed by position in `records`."""
        next_id = (self.connection.execute("SELECT max(id) FROM versions").fetchone()[0] or 0) + 1
        last_of: dict[tuple[str, str], tuple[int, int, int]] = {
            doc: (row["id"], row["size"], row["words"]) for doc, row in previous.items()
        }
        rows, links = [], []
        for position, record in enumerate(records):
            size, added, removed, approximate = statistics[position]
            document = (record.service_id, record.terms_type)
            previous_id, previous_size, previous_words = last_of.get(document, (None, 0, 0))
            # Exact even when added and removed are estimates: any count of a diff's words
            # (the bag count too) satisfies old + added - removed = new.
            words = previous_words + added - removed
            rows.append((
                next_id, record.commit_id, record.service_id, record.terms_type, record.document_id,
                record.path, record.blob, record.fetch_date, record.kind, int(previous_id is None),
                int(record.kind == "technical"), size, words, previous_id, size - previous_size,
                added, removed, json.dumps(record.snapshots), record.metadata.get("x-engine-version"),
                int(approximate),
            ))
            links.extend((next_id, reference["id"]) for reference in record.snapshots)
            last_of[document] = (next_id, size, words)
            next_id += 1
        self.connection.executemany(f"INSERT INTO versions VALUES ({', '.join('?' * 20)})", rows)
        self.connection.executemany("INSERT INTO version_snapshots VALUES (?, ?)", links)

    def _update_documents(self, touched: set[tuple[str, str]], removed: set[tuple[str, str]]) -> None:
        for service_id, terms_type in touched:
            self.connection.execute(
                """
                INSERT INTO documents (service_id, terms_type, versions, changes, first_date, latest_id,
                    last_change_id, last_change_date, removed)
                SELECT ?1, ?2, count(*), sum(is_technical = 0), min(fetch_date),
                    (SELECT id FROM versions v WHERE v.service_id = ?1 AND v.terms_type = ?2
                        ORDER BY fetch_date DESC, id DESC LIMIT 1),
                    (SELECT id FROM versions v WHERE v.service_id = ?1 AND v.terms_type = ?2
                        AND is_technical = 0 ORDER BY fetch_date DESC, id DESC LIMIT 1),
                    (SELECT max(fetch_date) FROM versions v WHERE v.service_id = ?1 AND v.terms_type = ?2
                        AND is_technical = 0),
                    ?3
                FROM versions WHERE service_id = ?1 AND terms_type = ?2
                ON CONFLICT (service_id, terms_type) DO UPDATE SET versions = excluded.versions,
                    changes = excluded.changes, first_date = excluded.first_date,
                    latest_id = excluded.latest_id, last_change_id = excluded.last_change_id,
                    last_change_date = excluded.last_change_date, removed = excluded.removed
                """,
                (service_id, terms_type, int((service_id, terms_type) in removed)),
            )

    def _update_search(self, repo: Path) -> None:
        """Bring the full-text table to the version in force of each pending document."""
        wanted = []
        pending = self.connection.execute(
            "SELECT d.id, v.blob, d.removed FROM search_pending p JOIN documents d ON d.id = p.document_id "
            "JOIN versions v ON v.id = d.latest_id"
        ).fetchall()
        for row in pending:
            self.connection.execute("DELETE FROM current_text WHERE rowid = ?", (row["id"],))
            if not row["removed"]:
                wanted.append((row["id"], row["blob"]))
        texts = BlobReader(repo).read_many([blob for _id, blob in wanted])
        self.connection.executemany(
            "INSERT INTO current_text (rowid, content) VALUES (?, ?)",
            ((document_id, data.decode("utf-8", "replace"))
             for (document_id, _blob), data in zip(wanted, texts, strict=True)),
        )
        self.connection.execute("DELETE FROM search_pending")

    # --- snapshots

    def _index_snapshots(self, repo: Path, commits: Iterable[LoggedCommit]) -> int:
        records = [item for item in records_in(commits, want_markdown=False) if not isinstance(item, tuple)]
        sizes = blob_sizes(repo, sorted({record.blob for record in records}))
        rows = [
            (
                record.commit_id, record.service_id, record.terms_type, record.document_id, record.path,
                record.blob, record.extension, mime_type_for(record.extension), record.fetch_date,
                record.kind, sizes.get(record.blob, 0), record.metadata.get("x-source-document-location"),
                record.metadata.get("x-fetcher"),
            )
            for record in records
        ]
        self.connection.executemany(
            "INSERT INTO snapshots (commit_id, service_id, terms_type, document_id, path, blob, extension, "
            "mime_type, fetch_date, kind, size, location, fetcher) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            rows,
        )
        return len(rows)


def _batches(commits: list[LoggedCommit], per_commit: list[list]) -> Iterator[tuple]:
    """(commits, records, removed documents) of each batch: whole commits, about
    BATCH_VERSIONS records each."""
    batch_commits: list[LoggedCommit] = []
    records: list[NewRecord] = []
    removed: set[tuple[str, str]] = set()
    for commit, items in zip(commits, per_commit, strict=True):
        batch_commits.append(commit)
        for item in items:
            if isinstance(item, tuple):
                removed.add(item[1:])
            else:
                removed.discard((item.service_id, item.terms_type))
                records.append(item)
        if len(records) >= BATCH_VERSIONS:
            yield batch_commits, records, removed
            batch_commits, records, removed = [], [], set()
    if batch_commits:
        yield batch_commits, records, removed


class _JobPlanner:
    """Cuts each document's new versions into statistics jobs of CHUNK_VERSIONS, each
    with the blob of the version before (from an earlier job or from the index)."""

    def __init__(self, pool, latest_version: Callable[[tuple[str, str]], sqlite3.Row | None]):
        self.pool = pool
        self.latest_version = latest_version
        self.submitted = 0
        self.blob_before: dict[tuple[str, str], str | None] = {}

    def submit(self, records: list[NewRecord]) -> tuple[int, list[list[int]]]:
        """Queue the jobs of one batch: (number of its first job, record positions per job)."""
        first = self.submitted
        pending: dict[tuple[str, str], list[int]] = {}
        jobs: list[list[int]] = []

        def submit(document: tuple[str, str]) -> None:
            positions = pending.pop(document)
            self.pool.submit(Job(first + len(jobs), [records[i].blob for i in positions],
                                 self.blob_before[document]))
            jobs.append(positions)
            self.blob_before[document] = records[positions[-1]].blob

        for position, record in enumerate(records):
            document = (record.service_id, record.terms_type)
            if document not in self.blob_before:
                latest = self.latest_version(document)
                self.blob_before[document] = latest["blob"] if latest else None
            pending.setdefault(document, []).append(position)
            if len(pending[document]) >= CHUNK_VERSIONS:
                submit(document)
        for document in list(pending):
            submit(document)
        self.submitted = first + len(jobs)
        return first, jobs


def mime_type_for(extension: str) -> str:
    """MIME type of a snapshot from its file extension (the only place git keeps it)."""
    known = {"html": "text/html", "pdf": "application/pdf", "txt": "text/plain", "md": "text/markdown",
             "xhtml": "application/xhtml+xml", "xml": "application/xml", "json": "application/json"}
    return known.get(extension.lower()) or mimetypes.guess_type(f"x.{extension}")[0] or "application/octet-stream"


def pending_versions(sources: Sources) -> int:
    """About how many versions a refresh would index now: the commits not indexed yet
    (cheap: no diff, no content read). All of them when the index is new or unreadable."""
    repo = Path(sources.versions)
    head = head_commit(repo)
    if head is None:
        return 0
    connection = open_index(sources.index)
    try:
        row = connection.execute("SELECT path, last_commit FROM repositories WHERE name = 'versions'").fetchone()
    finally:
        connection.close()
    last = row["last_commit"] if row and row["path"] == str(repo.resolve()) else None
    if last and not is_ancestor(repo, last, head):
        last = None
    return count_commits(repo, last, head)


def word_counts(source: Path | str | tuple | dict, index_path: Path | None = None) -> dict[str, tuple[int, int]]:
    """(words added, words removed) of every indexed version, by commit id, read-only.

    `source` as for `refresh_index`. Raises sqlite3.Error when the index cannot be read
    (a missing index included: it is never created here)."""
    path = Sources.resolve(source, index_path).index
    connection = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
    try:
        rows = connection.execute("SELECT commit_id, words_added, words_removed FROM versions").fetchall()
    finally:
        connection.close()
    return {commit: (added, removed) for commit, added, removed in rows}


def refresh_index(source: Path | str | tuple | dict, index_path: Path | None = None) -> dict:
    """Bring the viewer's index up to date (after each tracking run: termshift.web.index_listener).

    `source` is a data folder (holding `versions/` and `snapshots/`; the index is then
    `index.sqlite` in it) or a (versions repo, snapshots repo or None) tuple. Returns
    statistics: {"versions": {"new", "rebuilt", "head", "seconds"}, "snapshots": {...}}.
    """
    indexer = Indexer(Sources.resolve(source, index_path))
    try:
        return indexer.refresh()
    finally:
        indexer.close()
