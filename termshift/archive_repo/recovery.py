"""Bring a repository back to a clean state after a writer died (SIGKILL, power cut, OOM).

What a dead writer can leave behind, given how `RecordRepository.record` writes:
- git lock files (`index.lock`, `HEAD.lock`, `refs/heads/main.lock`, `commit-graph.lock`…)
  that make every later git command fail;
- temporary object files (`objects/??/tmp_obj_termshift_*`), written before their rename;
- a work-tree temporary file (`<service>/.<name>.termshift-tmp`), or a work tree and
  index one commit behind HEAD (killed between the ref update and the checkout).
Committed records are never at risk: a commit becomes visible only through the atomic
`update-ref`, after all its objects are complete and flushed to disk (object_store).

A power cut on a repository written without those flushes (by an older Termshift, or
by git with its default settings) can leave the branch pointing at a commit whose
object files are empty. `repair_head` finds the newest commit of the reflog whose
objects are whole, moves the branch back to it and says what was lost: the next run
records those documents again.

These functions must only run while holding the repository's writer lock, so that no
live writer of ours owns the files removed.
"""

from __future__ import annotations

import logging
import time
from pathlib import Path

import git

from termshift.archive_repo.object_store import (
    TEMP_OBJECT_PREFIX,
    TREE_MODE,
    commit_tree_id,
    parse_tree,
    read_loose_object,
)
from termshift.errors import ArchiveError

log = logging.getLogger(__name__)

WORK_TREE_TEMP_SUFFIX = ".termshift-tmp"
# Seconds a leftover must have existed before it is taken for stale (see wait_for_settled).
LOCK_SETTLE_SECONDS = 2.0
# Lock files git itself creates, relative to the git directory.
_GIT_LOCKS = (
    "index.lock",
    "HEAD.lock",
    "ORIG_HEAD.lock",
    "config.lock",
    "packed-refs.lock",
    "shallow.lock",
    "objects/info/commit-graph.lock",
    "objects/info/alternates.lock",
)


def stale_files(git_dir: Path, work_tree: Path) -> list[Path]:
    """Every leftover of a dead writer, as listed in the module docstring."""
    found = [git_dir / name for name in _GIT_LOCKS]
    found += (git_dir / "refs").rglob("*.lock")
    found += (git_dir / "logs").rglob("*.lock")
    found += (git_dir / "objects" / "info" / "commit-graphs").glob("*.lock")
    found += (git_dir / "objects").glob(f"??/{TEMP_OBJECT_PREFIX}*")
    found += work_tree.glob(f"*/.*{WORK_TREE_TEMP_SUFFIX}")
    return [path for path in found if path.is_file()]


def _age(path: Path) -> float:
    try:
        return time.time() - path.stat().st_mtime
    except FileNotFoundError:
        return float("inf")


def wait_for_settled(git_dir: Path, work_tree: Path, settle: float) -> None:
    """Give leftovers younger than `settle` seconds the time to disappear on their own.

    A writer killed alone (not its process group) leaves its git child processes running
    for a few milliseconds: `git update-ref` finishing the last commit still holds the
    branch's lock file. Deleting a lock its owner still holds would break git's own
    protection, so a fresh lock is given `settle` seconds to go away before it counts
    as stale.
    """
    deadline = time.monotonic() + settle
    while time.monotonic() < deadline:
        if all(_age(path) >= settle for path in stale_files(git_dir, work_tree)):
            return
        time.sleep(0.05)


def remove_stale_files(git_dir: Path, work_tree: Path) -> list[Path]:
    """Delete the leftovers of a dead writer; return what was removed."""
    removed = []
    for path in stale_files(git_dir, work_tree):
        path.unlink(missing_ok=True)
        removed.append(path)
        log.warning("removed %s left by an interrupted writer", path)
    return removed


def reset_to_head(repo: git.Repo) -> None:
    """Make the index and the work tree match HEAD (a no-op for files already matching).

    Like OTA's `git reset --hard` at start-up; untracked files other than our own
    temporaries are left alone (OTA also runs `git clean -f -d`, which we do not).
    git's index is only a cache of HEAD here: a damaged one is removed and rebuilt.
    """
    if not repo.head.is_valid():
        return  # no commit yet: nothing can be behind
    try:
        repo.git.reset("--hard", "--quiet", "HEAD")
    except git.GitCommandError as error:
        index = Path(repo.git_dir) / "index"
        if "index" not in str(error.stderr) or not index.is_file():
            raise
        log.warning("%s: git's index is damaged (%s); rebuilt from HEAD", repo.working_tree_dir,
                    str(error.stderr).strip())
        index.unlink()
        repo.git.reset("--hard", "--quiet", "HEAD")


