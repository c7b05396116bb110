"""Benchmark: the archive's recording rate, the single writer's ceiling.

Records N snapshots (a ~5 kB page each, over 50 services) into a new snapshots
repository and prints records per second. Every record is durable when `record`
returns: its objects are flushed to disk before the ref moves, and git flushes the
ref (see termshift/archive_repo/object_store.py), i.e. two disk flushes per record,
whose cost depends on the disk far more than on Termshift.

Usage:
    python bench/record.py [--records 500] [--directory DIR]
"""

from __future__ import annotations

import argparse
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

from termshift.archive_repo import RecordRepository, Snapshot


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--records", type=int, default=500, help="records to write (default 500)")
    parser.add_argument("--directory", type=Path, default=None,
                        help="folder for the repository (default: a new temporary folder; its disk matters)")
    arguments = parser.parse_args()
    directory = Path(tempfile.mkdtemp(dir=arguments.directory, prefix="termshift-record-bench-"))
    start_date = datetime(2026, 1, 1, tzinfo=UTC)
    with RecordRepository(directory / "snapshots", "snapshots") as repository:
        started = time.perf_counter()
        for n in range(arguments.records):
            page = f"<html><body><main><p>Terms, revision {n}.</p>{'<p>Clause.</p>' * 400}</main></body></html>"
            repository.record(Snapshot(f"Service {n % 50}", "Terms of Service",
                                       start_date + timedelta(minutes=n), page))
            if (n + 1) % 100 == 0:
                print(f"  {n + 1}/{arguments.records} records", flush=True)
        elapsed = time.perf_counter() - started
    print(f"{arguments.records} records in {elapsed:.1f} s: {arguments.records / elapsed:.0f} records/s "
          f"({1000 * elapsed / arguments.records:.1f} ms each) in {directory}")


if __name__ == "__main__":
    main()
