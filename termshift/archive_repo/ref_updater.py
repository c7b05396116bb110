"""Move HEAD with a long-running `git update-ref --stdin`, one transaction per record.

`update <ref> <new> <old>` is git's atomic compare-and-swap on a ref: it fails when the
ref is no longer at <old>, so a commit built on a stale HEAD can never drop another
commit. Keeping one process for all records saves a process start per commit. If this
process is killed with its parent, git sees its input end inside an open transaction
and aborts it: the ref is either moved or not, never half-written.
"""

from __future__ import annotations

import contextlib
import subprocess
from typing import Any

import git

from termshift.errors import ArchiveError

REFLOG_MESSAGE = "commit: termshift record"
# git -c options: flush refs (and reflogs) to disk when they move.
FSYNC_OPTIONS = ("core.fsync=reference", "core.fsyncMethod=fsync")


class RefUpdater:
    """Compare-and-swap updates of one repository's refs."""

    def __init__(self, repo: git.Repo):
        self._repo = repo
        self._process: Any = None

    def update(self, ref: str, new: str, old: str) -> None:
        """Point `ref` (HEAD: its branch) at `new` if it is at `old` (40 zeros: absent).

        Raises ArchiveError with git's message when the ref moved or cannot be locked.
        """
        process = self._started()
        try:
            process.stdin.write(f"start\nupdate {ref} {new} {old}\ncommit\n".encode("ascii"))
            process.stdin.flush()
            replies = [process.stdout.readline().decode("utf-8", "replace").strip() for _ in range(2)]
        except OSError:
            replies = []
        if replies != ["start: ok", "commit: ok"]:
            reason = self._stop_and_read_error() or f"unexpected reply {replies!r}"
            raise ArchiveError(f"{self._repo.working_tree_dir}: could not move {ref} to {new}: {reason}")

    def close(self) -> None:
        if self._process is not None:
            process, self._process = self._process, None
            try:
                process.stdin.close()
                process.proc.wait(timeout=10)
            except (OSError, subprocess.TimeoutExpired):
                process.proc.kill()

    def _started(self) -> Any:
        if self._process is None or self._process.proc.poll() is not None:
            # git does not fsync refs by default: ask it to (git >= 2.36 knows core.fsync;
            # older versions ignore the key), so a moved ref survives a power cut.
            self._process = self._repo.git(c=list(FSYNC_OPTIONS)).update_ref(
                "-m", REFLOG_MESSAGE, "--stdin", as_process=True, istream=subprocess.PIPE
            )
        return self._process

    def _stop_and_read_error(self) -> str:
        process, self._process = self._process, None
        with contextlib.suppress(OSError):
            process.stdin.close()
        process.proc.wait(timeout=10)
        return process.proc.stderr.read().decode("utf-8", "replace").strip()
