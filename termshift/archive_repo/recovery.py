"""Bring a repository back to a clean state after a writer died (SIGKILL, power cut, OOM).

What a dead writer can leave behind, given how `RecordRepository.record` writes:
- git lock files (`index.lock`, `HEAD.lock`, `refs/heads/main.lock`, `commit-graph.lock`…)
  that make every later git command fail;
- temporary object files (`objects/??/tmp_obj_termshift_*`), written before their rename;
- a work-tree temporary file (`<service>/.<name>.termshift-tmp`), or a work tree and
  index one commit behind HEAD (killed between the ref update and the checkout).
Committed records are never at risk: a commit becomes visible only through the atomic
`update-ref`, after all its objects are complete.

These functions must only run while holding the repository's writer lock, so that no
live writer of ours owns the files removed.
"""

from __future__ import annotations

import logging
import time
from pathlib import Path

import git

from termshift.archive_repo.object_store import TEMP_OBJECT_PREFIX

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
    """
    if not repo.head.is_valid():
        return  # no commit yet: nothing can be behind
    repo.git.reset("--hard", "--quiet", "HEAD")


def recover(repo: git.Repo, settle: float | None = None) -> list[Path]:
    """Remove stale locks and temporaries, then reset index and work tree to HEAD."""
    git_dir, work_tree = Path(repo.git_dir), Path(repo.working_tree_dir)
    wait_for_settled(git_dir, work_tree, LOCK_SETTLE_SECONDS if settle is None else settle)
    removed = remove_stale_files(git_dir, work_tree)
    reset_to_head(repo)
    return removed
