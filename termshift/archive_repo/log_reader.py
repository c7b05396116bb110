"""The archive's one log reader: commits in bulk, from one `git log -z --raw` process.

Reading a whole repository must not cost a process per commit: the log gives, for every
commit, its id, author date, message and the blob id of each file it changed, which is
all a record needs (its content is then read by blob id through
`termshift.archive_repo.blob_reader`). The log is streamed and parsed as it comes, and a
reader that stops early stops git too: a short feed reads only the top of a long history.

Every module that reads the archive's history goes through here: `RecordRepository`
(records), the viewer's index (`commits_between`, `count_commits`, `is_ancestor`),
the viewer's freshness check (`head_fingerprint`), the feeds and webhooks
(`archive_repo.listing`), `/metrics` (`count_commits`) and the tracking run
(`archive.archive_heads`). Plain git processes, no GitPython: the bulk readers must stay fast.
"""

from __future__ import annotations

import os
import subprocess
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import IO

from termshift.errors import ArchiveError

# %H, %at and %B are NUL-separated; with -z, raw diff entries are NUL-separated too.
LOG_FORMAT = "--format=%H%x00%at%x00%B"
LOG_OPTIONS = (
    LOG_FORMAT,
    "-z",
    "--raw",
    "--no-abbrev",
    "--no-renames",  # a renamed file must read as a new file, as OTA's `--name-only` shows it
    "--root",  # the first commit's file shows as added
    "--no-merges",
    "--no-color",
    "--no-show-signature",
)
# The viewer's index reads new commits oldest first, parents before children even if
# dates disagree.
OLDEST_FIRST = ("--reverse", "--topo-order")
SUBMODULE_MODE = "160000"
_CHUNK = 1 << 16
_QUIET_GIT = {"LC_ALL": "C", "GIT_TERMINAL_PROMPT": "0", "GIT_OPTIONAL_LOCKS": "0"}


def git_environment() -> dict[str, str]:
    """The environment of the readers' git processes: the process's own, read now, with git
    kept from prompting, translating its messages or taking optional locks."""
    return {**os.environ, **_QUIET_GIT}


class GitError(ArchiveError):
    """A git command failed; the message names the repository and git's own words."""


@dataclass(frozen=True)
class FileChange:
    """One file changed by a commit: its path, new blob id and status letter (A, M, D, T)."""

    path: str
    blob: str
    status: str


@dataclass(frozen=True)
class LoggedCommit:
    """What `git log` tells about one commit."""

    id: str
    timestamp: int
    message: str
    changes: tuple[FileChange, ...]


# --- parsing ---------------------------------------------------------------------------------

def nul_fields(stream: IO[bytes]) -> Iterator[bytes]:
    """The NUL-separated fields of a byte stream, read in chunks."""
    pending = b""
    while chunk := stream.read(_CHUNK):
        pending += chunk
        *fields, pending = pending.split(b"\0")
        yield from fields
    if pending.strip():
        yield pending


def parse_log(fields: Iterable[bytes]) -> Iterator[LoggedCommit]:
    """Commits from the fields of `git log` run with LOG_OPTIONS.

    Layout per commit: id, author timestamp, message, then zero or more pairs
    (`:<mode> <mode> <old blob> <new blob> <status>`, path). A raw entry is recognised by
    its leading `:`, which no commit id has. Submodule entries (mode 160000) are left
    out: they point at commits of another repository, never at a record's blob.
    """
    iterator = iter(fields)
    pending: bytes | None = None
    while True:
        token = pending if pending is not None else next(iterator, None)
        pending = None
        if token is None:
            return
        commit_id = token.strip().decode("ascii")
        if not commit_id:
            continue
        timestamp = int(next(iterator))
        message = next(iterator).decode("utf-8", errors="replace")
        changes = []
        for token in iterator:
            entry = token.lstrip(b"\n")
            if not entry.startswith(b":"):
                pending = token
                break
            _old_mode, new_mode, _old_blob, new_blob, status = entry[1:].decode("ascii").split(" ")
            path = next(iterator).decode("utf-8", errors="surrogateescape")
            if new_mode == SUBMODULE_MODE:
                continue
            changes.append(FileChange(path=path, blob=new_blob, status=status[:1]))
        yield LoggedCommit(id=commit_id, timestamp=timestamp, message=message, changes=tuple(changes))


# --- reading -----------------------------------------------------------------------------------

def read_log(repo: Path, arguments: Sequence[str], pathspecs: Sequence[str] = ()) -> Iterator[LoggedCommit]:
    """Stream `git log LOG_OPTIONS <arguments> -- <pathspecs>` from one git process.

    `arguments` are revisions and ordering options (`HEAD`, `a..b`, `--reverse`…). A
    caller that stops iterating early kills git (no error then); a log that fails after
    being read to its end raises GitError with git's words.
    """
    process = subprocess.Popen(
        ["git", "log", *LOG_OPTIONS, *arguments, "--", *pathspecs],
        cwd=repo, env=git_environment(), stdout=subprocess.PIPE, stderr=subprocess.PIPE,
    )
    assert process.stdout is not None and process.stderr is not None
    finished = False
    try:
        yield from parse_log(nul_fields(process.stdout))
        finished = True
    finally:
        process.stdout.close()
        if not finished:
            process.kill()
        error = process.stderr.read().decode("utf-8", "replace").strip()
        process.stderr.close()
        if process.wait() != 0 and finished:
            raise GitError(f"{repo}: git log failed: {error or f'exit status {process.returncode}'}")


