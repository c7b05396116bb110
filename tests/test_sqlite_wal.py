"""Opening a new SQLite file from many connections at once (the scheduler, the viewer,
the delivery workers and a tracking run all open the same files)."""

from __future__ import annotations

import sqlite3
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
