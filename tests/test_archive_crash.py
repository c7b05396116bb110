"""Crash safety: a writer killed at any moment leaves valid repositories that recover.

The killing test runs tests/support/archive_writer.py, which records without pause, and
SIGKILLs it at seeded random moments: either the writer alone (its git child processes
finish on their own) or its whole process group (git killed mid-operation too, which
leaves git's lock files behind). After each kill the archive is reopened and checked.
"""

from __future__ import annotations

import os
import random
import select
import signal
import subprocess
import sys
import time
from datetime import UTC, datetime
from pathlib import Path

import pytest

from termshift.archive_repo import Archive, RecordRepository, Snapshot, recovery
from tests.support.archive_writer import expected_content

REPO_ROOT = Path(__file__).resolve().parent.parent
ROUNDS = 8
DAY = datetime(2024, 3, 1, tzinfo=UTC)


def git(repo: Path, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run(["git", "-C", str(repo), *args], capture_output=True, text=True)


def start_writer(data_dir: Path, first_sequence: int) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "-m", "tests.support.archive_writer", str(data_dir), str(first_sequence)],
        cwd=REPO_ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        start_new_session=True,  # its own process group, to kill git children with it
    )


def wait_until_ready(writer: subprocess.Popen, timeout: float = 60) -> None:
    ready, _, _ = select.select([writer.stdout], [], [], timeout)
    line = writer.stdout.readline() if ready else b""
    if line.strip() != b"ready":
        writer.kill()
        pytest.fail(f"writer did not start: {line!r} {writer.stderr.read().decode()}")


def committed_lines(output: bytes) -> dict[tuple[str, str], int]:
    """(repository, commit id) -> sequence, for every complete line the writer printed."""
    committed = {}
    for line in output.decode().split("\n"):
        parts = line.split()
        if len(parts) == 3 and parts[0] in ("snapshots", "versions") and len(parts[2]) == 40:
            committed[(parts[0], parts[2])] = int(parts[1])
    return committed


def assert_repository_sound(repository: RecordRepository, committed: dict[tuple[str, str], int]) -> int:
    """fsck clean, work tree and index equal to HEAD, every commit a readable, intact record.

    Returns the highest sequence number recorded.
    """
    path = repository.path
    fsck = git(path, "fsck", "--strict", "--no-progress")
    assert fsck.returncode == 0, fsck.stderr
    assert not any(word in fsck.stdout + fsck.stderr for word in ("error", "missing", "broken", "corrupt"))
    assert git(path, "status", "--porcelain", "--untracked-files=all").stdout == ""
    assert [lock.name for lock in (path / ".git").rglob("*.lock")] == ["termshift.lock"]  # ours, unlocked
    commits = git(path, "rev-list", "HEAD").stdout.split()
    records = list(repository.iterate())
    assert sorted(record.id for record in records) == sorted(commits)  # no commit lost or unreadable
    by_id = {record.id: record for record in records}
    for (kind, commit), sequence in committed.items():
        if kind == repository.kind:
            assert by_id[commit].metadata["x-sequence"] == str(sequence)
    for record in records:
        assert record.content == expected_content(repository.kind, int(record.metadata["x-sequence"])), record
    return max((int(record.metadata["x-sequence"]) for record in records), default=-1)


def test_writer_killed_at_random_moments_leaves_valid_recoverable_repositories(tmp_path, monkeypatch):
    # Our own reopen waits less than the default for git children of the killed writer.
    monkeypatch.setattr(recovery, "LOCK_SETTLE_SECONDS", 0.5)
    rng = random.Random(20240301)
    data_dir = tmp_path / "data"
    committed: dict[tuple[str, str], int] = {}
    next_sequence = 0
    for round_number in range(ROUNDS):
        writer = start_writer(data_dir, next_sequence)
        wait_until_ready(writer)
        time.sleep(rng.uniform(0.0, 0.6))
        if round_number % 2:
            os.killpg(writer.pid, signal.SIGKILL)
        else:
            writer.send_signal(signal.SIGKILL)
        output, _errors = writer.communicate(timeout=30)
        assert writer.returncode == -signal.SIGKILL
        committed.update(committed_lines(output))

        with Archive.open(data_dir) as archive:
            highest = max(
                assert_repository_sound(archive.snapshots, committed),
                assert_repository_sound(archive.versions, committed),
            )
            for version in archive.versions.iterate():
                for snapshot_id in version.snapshot_ids:
                    assert archive.snapshots.find_by_id(snapshot_id) is not None
        next_sequence = highest + 1

    assert len(committed) > ROUNDS, "the writer hardly recorded anything before being killed"
    with Archive.open(data_dir) as archive:  # recording goes on after the last kill
        recorded = archive.snapshots.record(Snapshot("Third", "Terms of Service", DAY, "<p>after the crashes</p>"))
        assert recorded.id and archive.snapshots.latest("Third", "Terms of Service").id == recorded.id


def test_stale_locks_and_half_written_files_are_recovered(tmp_path):
    path = tmp_path / "snapshots"
    with RecordRepository(path, "snapshots") as repository:
        first = repository.record(Snapshot("Service B!", "Terms of Service", DAY, "<p>one</p>"))
    git_dir = path / ".git"
    leftovers = [
        git_dir / "index.lock",
        git_dir / "HEAD.lock",
        git_dir / "refs" / "heads" / "main.lock",
        git_dir / "objects" / "info" / "commit-graph.lock",
        git_dir / "objects" / "ab" / f"{recovery.TEMP_OBJECT_PREFIX}x1y2",
        path / "Service B!" / f".Terms of Service.html{recovery.WORK_TREE_TEMP_SUFFIX}",
    ]
    for leftover in leftovers:
        leftover.parent.mkdir(parents=True, exist_ok=True)
        leftover.write_bytes(b"left by a dead writer")
        os.utime(leftover, (time.time() - 60, time.time() - 60))
    (path / "Service B!" / "Terms of Service.html").write_text("<p>on")  # half-written
    assert git(path, "commit-graph", "write", "--reachable").returncode != 0  # git is blocked

    with RecordRepository(path, "snapshots") as repository:
        assert not any(leftover.exists() for leftover in leftovers)
        assert (path / "Service B!" / "Terms of Service.html").read_text() == "<p>one</p>"
        assert git(path, "status", "--porcelain", "--untracked-files=all").stdout == ""
        second = repository.record(Snapshot("Service B!", "Terms of Service", DAY, "<p>two</p>"))
        assert repository.history("Service B!", "Terms of Service")[1].id == first.id
        assert second.is_first_record is False
    assert git(path, "fsck", "--strict").returncode == 0


def test_fresh_locks_are_given_time_to_be_released(tmp_path):
    """A lock a still-running git child holds is not deleted under its feet."""
    path = tmp_path / "versions"
    RecordRepository(path, "versions").close()
    lock = path / ".git" / "index.lock"
    lock.write_bytes(b"")
    holder = subprocess.Popen(["sh", "-c", 'sleep 0.3 && rm "$0"', str(lock)])  # fails if the lock is gone
    started = time.monotonic()
    RecordRepository(path, "versions").close()  # waits for the lock to go, then resets
    assert holder.wait() == 0  # the holder removed its own lock: we did not
    assert time.monotonic() - started >= 0.25
