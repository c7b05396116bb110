"""Word and size statistics of new versions, computed while the history is still being read.

Each version needs the diff with its predecessor (words added and removed). That is the
costly part of building the index, so it is spread over worker processes, and jobs are
handed out as soon as `git log` has yielded enough versions of a document, so the
workers start while the log is still being parsed.

Workers are plain subprocesses (`python -m termshift.web.index_workers`) speaking JSON
lines, rather than multiprocessing: nothing then depends on how the calling program was
started ("spawn" re-runs an unguarded main script; "fork" is unsafe in a threaded server).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import IO

from termshift.web import gitread
from termshift.web.diffing import count_changes, count_words

Statistics = tuple[int, int, int, int]  # size in bytes, words, words added, words removed


def chunk_statistics(repo: str, blobs: list[str], has_previous: bool) -> list[Statistics]:
    """Statistics of each blob after the first if `has_previous` (the first is then the
    version before them, read only to diff against)."""
    reader = gitread.BlobReader(Path(repo))
    results = []
    previous: str | None = None
    words = 0
    for position, data in enumerate(reader.read_many(blobs)):
        text = data.decode("utf-8", "replace")
        if previous is None:
            words = count_words(text)
            if position == 0 and has_previous:
                previous = text
                continue
            added, removed = words, 0
        else:
            added, removed = count_changes(previous, text)
            # Exact, and saves counting a whole text: the diff counts whole words.
            words += added - removed
        results.append((len(data), words, added, removed))
        previous = text
    return results


@dataclass
class Job:
    """Consecutive versions of one document (their blob ids), and the blob before them."""

    number: int
    blobs: list[str]
    previous_blob: str | None

    @property
    def arguments(self) -> tuple[list[str], bool]:
        prefix = [self.previous_blob] if self.previous_blob else []
        return prefix + self.blobs, self.previous_blob is not None


class InlineStatistics:
    """Computes each job when it is submitted, in this process (for a few versions)."""

    def __init__(self, repo: Path):
        self.repo = str(repo)
        self._results: dict[int, list[Statistics]] = {}

    def submit(self, job: Job) -> None:
        self._results[job.number] = chunk_statistics(self.repo, *job.arguments)

    def results(self) -> dict[int, list[Statistics]]:
        return self._results


class WorkerStatistics:
    """Spreads jobs over worker processes, each given the next job when it is the least loaded."""

    def __init__(self, repo: Path, workers: int):
        self.repo = str(repo)
        environment = {**os.environ, "PYTHONPATH": os.pathsep.join(path for path in sys.path if path)}
        self._processes = [
            subprocess.Popen([sys.executable, "-m", "termshift.web.index_workers"], stdin=subprocess.PIPE,
                             stdout=subprocess.PIPE, env=environment)
            for _ in range(workers)
        ]
        self._outstanding = [0] * workers  # blobs submitted and not yet answered, per worker
        self._sizes: dict[int, int] = {}
        self._results: dict[int, list[Statistics]] = {}
        self._lock = threading.Lock()
        self._readers = [
            threading.Thread(target=self._collect, args=(index, process.stdout), daemon=True)
            for index, process in enumerate(self._processes)
        ]
        for reader in self._readers:
            reader.start()

    def _collect(self, worker: int, stream: IO[bytes]) -> None:
        for line in stream:
            number, statistics = json.loads(line)
            with self._lock:
                self._results[number] = [tuple(item) for item in statistics]
                self._outstanding[worker] -= self._sizes.pop(number)

    def submit(self, job: Job) -> None:
        blobs, has_previous = job.arguments
        with self._lock:
            worker = self._outstanding.index(min(self._outstanding))
            self._outstanding[worker] += len(blobs)
            self._sizes[job.number] = len(blobs)
        line = json.dumps([job.number, self.repo, blobs, has_previous]) + "\n"
        stdin = self._processes[worker].stdin
        stdin.write(line.encode())
        stdin.flush()

    def results(self) -> dict[int, list[Statistics]]:
        for process in self._processes:
            process.stdin.close()
        for reader in self._readers:
            reader.join()
        for process in self._processes:
            if process.wait() != 0:
                raise RuntimeError(f"{self.repo}: an index worker failed (exit code {process.returncode})")
        return self._results


def statistics_pool(repo: Path, expected_versions: int, threshold: int) -> InlineStatistics | WorkerStatistics:
    """Workers (one per core) when many versions are expected, else this process."""
    workers = os.cpu_count() or 1
    if expected_versions < threshold or workers < 2:
        return InlineStatistics(repo)
    return WorkerStatistics(repo, workers)


def _worker_main() -> None:
    """Worker: one JSON job per line on stdin, one JSON answer per line on stdout."""
    for line in sys.stdin:
        number, repo, blobs, has_previous = json.loads(line)
        sys.stdout.write(json.dumps([number, chunk_statistics(repo, blobs, has_previous)]) + "\n")
        sys.stdout.flush()


if __name__ == "__main__":
    _worker_main()
