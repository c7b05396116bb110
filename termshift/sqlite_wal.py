"""Opening Termshift's SQLite files (index, runs, alerts, scheduler state) in WAL mode."""

from __future__ import annotations

import sqlite3
import time


def enable_wal(connection: sqlite3.Connection, attempts: int = 100) -> None:
    """Put the database in WAL mode (readers never wait for writers).

    WAL is a property of the file, so this only writes the first time. Switching needs
    an exclusive lock, and SQLite may answer "database is locked" at once instead of
    waiting for the busy timeout when another process opens the same new file at the
    same moment: retry briefly, and skip the switch when the file is already in WAL.
    """
    for attempt in range(attempts):
        try:
            mode = connection.execute("PRAGMA journal_mode").fetchone()[0]
            if str(mode).lower() != "wal":
                connection.execute("PRAGMA journal_mode=WAL")
            return
        except sqlite3.OperationalError as error:
            if "locked" not in str(error) or attempt == attempts - 1:
                raise
            time.sleep(0.02)
