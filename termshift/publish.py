"""Publishing: `git push` of the snapshots and versions repositories after each run.

OTA pushes at the end of every run (`recorder.*.storage.git.publish`). Here each
repository is pushed by its own background thread, so a slow or unreachable remote
never delays the next run, nor the push of the other repository; a failed push is
retried `publish.retries` times with a doubling wait from `publish.backoff` seconds.
A run finishing while a push of a repository is still going just asks for one more
push of it afterwards (pushes coalesce: the newest HEAD is what matters).

Every attempt's outcome is a row of `publish_log` in `<data>/scheduler.sqlite` (this
module owns that table); the status page and /metrics show the last one per repository
(`last_pushes`). Remote URLs are logged with any
password removed.

Remotes are given as URLs or paths (`publish.snapshots_remote`, `publish.versions_remote`)
and pushed to directly, `HEAD:refs/heads/<publish.branch>`, never forced: a remote that
moved on is a failure to look at, not something to overwrite.
"""

from __future__ import annotations

import logging
import os
import re
import subprocess
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

from termshift.config import Settings
from termshift.errors import TermshiftError
from termshift.job_history import connect_state, read_state

log = logging.getLogger(__name__)

PUBLISH_SCHEMA = """
CREATE TABLE IF NOT EXISTS publish_log (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    repository TEXT NOT NULL,   -- snapshots or versions
    remote TEXT NOT NULL,       -- without credentials
    ok INTEGER NOT NULL,
    attempts INTEGER NOT NULL,
    started_at REAL NOT NULL,
    finished_at REAL NOT NULL,
    head TEXT,                  -- the commit pushed (or that failed to be)
    error TEXT
);
"""
LOG_KEPT = 1000


def last_pushes(data_dir: Path) -> list[dict[str, Any]]:
    """The last push of each repository (a `publish_log` row), with `last_success` (when it
    last succeeded) and `failures` (failed pushes kept in the log); [] before any push."""
    return read_state(
        data_dir, "publish_log",
        "SELECT p.*, (SELECT MAX(finished_at) FROM publish_log s WHERE s.repository = p.repository AND s.ok = 1)"
        " AS last_success, (SELECT COUNT(*) FROM publish_log f WHERE f.repository = p.repository AND f.ok = 0)"
        " AS failures FROM publish_log p WHERE p.id IN (SELECT MAX(id) FROM publish_log GROUP BY repository)"
        " ORDER BY p.repository",
    )


class PublishError(TermshiftError, RuntimeError):
    """A push failed; the message holds git's own words."""


@dataclass(frozen=True)
class PushResult:
    repository: str
    remote: str
    ok: bool
    attempts: int
    started_at: float
    finished_at: float
    head: str | None
    error: str | None = None


def redact(remote: str) -> str:
    """`remote` without a password or token: `https://user:secret@host/x` → `https://user:***@host/x`."""
    parts = urlsplit(remote)
    if not parts.scheme or "@" not in parts.netloc:
        return remote
    userinfo, host = parts.netloc.rsplit("@", 1)
    user = userinfo.split(":", 1)[0]
    return urlunsplit(parts._replace(netloc=f"{user}:***@{host}" if ":" in userinfo else f"***@{host}"))


def local_path_resolved(remote: str) -> str:
    """A remote that is a local path, made absolute: git would read a relative one from inside
    the repository, not from where the operator wrote it. URLs and `host:path` stay as they are."""
    if not remote or "://" in remote or re.match(r"^[^/]+:", remote):
        return remote
    return str(Path(remote).expanduser().resolve())


def push(repository: Path, remote: str, branch: str, timeout: float) -> str | None:
    """Push HEAD of `repository` to `branch` of `remote`; return the commit pushed (None when
    the repository has no commit yet).

    Raises PublishError with git's message. Never prompts for credentials (a prompt
    would hang the thread until the timeout).
    """
    environment = {**os.environ, "GIT_TERMINAL_PROMPT": "0", "GIT_ASKPASS": "true"}

    def git(*arguments: str) -> str:
        try:
            completed = subprocess.run(
                ["git", "-C", str(repository), *arguments], capture_output=True, text=True,
                timeout=timeout, env=environment, check=False,
            )
        except subprocess.TimeoutExpired:
            raise PublishError(f"git {arguments[0]} took more than {timeout:g} s") from None
        if completed.returncode != 0:
            message = (completed.stderr or completed.stdout).strip().replace(remote, redact(remote))
            raise PublishError(message or f"git {arguments[0]} exited with {completed.returncode}")
        return completed.stdout.strip()

    if remote.startswith("-"):
        # git would read it as an option (`--receive-pack=…` runs a command).
        raise PublishError(f"remote {remote!r} starts with '-': not a git URL or path")
    if not Path(repository).is_dir():
        raise PublishError(f"{repository}: no such repository (nothing recorded yet?)")
    try:
        head = git("rev-parse", "--verify", "HEAD")
    except PublishError:
        return None  # an empty repository: nothing to push yet
    git("push", "--porcelain", "--quiet", "--", remote, f"HEAD:refs/heads/{branch}")
    return head