class _Objects:
    """Reads objects to check that they are whole: loose ones from their files (hash
    checked), packed ones through git."""

    def __init__(self, repo: git.Repo):
        self.repo = repo
        self.objects_dir = Path(repo.git_dir) / "objects"
        self.damaged: set[str] = set()

    def read(self, hex_id: str) -> bytes | None:
        path = self.objects_dir / hex_id[:2] / hex_id[2:]
        if path.is_file():
            data = read_loose_object(path, hex_id)
            if data is None:
                self.damaged.add(hex_id)
            return data
        try:
            return self.repo.odb.stream(bytes.fromhex(hex_id)).read()
        except Exception:  # absent, or a damaged pack: either way not whole
            return None

    def tree(self, hex_id: str) -> dict[str, tuple[bytes, int]] | None:
        data = self.read(hex_id)
        if data is None:
            return None
        try:
            return {name: (binsha, mode) for binsha, mode, name in parse_tree(data)}
        except Exception:
            return None

    def commit_is_whole(self, commit: str) -> bool:
        """The commit, its trees and every file it changed compared with its first parent
        are readable: what one record writes (object_store) is all there."""
        data = self.read(commit)
        if data is None:
            return False
        try:
            tree = commit_tree_id(data)
        except ValueError:
            return False
        parents = [line[7:].decode("ascii") for line in data.split(b"\n\n", 1)[0].split(b"\n")
                   if line.startswith(b"parent ")]
        before: dict[str, tuple[bytes, int]] | None = {}
        if parents:
            parent = self.read(parents[0])
            before = self.tree(commit_tree_id(parent)) if parent is not None else None
        return before is not None and self._trees_whole(tree, before)

    def _trees_whole(self, tree: str, before: dict[str, tuple[bytes, int]]) -> bool:
        entries = self.tree(tree)
        if entries is None:
            return False
        for name, (binsha, mode) in entries.items():
            if before.get(name) == (binsha, mode):
                continue  # unchanged: checked when its own commit was written
            if mode == TREE_MODE:
                old = before.get(name)
                old_entries = self.tree(old[0].hex()) if old and old[1] == TREE_MODE else {}
                if not self._trees_whole(binsha.hex(), old_entries or {}):
                    return False
            elif self.read(binsha.hex()) is None:
                return False
        return True


def _reflog_commits(git_dir: Path, branch: str) -> list[str]:
    """Commits the branch pointed at, newest first, from its reflog."""
    log_file = git_dir / "logs" / branch
    try:
        lines = log_file.read_text(encoding="utf-8", errors="replace").splitlines()
    except OSError:
        return []
    seen: list[str] = []
    for line in reversed(lines):
        fields = line.split(" ", 2)
        for commit in fields[1::-1] if len(fields) >= 2 else []:
            if len(commit) == 40 and commit != "0" * 40 and commit not in seen:
                seen.append(commit)
    return seen


def repair_head(repo: git.Repo) -> str | None:
    """Move the branch back to its newest whole commit when HEAD's objects are damaged.

    Returns the commit moved to, or None when HEAD was whole (or there is no commit).
    Raises ArchiveError when no whole commit is left in the reflog.
    """
    git_dir = Path(repo.git_dir)
    head_file = (git_dir / "HEAD").read_text(encoding="utf-8", errors="replace").strip()
    if not head_file.startswith("ref: "):
        return None  # a detached HEAD, which we never write
    branch = head_file[5:]
    try:
        head: str | None = repo.git.rev_parse("--verify", "--quiet", branch).strip()
    except git.GitCommandError:
        head = None
    objects = _Objects(repo)
    if head is None:
        if not (git_dir / branch).is_file():
            return None  # no commit yet
        # The branch's file exists but git cannot read it (emptied by a power cut).
        (git_dir / branch).unlink()
    elif objects.commit_is_whole(head):
        return None
    good = next((commit for commit in _reflog_commits(git_dir, branch)
                 if commit != head and objects.commit_is_whole(commit)), None)
    if good is None:
        raise ArchiveError(
            f"{repo.working_tree_dir}: HEAD ({head}) points at damaged objects (a power cut?) and no "
            "whole commit is left in its reflog; restore the repository from a copy (its publish remote)"
        )
    lost = _reflog_commits(git_dir, branch).index(good)  # one reflog entry per record
    repo.git(c=["core.fsync=reference"]).update_ref("-m", "termshift: recover from damaged objects", branch, good)
    removed = _remove_empty_objects(git_dir / "objects", objects.damaged)
    # Drop the reflog entries of the lost commits, or `git fsck` reports them forever.
    repo.git.reflog("expire", "--stale-fix", "--expire=never", "--expire-unreachable=never", "--all")
    log.error(
        "%s: HEAD %s pointed at damaged objects (empty or corrupt files, a power cut?): moved back to %s, "
        "the newest whole commit; %d record(s) after it are lost and will be recorded again by the next "
        "run; %d damaged object file(s) removed",
        repo.working_tree_dir, head, good, lost, len(removed),
    )
    return good


def _remove_empty_objects(objects_dir: Path, damaged: set[str]) -> list[Path]:
    """Delete the damaged loose objects found, and every empty loose object file: an empty
    object is never valid, and leaving it would make git refuse to write it again."""
    paths = {objects_dir / hex_id[:2] / hex_id[2:] for hex_id in damaged}
    paths |= {path for path in objects_dir.glob("??/*") if path.is_file() and path.stat().st_size == 0}
    for path in paths:
        path.unlink(missing_ok=True)
    return sorted(paths)


def recover(repo: git.Repo, settle: float | None = None) -> list[Path]:
    """Remove stale locks and temporaries, move HEAD off damaged objects, then reset
    index and work tree to HEAD."""
    git_dir, work_tree = Path(repo.git_dir), Path(repo.working_tree_dir)
    wait_for_settled(git_dir, work_tree, LOCK_SETTLE_SECONDS if settle is None else settle)
    removed = remove_stale_files(git_dir, work_tree)
    repair_head(repo)
    reset_to_head(repo)
    return removed
