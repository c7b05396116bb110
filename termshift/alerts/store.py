"""`data/alerts.sqlite`: subscriptions, the outbox, the delivery log and a diff-statistics cache.

One SQLite file in WAL mode, so the tracking run (enqueueing), the delivery
workers and the viewer (reading the log) can use it at the same time.

Tables:
- `subscriptions`: one row per webhook or Apprise channel. `uid` is a random
  token fixed at creation; event ids derive from it (see events.event_id).
- `outbox`: one row per (event, subscription), keyed by the stable event id, so
  enqueueing the same version twice inserts nothing the second time.
  `status` is pending → delivering (claimed by a worker until `claimed_until`) →
  delivered | failed | cancelled.
- `deliveries`: one row per attempt (status code, duration, error).
- `version_stats`: word counts and changed sentences per version id (versions
  never change, so neither do these).
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from termshift.sqlite_wal import connect as connect_private
from termshift.sqlite_wal import connect_read_only, enable_wal

FILE_NAME = "alerts.sqlite"
SCHEMA_VERSION = 1

SCHEMA = """
CREATE TABLE IF NOT EXISTS subscriptions (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    uid TEXT NOT NULL UNIQUE,
    kind TEXT NOT NULL CHECK (kind IN ('webhook', 'apprise')),
    url TEXT NOT NULL,
    secret TEXT NOT NULL DEFAULT '',
    services TEXT NOT NULL DEFAULT '[]',
    terms_types TEXT NOT NULL DEFAULT '[]',
    include_diff INTEGER NOT NULL DEFAULT 0,
    active INTEGER NOT NULL DEFAULT 1,
    created_at TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS outbox (
    event_id TEXT PRIMARY KEY,
    subscription_id INTEGER NOT NULL,
    version_id TEXT,
    event_type TEXT NOT NULL,
    body BLOB NOT NULL,
    status TEXT NOT NULL DEFAULT 'pending'
        CHECK (status IN ('pending', 'delivering', 'delivered', 'failed', 'cancelled')),
    attempts INTEGER NOT NULL DEFAULT 0,
    created_at REAL NOT NULL,
    next_attempt_at REAL NOT NULL,
    claim_token TEXT,
    claimed_until REAL,
    delivered_at REAL,
    last_status_code INTEGER,
    last_error TEXT
);
CREATE INDEX IF NOT EXISTS outbox_due ON outbox (status, next_attempt_at);
CREATE INDEX IF NOT EXISTS outbox_leases ON outbox (status, claimed_until);
CREATE INDEX IF NOT EXISTS outbox_subscription ON outbox (subscription_id, status);
CREATE TABLE IF NOT EXISTS deliveries (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    event_id TEXT NOT NULL,
    subscription_id INTEGER NOT NULL,
    attempt INTEGER NOT NULL,
    started_at REAL NOT NULL,
    duration_ms REAL NOT NULL,
    status_code INTEGER,
    error TEXT,
    outcome TEXT NOT NULL CHECK (outcome IN ('delivered', 'retry', 'failed'))
);
CREATE INDEX IF NOT EXISTS deliveries_event ON deliveries (event_id);
CREATE INDEX IF NOT EXISTS deliveries_started ON deliveries (started_at);
CREATE TABLE IF NOT EXISTS version_stats (
    version_id TEXT PRIMARY KEY,
    words_added INTEGER NOT NULL,
    words_removed INTEGER NOT NULL,
    changed_sentences TEXT NOT NULL
);
"""


def database_path(data_dir: Path) -> Path:
    return Path(data_dir) / FILE_NAME


def connect(data_dir: Path, durable: bool = False) -> sqlite3.Connection:
    """Open (creating if needed) the alerts database.

    Autocommit mode: callers open transactions explicitly (`BEGIN IMMEDIATE`)
    where several statements must hold together. `durable=True` syncs every
    commit to disk (synchronous=FULL), used when enqueueing so a power cut
    cannot lose an event; delivery bookkeeping uses NORMAL, which survives a
    crashed process and at worst repeats a delivery after a power cut (the
    stable webhook-id lets receivers drop it).
    """
    path = database_path(data_dir)
    connection = connect_private(path, timeout=60, isolation_level=None, check_same_thread=False)
    connection.row_factory = sqlite3.Row
    enable_wal(connection)
    connection.execute(f"PRAGMA synchronous={'FULL' if durable else 'NORMAL'}")
    connection.execute("PRAGMA busy_timeout=60000")
    if connection.execute("PRAGMA user_version").fetchone()[0] < SCHEMA_VERSION:
        with transaction(connection):
            for statement in SCHEMA.split(";"):
                if statement.strip():
                    connection.execute(statement)
            connection.execute(f"PRAGMA user_version={SCHEMA_VERSION}")
    return connection


def unreadable(data_dir: Path) -> str | None:
    """Why the alerts database cannot be read (SQLite's words), or None when it can, or
    does not exist yet. Opens it read-only: creates and changes nothing."""
    try:
        connection = connect_read_only(database_path(data_dir))
        if connection is None:
            return None
        try:
            connection.execute("SELECT COUNT(*) FROM sqlite_master").fetchone()
            connection.execute("PRAGMA user_version").fetchone()
        finally:
            connection.close()
    except sqlite3.Error as error:
        return str(error)
    return None


@contextmanager
def transaction(connection: sqlite3.Connection) -> Iterator[sqlite3.Connection]:
    """`BEGIN IMMEDIATE` … `COMMIT`, or `ROLLBACK` on error.

    IMMEDIATE takes the write lock at the start, so two workers claiming rows
    never both read the same row as pending.
    """
    connection.execute("BEGIN IMMEDIATE")
    try:
        yield connection
    except BaseException:
        connection.execute("ROLLBACK")
        raise
    connection.execute("COMMIT")
