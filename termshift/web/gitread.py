"""Read a git repository in bulk, for the index, and single blobs, for requests.

Two rules keep the viewer fast on archives of tens of thousands of commits:
- history is read with ONE `git log` pass (ids, dates, messages and the blob id of
  every changed file), streamed and parsed as it comes;
- file contents are read by blob id through ONE long-lived `git cat-file --batch`
  process, never with a `git show` per file.
"""

from __future__ import annotations

import os
import subprocess
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import IO

from termshift.archive_repo.log_reader import LOG_OPTIONS, LoggedCommit, nul_fields, parse_log
from termshift.errors import TermshiftError

# The log is read and parsed by archive_repo.log_reader (one parser for both readers);
# the viewer adds the order its index needs.
LOG_ARGUMENTS = (
    "log",
    *LOG_OPTIONS,
    "--reverse",
    "--topo-order",  # oldest first, parents before children even if dates disagree
)
_ENVIRONMENT = {**os.environ, "LC_ALL": "C", "GIT_TERMINAL_PROMPT": "0", "GIT_OPTIONAL_LOCKS": "0"}


class GitError(TermshiftError, RuntimeError):
    """A git command failed; the message names the repository and git's own words."""


class MissingObject(TermshiftError, KeyError):
    """The repository does not have this object (history rewritten since it was indexed?)."""


# The web index names a logged commit `gitread.Commit`; it is the log reader's type.
Commit = LoggedCommit


def run_git(repo: Path, *arguments: str) -> str:
    """Run git in `repo` and return its output; raise GitError on failure."""
    result = subprocess.run(
        ["git", *arguments], cwd=repo, env=_ENVIRONMENT, capture_output=True, check=False
    )
    if result.returncode != 0:
        message = result.stderr.decode("utf-8", "replace").strip()
        raise GitError(f"{repo}: git {arguments[0]} failed: {message}")
    return result.stdout.decode("utf-8", "surrogateescape")


def check_repository(repo: Path) -> None:
    """Raise GitError unless `repo` is a git repository (work tree or bare)."""
    if not Path(repo).is_dir():
        raise GitError(f"{repo}: no such directory")
    run_git(repo, "rev-parse", "--git-dir")


def head_commit(repo: Path) -> str | None:
    """The commit HEAD points at, or None for a repository without commits."""
    result = subprocess.run(
        ["git", "rev-parse", "--verify", "--quiet", "HEAD^{commit}"],
        cwd=repo, env=_ENVIRONMENT, capture_output=True, check=False,
    )
    return result.stdout.decode().strip() or None


def head_fingerprint(repo: Path) -> tuple:
    """A cheap value that changes when HEAD may have moved (no subprocess).

    It combines the modification times of HEAD, the current branch's ref file and
    packed-refs; an unchanged fingerprint means nothing was committed.
    """
    git_dir = Path(repo) / ".git"
    if not git_dir.is_dir():
        git_dir = Path(repo)  # bare repository
    parts: list[object] = []
    head = git_dir / "HEAD"
    for path in (head, git_dir / "packed-refs"):
        parts.append(path.stat().st_mtime_ns if path.exists() else None)
    try:
        reference = head.read_text().strip()
    except OSError:
        reference = ""
    if reference.startswith("ref: "):
        ref_path = git_dir / reference[5:]
        parts.append(ref_path.stat().st_mtime_ns if ref_path.exists() else None)
        # The ref's content too: two commits within one tick of the file system's clock
        # leave the same modification time, but never the same commit id.
        try:
            parts.append(ref_path.read_bytes())
        except OSError:
            parts.append(None)
    parts.append(reference)
    return tuple(parts)


def count_commits(repo: Path, since: str | None, until: str) -> int:
    """Number of commits `read_log(repo, since, until)` will yield (cheap: no diffs)."""
    revision = f"{since}..{until}" if since else until
    return int(run_git(repo, "rev-list", "--count", "--no-merges", revision, "--").strip() or 0)


