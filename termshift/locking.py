"""The tracking-run lock: at most one tracking run per data folder, across processes.

Two schedulers (say `termshift schedule` and `termshift serve --with-scheduler`), or a
scheduler and a manual `termshift track`, may share one data folder. Their runs must
never overlap: both would fetch the same pages and race to commit. The lock is an OS
file lock (`filelock`, i.e. `flock`) on `<data>/tracking.lock`, so the kernel releases
it when its holder dies, even by SIGKILL: a crash never leaves the folder locked.

Within a process, the thread holding the lock may take it again (nested: the scheduler
holds it around the tracking function, which may take it as well, as `termshift track`
must); every other thread finds it busy.

Beside it, `<data>/tracking.lock.json` says who holds the lock (pid, host, since when,
what for). It is informative only (the status page shows it, and a skipped run's log
line names the holder); the flock alone decides.
"""

from __future__ import annotations

import json
import os
import socket
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import filelock

from termshift.errors import TermshiftError

LOCK_FILE = "tracking.lock"
HOLDER_FILE = "tracking.lock.json"


class RunLockBusy(TermshiftError, RuntimeError):
    """Another run holds the lock; `holder` says who, when known."""

    def __init__(self, lock_path: Path, holder: dict[str, Any] | None) -> None:
        self.holder = holder
        who = describe_holder(holder) if holder else "another process"
        super().__init__(f"{lock_path}: tracking run already in progress ({who})")


@dataclass
class _Holding:
    """This process holds the lock of one data folder, in thread `thread`, `depth` times."""

    thread: int
    depth: int
    file_lock: filelock.BaseFileLock


# Locks held by this process, by lock file path. The kernel's flock already excludes other
# processes; this table lets the thread that holds a folder's lock take it again (the
# scheduler holds it around `run_tracking`, which may take it too) while any other thread
# of ours finds it busy.
_held: dict[str, _Holding] = {}
_held_guard = threading.Lock()


@dataclass
class RunLock:
    """The lock of one data folder: held by one thread of one process at a time, re-entrant
    within that thread (nested acquire/release pairs)."""

    data_dir: Path

    def __post_init__(self) -> None:
        self.data_dir = Path(self.data_dir)
        self.path = self.data_dir / LOCK_FILE
        self.holder_path = self.data_dir / HOLDER_FILE
        self._key = os.path.abspath(self.path)

    def acquire(self, purpose: str = "tracking") -> None:
        """Take the lock now or raise RunLockBusy; never waits (a busy run is skipped, not queued)."""
        with _held_guard:
            holding = _held.get(self._key)
            if holding is not None:
                if holding.thread != threading.get_ident():
                    raise RunLockBusy(self.path, read_holder(self.data_dir))
                holding.depth += 1
                return
            self.data_dir.mkdir(parents=True, exist_ok=True)
            file_lock = filelock.FileLock(str(self.path), timeout=0)
            try:
                file_lock.acquire()
            except filelock.Timeout:
                raise RunLockBusy(self.path, read_holder(self.data_dir)) from None
            _held[self._key] = _Holding(threading.get_ident(), 1, file_lock)
        self._write_holder(purpose)

    def release(self) -> None:
        """Undo one `acquire` of this thread (a no-op when it holds nothing)."""
        with _held_guard:
            holding = _held.get(self._key)
            if holding is None or holding.thread != threading.get_ident():
                return
            holding.depth -= 1
            if holding.depth:
                return
            del _held[self._key]
            try:
                self.holder_path.unlink(missing_ok=True)
            finally:
                holding.file_lock.release()

    @property
    def held(self) -> bool:
        """Whether the calling thread holds the lock."""
        holding = _held.get(self._key)
        return holding is not None and holding.thread == threading.get_ident()

    def __enter__(self) -> RunLock:
        self.acquire()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.release()

    def _write_holder(self, purpose: str) -> None:
        holder = {"pid": os.getpid(), "host": socket.gethostname(), "since": time.time(), "purpose": purpose}
        temporary = self.holder_path.with_suffix(".tmp")
        temporary.write_text(json.dumps(holder), encoding="utf-8")
        os.replace(temporary, self.holder_path)


def read_holder(data_dir: Path) -> dict[str, Any] | None:
    """Who holds (or last held, if it died) the lock of `data_dir`, or None."""
    try:
        holder = json.loads((Path(data_dir) / HOLDER_FILE).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return holder if isinstance(holder, dict) else None


def describe_holder(holder: dict[str, Any]) -> str:
    since = holder.get("since")
    started = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(since)) if isinstance(since, int | float) else "?"
    return f"pid {holder.get('pid', '?')} on {holder.get('host', '?')} since {started}"


def process_alive(pid: int, host: str | None = None) -> bool | None:
    """Whether process `pid` runs; None when it runs on another host (we cannot tell)."""
    if host is not None and host != socket.gethostname():
        return None
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True
