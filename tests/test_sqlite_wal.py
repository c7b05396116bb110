"""Opening a new SQLite file from many connections at once (the scheduler, the viewer,
the delivery workers and a tracking run all open the same files)."""

from __future__ import annotations

import sqlite3
import subprocess
import sys
import threading

from termshift.sqlite_wal import enable_wal


def test_many_connections_switch_a_new_file_to_wal_at_once(tmp_path):
    for round_number in range(10):
        path = tmp_path / f"state-{round_number}.sqlite"
        barrier = threading.Barrier(8)
        errors: list[BaseException] = []

        def open_it(path=path, barrier=barrier, errors=errors) -> None:
            connection = sqlite3.connect(path, timeout=5, check_same_thread=False)
            try:
                barrier.wait()
                enable_wal(connection)
                connection.execute("CREATE TABLE IF NOT EXISTS t (x)")
            except BaseException as error:  # collected and asserted below
                errors.append(error)
            finally:
                connection.close()

        threads = [threading.Thread(target=open_it) for _ in range(8)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        assert errors == []
        with sqlite3.connect(path) as connection:
            assert connection.execute("PRAGMA journal_mode").fetchone()[0] == "wal"


def test_a_file_already_in_wal_is_left_as_it_is(tmp_path):
    path = tmp_path / "state.sqlite"
    with sqlite3.connect(path, isolation_level=None) as first:
        enable_wal(first)
        first.execute("CREATE TABLE t (x)")
        first.execute("INSERT INTO t VALUES (1)")
        # A second connection inside an open write transaction of the first: no lock needed.
        first.execute("BEGIN IMMEDIATE")
        second = sqlite3.connect(path, timeout=0)
        enable_wal(second)
        assert second.execute("SELECT x FROM t").fetchall() == [(1,)]
        second.close()
        first.execute("COMMIT")


def _mode(path) -> int:
    import stat

    return stat.S_IMODE(path.stat().st_mode)


def test_the_data_folder_databases_are_private_whatever_the_umask(tmp_path):
    import os

    from termshift import job_history
    from termshift.alerts import store
    from termshift.trackers.run_store import RunStore

    data = tmp_path / "data"
    previous = os.umask(0o022)  # the usual umask: files 0644, folders 0755
    try:
        connection = store.connect(data)
        connection.execute("INSERT INTO subscriptions (uid, kind, url, secret, created_at)"
                           " VALUES ('u', 'webhook', 'https://example.org/hook', 'whsec_c2VjcmV0', 'now')")
        with job_history.connect_state(data) as db:
            db.execute("CREATE TABLE IF NOT EXISTS t (x)")
            db.execute("INSERT INTO t VALUES (1)")
        with RunStore(data / "runs.sqlite"):
            pass
        assert _mode(data) == 0o700
        for name in ("alerts.sqlite", "alerts.sqlite-wal", "alerts.sqlite-shm", "scheduler.sqlite", "runs.sqlite"):
            assert _mode(data / name) == 0o600, name
        connection.close()

        # A database created by an older release (0644, in a 0755 folder) is restricted when opened.
        old = tmp_path / "old"
        old.mkdir(mode=0o755)
        legacy = sqlite3.connect(old / "alerts.sqlite")
        legacy.execute("CREATE TABLE x (y)")
        legacy.close()
        assert _mode(old / "alerts.sqlite") == 0o644
        store.connect(old).close()
        assert _mode(old / "alerts.sqlite") == 0o600 and _mode(old) == 0o700

        # Any database put in WAL mode by the common helper is made private too (the viewer's index).
        index = sqlite3.connect(tmp_path / "index.sqlite")
        enable_wal(index)
        index.execute("CREATE TABLE x (y)")
        assert _mode(tmp_path / "index.sqlite") == 0o600 and _mode(tmp_path / "index.sqlite-wal") == 0o600
        index.close()
    finally:
        os.umask(previous)


def test_opening_a_database_never_drops_the_locks_of_another_connection(tmp_path):
    """Closing any descriptor of a database file drops all of the process's POSIX locks on it:
    the opener must not open the file itself while other connections may hold locks (that
    corrupted scheduler.sqlite when a scheduler's threads opened it at the same time)."""
    from termshift.sqlite_wal import connect

    path = tmp_path / "state.sqlite"
    holder = connect(path, timeout=0, isolation_level=None)  # rollback journal: locks on the file
    holder.execute("CREATE TABLE t (x)")
    holder.execute("BEGIN IMMEDIATE")  # holds the RESERVED lock
    holder.execute("INSERT INTO t VALUES (1)")
    try:
        connect(path).close()  # another thread of the same process opens the database
        # Another process (in-process connections share SQLite's own lock table) must still be
        # kept out.
        probe = subprocess.run(
            [sys.executable, "-c", "import sqlite3, sys\n"
             "db = sqlite3.connect(sys.argv[1], timeout=0, isolation_level=None)\n"
             "try:\n    db.execute('BEGIN IMMEDIATE')\nexcept sqlite3.OperationalError as error:\n"
             "    print(error)\nelse:\n    print('got the lock')\n", str(path)],
            capture_output=True, text=True, timeout=60, check=True)
        assert probe.stdout.strip() == "database is locked"
    finally:
        holder.execute("COMMIT")
        holder.close()