def is_ancestor(repo: Path, ancestor: str, descendant: str) -> bool:
    """True when `ancestor` is reachable from `descendant`; False too if it does not exist."""
    result = subprocess.run(
        ["git", "merge-base", "--is-ancestor", ancestor, descendant],
        cwd=repo, env=_ENVIRONMENT, capture_output=True, check=False,
    )
    return result.returncode == 0


def read_log(repo: Path, since: str | None, until: str) -> Iterator[Commit]:
    """Commits reachable from `until` but not from `since`, oldest first, in one git process."""
    revision = f"{since}..{until}" if since else until
    process = subprocess.Popen(
        ["git", *LOG_ARGUMENTS, revision, "--"],
        cwd=repo, env=_ENVIRONMENT, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
    )
    assert process.stdout is not None and process.stderr is not None
    try:
        yield from parse_log(nul_fields(process.stdout))
    finally:
        process.stdout.close()
        error = process.stderr.read().decode("utf-8", "replace").strip()
        process.stderr.close()
        if process.wait() != 0 and error:
            raise GitError(f"{repo}: git log failed: {error}")


class BlobReader:
    """One long-lived `git cat-file --batch` process; reads blobs by id.

    Thread-safe (a lock serialises requests). Restarted if it dies. Reading many blobs
    at once (`read_many`) pipelines the requests through a feeder thread, so git is never
    waiting for Python to ask for the next one.
    """

    def __init__(self, repo: Path):
        self.repo = Path(repo)
        self._lock = threading.Lock()
        self._process: subprocess.Popen | None = None

    def _start(self) -> subprocess.Popen:
        if self._process is None or self._process.poll() is not None:
            self._process = subprocess.Popen(
                ["git", "cat-file", "--batch"], cwd=self.repo, env=_ENVIRONMENT,
                stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
            )
        return self._process

    @staticmethod
    def _read_answer(stdout: IO[bytes], blob: str) -> bytes:
        header = stdout.readline()
        if not header:
            raise GitError(f"git cat-file stopped while reading {blob}")
        parts = header.split()
        if len(parts) != 3:  # "<id> missing" or "<id> ambiguous"
            raise MissingObject(blob)
        data = stdout.read(int(parts[2]))
        stdout.read(1)  # the newline after the content
        return data

    def read(self, blob: str) -> bytes:
        """The bytes of one blob; MissingObject if the repository does not have it."""
        with self._lock:
            process = self._start()
            assert process.stdin is not None and process.stdout is not None
            try:
                process.stdin.write(blob.encode("ascii") + b"\n")
                process.stdin.flush()
                return self._read_answer(process.stdout, blob)
            except (BrokenPipeError, GitError):
                self.close_unlocked()
                raise

    def read_many(self, blobs: list[str]) -> Iterator[bytes]:
        """The bytes of each blob, in order (a separate process, so requests are not blocked)."""
        process = subprocess.Popen(
            ["git", "cat-file", "--batch"], cwd=self.repo, env=_ENVIRONMENT,
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
        )
        assert process.stdin is not None and process.stdout is not None

        def feed() -> None:
            try:
                for blob in blobs:
                    process.stdin.write(blob.encode("ascii") + b"\n")
                process.stdin.close()
            except BrokenPipeError:
                pass

        feeder = threading.Thread(target=feed, daemon=True)
        feeder.start()
        try:
            for blob in blobs:
                yield self._read_answer(process.stdout, blob)
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


def blob_sizes(repo: Path, blobs: list[str]) -> dict[str, int]:
    """Size in bytes of each blob, with one `git cat-file --batch-check` (contents not read)."""
    if not blobs:
        return {}
    result = subprocess.run(
        ["git", "cat-file", "--batch-check"], cwd=repo, env=_ENVIRONMENT,
        input="\n".join(blobs).encode() + b"\n", capture_output=True, check=False,
    )
    sizes = {}
    for line in result.stdout.decode().splitlines():
        parts = line.split()
        if len(parts) == 3:
            sizes[parts[0]] = int(parts[2])
    return sizes