class _Worker:
    """The background pushes of one repository: one thread at a time; a request made while
    it runs asks for one more round after it."""

    def __init__(self, name: str, publish_one: Any, remote: str, stop_event: threading.Event) -> None:
        self.name, self.remote, self._publish_one, self.stop_event = name, remote, publish_one, stop_event
        self._lock = threading.Lock()
        self._thread: threading.Thread | None = None
        self._again = False

    def request(self) -> threading.Thread:
        with self._lock:
            if self._thread is not None and self._thread.is_alive():
                self._again = True
                return self._thread
            self._thread = threading.Thread(target=self._run, name=f"termshift-publish-{self.name}", daemon=True)
            self._thread.start()
            return self._thread

    def wait(self, timeout: float | None) -> bool:
        thread = self._thread
        if thread is not None:
            thread.join(timeout)
            return not thread.is_alive()
        return True

    def _run(self) -> None:
        while True:
            try:
                self._publish_one(self.name, self.remote)
            except Exception:  # a bug here must not kill later pushes silently
                log.exception("publishing %s failed", self.name)
            with self._lock:
                if not self._again or self.stop_event.is_set():
                    self._again = False
                    return
                self._again = False


class Publisher:
    """Pushes both repositories of a data folder to their remotes, in the background."""

    def __init__(
        self,
        data_dir: Path,
        remotes: dict[str, str],
        *,
        branch: str = "main",
        retries: int = 3,
        backoff: float = 30.0,
        timeout: float = 600.0,
        stop_event: threading.Event | None = None,
    ) -> None:
        self.data_dir = Path(data_dir)
        self.remotes = {name: remote for name, remote in remotes.items() if remote}
        self.branch, self.retries, self.backoff, self.timeout = branch, retries, backoff, timeout
        self.stop_event = stop_event or threading.Event()  # set: no more retries (shutdown)
        # One background worker per repository: a remote that fails (and waits to retry)
        # never holds up the push of the other repository.
        self._workers = {name: _Worker(name, self._publish_one, remote, self.stop_event)
                         for name, remote in self.remotes.items()}
        with connect_state(self.data_dir) as db:
            db.executescript(PUBLISH_SCHEMA)

    @classmethod
    def from_settings(cls, settings: Settings, stop_event: threading.Event | None = None) -> Publisher | None:
        """The publisher `[publish]` describes, or None when no remote is configured."""
        section = settings.publish
        remotes = {"snapshots": local_path_resolved(section.snapshots_remote),
                   "versions": local_path_resolved(section.versions_remote)}
        if not any(remotes.values()):
            return None
        return cls(Path(settings.data), remotes, branch=section.branch, retries=section.retries,
                   backoff=section.backoff, timeout=section.timeout, stop_event=stop_event)

    def publish(self) -> list[PushResult]:
        """Push every configured repository now, all at once (each with its retries); record and
        return the outcomes, in the order of `remotes`."""
        results: dict[str, PushResult] = {}

        def push_one(name: str, remote: str) -> None:
            results[name] = self._publish_one(name, remote)

        threads = [threading.Thread(target=push_one, args=item, name=f"termshift-publish-{item[0]}", daemon=True)
                   for item in self.remotes.items()]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        return [results[name] for name in self.remotes if name in results]

    def publish_in_background(self) -> list[threading.Thread]:
        """Start pushing each repository in its own thread and return at once. If a push of a
        repository is already under way, one more round of it follows (so the latest commits
        always get out)."""
        return [worker.request() for worker in self._workers.values()]

    def wait(self, timeout: float | None = None) -> bool:
        """Wait for the background pushes to end; False if one is still running after `timeout`."""
        deadline = None if timeout is None else time.monotonic() + timeout
        for worker in self._workers.values():
            remaining = None if deadline is None else max(0.0, deadline - time.monotonic())
            if not worker.wait(remaining):
                return False
        return True

    def _publish_one(self, name: str, remote: str) -> PushResult:
        repository = self.data_dir / name
        shown = redact(remote)
        started = time.time()
        attempts, error, head = 0, None, None
        delay = self.backoff
        while True:
            attempts += 1
            try:
                head = push(repository, remote, self.branch, self.timeout)
                error = None
                break
            except PublishError as failure:
                error = str(failure)
            if attempts > self.retries or self.stop_event.is_set():
                break
            log.warning("push of %s to %s failed (attempt %d), retrying in %g s: %s",
                        name, shown, attempts, delay, error)
            if self.stop_event.wait(delay):
                break
            delay *= 2
        result = PushResult(name, shown, error is None, attempts, started, time.time(), head, error)
        self._record(result)
        if result.ok:
            log.info("pushed %s (%s) to %s", name, (head or "")[:12], shown)
        else:
            log.error("push of %s to %s failed after %d attempt(s): %s", name, shown, attempts, error)
        return result

    def _record(self, result: PushResult) -> None:
        with connect_state(self.data_dir) as db:
            db.execute(
                "INSERT INTO publish_log (repository, remote, ok, attempts, started_at, finished_at, head, error)"
                " VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                (result.repository, result.remote, int(result.ok), result.attempts, result.started_at,
                 result.finished_at, result.head, result.error),
            )
            db.execute("DELETE FROM publish_log WHERE id <= (SELECT MAX(id) FROM publish_log) - ?", (LOG_KEPT,))
