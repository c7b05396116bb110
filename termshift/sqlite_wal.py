"""Opening Termshift's SQLite files (index, runs, alerts, scheduler state) in WAL mode, privately.

`connect(path, **options)` is the one opener of the data folder's databases: the folder is
made 0700 and the database (with its `-wal` and `-shm` files) 0600 before SQLite touches
them, whatever the umask. `alerts.sqlite` holds webhook signing secrets (`whsec_…`) and
Apprise URLs with tokens; the others say what runs when. Other users of the machine get
to them through the viewer, never through the files.

`connect_read_only(path)` is how a store's read methods open their file for the status
page, /metrics and the viewer: never creating it. Each table is read only by the module
that owns it (see docs/architecture.md, "The data folder").
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import sqlite3
import stat
import threading
import time
from pathlib import Path
from typing import Any

log = logging.getLogger(__name__)

FILE_MODE = 0o600
FOLDER_MODE = 0o700
COMPANIONS = ("-wal", "-shm", "-journal")  # files SQLite keeps next to a database


def _tighten(path: Path, mode: int) -> None:
    """Remove every permission of group and others from `path` if it is ours; never raises."""
    try:
        current = path.stat()
    except OSError:
        return
    if stat.S_IMODE(current.st_mode) & 0o077 and current.st_uid == os.geteuid():
        try:
            os.chmod(path, stat.S_IMODE(current.st_mode) & mode)
        except OSError as error:  # a read-only mount: nothing we can do, say so
            log.warning("%s: could not restrict its permissions: %s", path, error)


def make_private(path: Path | str) -> None:
    """Make the database file `path` (and its `-wal`/`-shm`/`-journal`) 0600, and its folder 0700."""
    path = Path(path)
    _tighten(path.parent, FOLDER_MODE)
    for candidate in (path, *(path.with_name(path.name + suffix) for suffix in COMPANIONS)):
        _tighten(candidate, FILE_MODE)


def connect(path: Path | str, **options: Any) -> sqlite3.Connection:
    """`sqlite3.connect(path, **options)` for a database of the data folder: creates the folder
    (0700) and the file (0600) when missing, and restricts existing ones to those modes.
    SQLite gives the `-wal` and `-shm` files it creates the mode of the database file."""
    path = Path(path)
    path.parent.mkdir(mode=FOLDER_MODE, parents=True, exist_ok=True)
    if not path.exists():
        _create_private(path)
    make_private(path)
    return sqlite3.connect(path, **options)


def connect_read_only(path: Path | str, timeout: float = 10.0) -> sqlite3.Connection | None:
    """A read-only connection (rows as `sqlite3.Row`), or None when the file does not exist
    (yet): a reader never creates a database. Raises sqlite3.Error when it cannot be opened."""
    path = Path(path)
    if not path.is_file():
        return None
    connection = sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=timeout)
    connection.row_factory = sqlite3.Row
    return connection


def has_table(connection: sqlite3.Connection, name: str) -> bool:
    """Whether the database has the table `name` (a reader of a file an older or newer
    release wrote, or one whose writer has not run yet)."""
    return connection.execute(
        "SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = ?", (name,)
    ).fetchone() is not None


def _create_private(path: Path) -> None:
    """Create the empty file `path` with mode 0600, never opening `path` itself.

    Closing any descriptor of a database file drops every POSIX lock this process holds on
    it, including the locks of SQLite connections in other threads: the database can then
    be corrupted by two writers. So the file is created under a temporary name and linked
    into place (which fails harmlessly if another opener created it meanwhile)."""
    temporary = path.with_name(f".{path.name}.{os.getpid()}.{threading.get_ident()}.new")
    try:
        os.close(os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL, FILE_MODE))
        with contextlib.suppress(FileExistsError):
            os.link(temporary, path)
    except OSError:
        pass  # a read-only folder, or no hard links: SQLite creates it, make_private restricts it
    finally:
        with contextlib.suppress(OSError):
            os.unlink(temporary)


def _database_file(connection: sqlite3.Connection) -> Path | None:
    for _seq, name, file in connection.execute("PRAGMA database_list"):
        if name == "main" and file:
            return Path(file)
    return None


def enable_wal(connection: sqlite3.Connection, attempts: int = 100) -> None:
    """Put the database in WAL mode (readers never wait for writers), and make its files private.

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
            break
        except sqlite3.OperationalError as error:
            if "locked" not in str(error) or attempt == attempts - 1:
                raise
            time.sleep(0.02)
    path = _database_file(connection)
    if path is not None:
        make_private(path)  # also for a database opened with plain sqlite3.connect


def json_object(value: Any) -> dict[str, Any]:
    """A JSON-object column (`counts`, `summary`…) as a dict; {} for NULL, damaged or non-object values."""
    if isinstance(value, str | bytes):
        try:
            value = json.loads(value)
        except ValueError:
            return {}
    return value if isinstance(value, dict) else {}
