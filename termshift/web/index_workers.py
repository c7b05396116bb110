"""Word and size statistics of new versions, computed in worker processes.

Each version needs the diff with its predecessor (words added and removed). That is the
costly part of building the index, so it is spread over worker processes: jobs (a few
consecutive versions of one document) are queued as the log is read, and each worker is
handed the next job as soon as it answers one, so a slow job never holds up the others.
Every diff has a time budget (`textdiff.INDEX_BUDGET`): past it, the words of what is left
are counted the cheap way and the figures are marked approximate.

Workers are plain subprocesses (`python -m termshift.web.index_workers`) speaking JSON
lines, rather than multiprocessing: nothing then depends on how the calling program was
started ("spawn" re-runs an unguarded main script; "fork" is unsafe in a threaded server).
"""

from __future__ import annotations

import contextlib
import json
import os
import subprocess
import sys
import threading
from collections import OrderedDict, deque
from dataclasses import dataclass
from pathlib import Path
from typing import IO

from termshift.archive_repo.blob_reader import BlobReader
from termshift.textdiff import INDEX_BUDGET, change_counts, count_words

# size in bytes, words added, words removed, whether they are estimates. (A version's words are
# its predecessor's plus added minus removed: the index adds them up, in history order.)
Statistics = tuple[int, int, int, bool]
# Jobs handed to one worker ahead of its answers (keeps it busy while an answer travels).
JOBS_AHEAD = 2
# Pairs of blobs already compared in this process, both ways round: documents that flip back
# and forth between two texts repeat the same pair, and its mirror (the diff of B against A
# is the mirror of A against B's: `textdiff._mirrored`).
_PAIRS: OrderedDict[tuple[str, str], tuple[int, int, bool]] = OrderedDict()
PAIR_CACHE_SIZE = 2048  # entries: 1,024 comparisons and their mirrors
# A long-lived `git cat-file --batch` for the repository being indexed (not one per job).
_READERS: dict[str, BlobReader] = {}


def _pair_counts(old_blob: str, new_blob: str, old: str, new: str) -> tuple[int, int, bool]:
    key = (old_blob, new_blob)
    if key in _PAIRS:
        _PAIRS.move_to_end(key)
        return _PAIRS[key]
    counts = change_counts(old, new, INDEX_BUDGET)
    _PAIRS[(new_blob, old_blob)] = (counts.removed, counts.added, counts.approximate)
    _PAIRS[key] = result = (counts.added, counts.removed, counts.approximate)
    while len(_PAIRS) > PAIR_CACHE_SIZE:
        _PAIRS.popitem(last=False)
    return result


def chunk_statistics(repo: str, blobs: list[str], has_previous: bool) -> list[Statistics]:
    """Statistics of each blob after the first if `has_previous` (the first is then the
    version before them, read only to diff against); a first version's words are all added."""
    reader = _READERS.get(repo)
    if reader is None:
        for other in _READERS.values():  # one repository at a time: do not keep the others' processes
            other.close()
        _READERS.clear()
        reader = _READERS[repo] = BlobReader(Path(repo))
    results: list[Statistics] = []
    previous: str | None = None
    for position, blob in enumerate(blobs):
        data = reader.read(blob)
        text = data.decode("utf-8", "replace")
        if previous is not None:
            results.append((len(data), *_pair_counts(blobs[position - 1], blob, previous, text)))
        elif not (position == 0 and has_previous):
            results.append((len(data), count_words(text), 0, False))
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

    def take(self, numbers: list[int]) -> dict[int, list[Statistics]]:
        """The results of these jobs (all submitted before), forgotten once taken."""
        return {number: self._results.pop(number) for number in numbers}

    def close(self) -> None:
        self._results.clear()


class WorkerStatistics:
    """Worker processes fed from one queue: each gets the next job when it answers one."""

    def __init__(self, repo: Path, workers: int):
        self.repo = str(repo)
        environment = {**os.environ, "PYTHONPATH": os.pathsep.join(path for path in sys.path if path)}
        self._processes = [
            subprocess.Popen([sys.executable, "-m", "termshift.web.index_workers"], stdin=subprocess.PIPE,
                             stdout=subprocess.PIPE, env=environment)
            for _ in range(workers)
        ]
        self._queue: deque[Job] = deque()
        self._in_flight = [0] * workers
        self._results: dict[int, list[Statistics]] = {}
        self._failed: str | None = None
        self._changed = threading.Condition()
        self._readers = [
            threading.Thread(target=self._collect, args=(index, process.stdout), daemon=True)
            for index, process in enumerate(self._processes)
        ]
        for reader in self._readers:
            reader.start()

    def _send(self, worker: int) -> None:
        """Hand queued jobs to `worker` until it has JOBS_AHEAD (call with the lock held)."""
        while self._queue and self._in_flight[worker] < JOBS_AHEAD:
            job = self._queue.popleft()
            blobs, has_previous = job.arguments
            line = json.dumps([job.number, self.repo, blobs, has_previous]) + "\n"
            stdin = self._processes[worker].stdin
            try:
                stdin.write(line.encode())
                stdin.flush()
            except (BrokenPipeError, ValueError):
                self._failed = "an index worker stopped"
                self._changed.notify_all()
                return
            self._in_flight[worker] += 1

    def _collect(self, worker: int, stream: IO[bytes]) -> None:
        for line in stream:
            number, statistics = json.loads(line)
            with self._changed:
                self._results[number] = [tuple(item) for item in statistics]
                self._in_flight[worker] -= 1
                self._send(worker)
                self._changed.notify_all()
        with self._changed:
            if self._in_flight[worker] and self._failed is None:
                code = self._processes[worker].wait()
                self._failed = f"an index worker failed (exit code {code})"
            self._changed.notify_all()

    def submit(self, job: Job) -> None:
        with self._changed:
            self._queue.append(job)
            for worker in range(len(self._processes)):
                self._send(worker)

    def take(self, numbers: list[int]) -> dict[int, list[Statistics]]:
        """Wait for these jobs' results; forgotten once taken."""
        with self._changed:
            while not all(number in self._results for number in numbers):
                if self._failed:
                    raise RuntimeError(f"{self.repo}: {self._failed}")
                self._changed.wait()
            return {number: self._results.pop(number) for number in numbers}

    def close(self) -> None:
        for process in self._processes:
            with contextlib.suppress(BrokenPipeError):
                process.stdin.close()
        for process in self._processes:
            try:
                process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
        for reader in self._readers:
            reader.join()


def statistics_pool(repo: Path, expected_versions: int, threshold: int) -> InlineStatistics | WorkerStatistics:
    """Workers (one per core) when many versions are expected, else this process."""
    workers = os.cpu_count() or 1
    if expected_versions < threshold or workers < 2:
        return InlineStatistics(repo)
    return WorkerStatistics(repo, workers)


# Niceness of a worker: the serving processes go first when they need the cores (a page while
# the index builds, the first answer after a start); idle, they leave the workers every cycle.
WORKER_NICENESS = 10


def _worker_main() -> None:
    """Worker: one JSON job per line on stdin, one JSON answer per line on stdout."""
    if hasattr(os, "nice"):
        os.nice(WORKER_NICENESS)
    for line in sys.stdin:
        number, repo, blobs, has_previous = json.loads(line)
        sys.stdout.write(json.dumps([number, chunk_statistics(repo, blobs, has_previous)]) + "\n")
        sys.stdout.flush()


if __name__ == "__main__":
    _worker_main()