def commits_between(repo: Path, since: str | None, until: str) -> Iterator[LoggedCommit]:
    """Commits reachable from `until` but not from `since`, oldest first (parents before
    children), in one git process: how the viewer's index reads what is new."""
    return read_log(repo, [*OLDEST_FIRST, f"{since}..{until}" if since else until])


def run_git(repo: Path, *arguments: str, timeout: float | None = None) -> str:
    """Run git in `repo` and return its output; raise GitError on failure."""
    try:
        result = subprocess.run(
            ["git", *arguments], cwd=repo, env=git_environment(), capture_output=True, check=False, timeout=timeout,
        )
    except subprocess.TimeoutExpired:
        raise GitError(f"{repo}: git {arguments[0]} did not answer within {timeout:g} s") from None
    if result.returncode != 0:
        message = result.stderr.decode("utf-8", "replace").strip()
        raise GitError(f"{repo}: git {arguments[0]} failed: {message}")
    return result.stdout.decode("utf-8", "surrogateescape")


def check_repository(repo: Path) -> None:
    """Raise GitError unless `repo` is a git repository (work tree or bare)."""
    if not Path(repo).is_dir():
        raise GitError(f"{repo}: no such directory")
    run_git(repo, "rev-parse", "--git-dir")


def is_repository(repo: Path) -> bool:
    """Whether git sees a repository at `repo` (with or without commits)."""
    try:
        check_repository(repo)
    except (GitError, OSError):
        return False
    return True


def looks_like_repository(repo: Path) -> bool:
    """`repo` holds `.git` or is a bare repository (checked on disk: git is not asked, so
    a folder inside another repository is not taken for it)."""
    return (Path(repo) / ".git").exists() or (Path(repo) / "HEAD").is_file()


def head_commit(repo: Path) -> str | None:
    """The commit HEAD points at, or None for a repository without commits."""
    result = subprocess.run(
        ["git", "rev-parse", "--verify", "--quiet", "HEAD^{commit}"],
        cwd=repo, env=git_environment(), capture_output=True, check=False,
    )
    return result.stdout.decode().strip() or None


def has_commits(repo: Path) -> bool:
    """`repo` is a repository of its own (see `looks_like_repository`) with at least one commit."""
    return Path(repo).is_dir() and looks_like_repository(repo) and head_commit(repo) is not None


def head_fingerprint(repo: Path) -> tuple:
    """A cheap value that changes when HEAD may have moved (no subprocess): checked before
    every page, so a handful of system calls.

    It combines the modification times of HEAD, the current branch's ref file and
    packed-refs, and the ref's content; an unchanged fingerprint means nothing was committed.
    """
    git_dir = os.path.join(repo, ".git")
    if not os.path.isdir(git_dir):
        git_dir = os.fspath(repo)  # bare repository
    head_path = os.path.join(git_dir, "HEAD")
    head_stat = _stat(head_path)
    parts: list[object] = [head_stat[1] if head_stat else None, _modified(os.path.join(git_dir, "packed-refs"))]
    reference = _head_reference(head_path, head_stat)
    if reference.startswith("ref: "):
        ref_path = os.path.join(git_dir, reference[5:])
        parts.append(_modified(ref_path))
        # The ref's content too: two commits within one tick of the file system's clock
        # leave the same modification time, but never the same commit id.
        parts.append(_read_bytes(ref_path))
    parts.append(reference)
    return tuple(parts)


_head_references: dict[tuple, str] = {}  # HEAD's content by (path, inode, mtime, size): it rarely changes


def _stat(path: str) -> tuple[int, int, int] | None:
    try:
        found = os.stat(path)
    except OSError:
        return None
    return found.st_ino, found.st_mtime_ns, found.st_size


def _modified(path: str) -> int | None:
    found = _stat(path)
    return found[1] if found else None


def _read_bytes(path: str) -> bytes | None:
    try:
        with open(path, "rb") as file:
            return file.read()
    except OSError:
        return None


def _head_reference(head_path: str, head_stat: tuple | None) -> str:
    """HEAD's content (`ref: refs/heads/main`, or a commit id when detached), read again
    only when the file changed."""
    if head_stat is None:
        return ""
    key = (head_path, *head_stat)
    reference = _head_references.get(key)
    if reference is None:
        content = _read_bytes(head_path)
        reference = content.decode("utf-8", "replace").strip() if content is not None else ""
        if len(_head_references) > 64:
            _head_references.clear()
        _head_references[key] = reference
    return reference


def count_commits(
    repo: Path, since: str | None, until: str, *, pathspecs: Sequence[str] = (), include_merges: bool = False,
    timeout: float | None = None,
) -> int:
    """Number of commits reachable from `until` but not from `since` (cheap: no diffs).

    By default merges are left out, as in `read_log`: the number of commits
    `commits_between(repo, since, until)` yields.
    """
    revision = f"{since}..{until}" if since else until
    merges = () if include_merges else ("--no-merges",)
    output = run_git(repo, "rev-list", "--count", *merges, revision, "--", *pathspecs, timeout=timeout)
    return int(output.strip() or 0)


def is_ancestor(repo: Path, ancestor: str, descendant: str) -> bool:
    """True when `ancestor` is reachable from `descendant`; False too if it does not exist."""
    result = subprocess.run(
        ["git", "merge-base", "--is-ancestor", ancestor, descendant],
        cwd=repo, env=git_environment(), capture_output=True, check=False,
    )
    return result.returncode == 0


def tree_paths(repo: Path, revision: str = "HEAD") -> list[str]:
    """Every file path in the tree of `revision` (`git ls-tree -r`)."""
    output = run_git(repo, "ls-tree", "-r", "-z", "--name-only", revision)
    return [name for name in output.split("\0") if name]
