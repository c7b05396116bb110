"""The archive's one blob reader: objects by id through `git cat-file --batch`.

File contents are read by object name (a blob id, or `<revision>:<path>`) through a
long-lived `git cat-file --batch` process, never with a `git show` per file. Used by
`RecordRepository` (record contents, trees and commits), the viewer (pages and its
index) and the webhooks (`archive_repo.listing.read_texts`).
"""

from __future__ import annotations

import subprocess
import threading
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import IO, Literal, overload

from termshift.archive_repo.log_reader import GitError, git_environment
from termshift.errors import ArchiveError


class MissingObject(ArchiveError, KeyError):
    """The repository does not have this object (history rewritten since it was indexed?)."""


def _check_name(name: str) -> bytes:
    if "\n" in name:
        raise ValueError(f"{name!r}: a revision or path with a line break cannot be read")
    return name.encode("utf-8", "surrogateescape") + b"\n"


def _read_answer(stdout: IO[bytes], name: str) -> bytes | None:
    """One answer of `git cat-file --batch`: the object's bytes, or None when it is missing."""
    header = stdout.readline()
    if not header:
        raise GitError(f"git cat-file stopped while reading {name}")
    parts = header.split()
    if len(parts) != 3 or not parts[2].isdigit():  # "<name> missing" or "<name> ambiguous"
        return None
    data = stdout.read(int(parts[2]))
    stdout.read(1)  # the newline after the content
    return data


class BlobReader:
    """One long-lived `git cat-file --batch` process; reads objects by name.

    Thread-safe (a lock serialises requests). Restarted if it dies. Reading many objects
    at once (`read_many`) pipelines the requests through a feeder thread, so git is never
    waiting for Python to ask for the next one.
    """

    def __init__(self, repo: Path):
        self.repo = Path(repo)
        self._lock = threading.Lock()
        self._process: subprocess.Popen | None = None

    def _spawn(self) -> subprocess.Popen:
        return subprocess.Popen(
            ["git", "cat-file", "--batch"], cwd=self.repo, env=git_environment(),
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
        )

    def _start(self) -> subprocess.Popen:
        if self._process is None or self._process.poll() is not None:
            self._process = self._spawn()
        return self._process

    def read(self, name: str) -> bytes:
        """The bytes of one object; MissingObject if the repository does not have it."""
        request = _check_name(name)
        with self._lock:
            process = self._start()
            assert process.stdin is not None and process.stdout is not None
            try:
                process.stdin.write(request)
                process.stdin.flush()
                data = _read_answer(process.stdout, name)
            except (BrokenPipeError, GitError):
                self.close_unlocked()
                raise
        if data is None:
            raise MissingObject(name)
        return data

    @overload
    def read_many(self, names: list[str], *, missing_ok: Literal[False] = ...) -> Iterator[bytes]: ...

    @overload
    def read_many(self, names: list[str], *, missing_ok: Literal[True]) -> Iterator[bytes | None]: ...

    def read_many(self, names: list[str], *, missing_ok: bool = False) -> Iterator[bytes | None]:
        """The bytes of each object, in order (a separate process, so requests are not
        blocked). A missing object raises MissingObject, or is None with `missing_ok`."""
        requests = [_check_name(name) for name in names]
        process = self._spawn()
        assert process.stdin is not None and process.stdout is not None

        def feed() -> None:
            try:
                for request in requests:
                    process.stdin.write(request)
                process.stdin.close()
            except BrokenPipeError:
                pass

        feeder = threading.Thread(target=feed, daemon=True)
        feeder.start()
        try:
            for name in names:
                data = _read_answer(process.stdout, name)
                if data is None and not missing_ok:
                    raise MissingObject(name)
                yield data
        finally:
            process.stdout.close()
            process.kill()
            process.wait()
            feeder.join()

    def close_unlocked(self) -> None:
        if self._process is not None:
            for stream in (self._process.stdin, self._process.stdout):
                if stream:
                    stream.close()
            self._process.kill()
            self._process.wait()
            self._process = None

    def close(self) -> None:
        with self._lock:
            self.close_unlocked()


def read_objects(repo: Path, names: Iterable[str]) -> list[bytes | None]:
    """The bytes of each named object (None when missing), with one short-lived git process."""
    names = list(names)
    if not names:
        return []
    return list(BlobReader(repo).read_many(names, missing_ok=True))


def blob_sizes(repo: Path, blobs: list[str]) -> dict[str, int]:
    """Size in bytes of each blob, with one `git cat-file --batch-check` (contents not read)."""
    if not blobs:
        return {}
    result = subprocess.run(
        ["git", "cat-file", "--batch-check"], cwd=repo, env=git_environment(),
        input="\n".join(blobs).encode() + b"\n", capture_output=True, check=False,
    )
    sizes = {}
    for line in result.stdout.decode().splitlines():
        parts = line.split()
        if len(parts) == 3:
            sizes[parts[0]] = int(parts[2])
    return sizes
