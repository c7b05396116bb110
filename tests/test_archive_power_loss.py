"""Power loss: objects and refs reach the disk before a commit is published, and a
repository torn by a power cut (empty object files behind HEAD, an emptied ref file)
recovers at the next open instead of stopping tracking."""

from __future__ import annotations

import os
import subprocess
from datetime import UTC, datetime
from pathlib import Path

import pytest

from termshift.archive_repo import RecordRepository, Snapshot, object_store


def git(repo: Path, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run(["git", "-C", str(repo), *args], capture_output=True, text=True, check=False)


def record(repository: RecordRepository, n: int) -> Snapshot:
    snapshot = Snapshot("Service A", "Terms of Service", datetime(2026, 1, n, tzinfo=UTC), f"<p>revision {n}</p>")
    recorded = repository.record(snapshot)
    assert recorded is not None
    return recorded


def loose(repo: Path, hex_id: str) -> Path:
    return repo / ".git" / "objects" / hex_id[:2] / hex_id[2:]


def empty_object(repo: Path, hex_id: str) -> None:
    """What a power cut leaves when the rename reached the disk but the data did not."""
    path = loose(repo, hex_id)
    path.chmod(0o644)
    path.write_bytes(b"")


def objects_of_last_commit(repo: Path) -> list[str]:
    tree = git(repo, "rev-parse", "HEAD^{tree}").stdout.strip()
    changed = git(repo, "diff-tree", "-r", "-t", "--no-commit-id", "--format=", "HEAD~1", "HEAD").stdout
    ids = [line.split()[3] for line in changed.splitlines()]
    return [git(repo, "rev-parse", "HEAD").stdout.strip(), tree, *ids]


def test_a_torn_head_is_moved_back_to_the_newest_whole_commit(tmp_path: Path, caplog) -> None:
    path = tmp_path / "snapshots"
    with RecordRepository(path, "snapshots") as repository:
        records = [record(repository, n) for n in (1, 2, 3)]
    for hex_id in objects_of_last_commit(path):
        empty_object(path, hex_id)
    assert git(path, "log", "-1").returncode != 0  # git itself refuses this repository now

    with RecordRepository(path, "snapshots") as repository:  # recovery on open
        assert git(path, "rev-parse", "HEAD").stdout.strip() == records[1].id
        assert repository.latest("Service A", "Terms of Service").content == "<p>revision 2</p>"
        again = record(repository, 4)  # tracking goes on
    assert "damaged objects" in caplog.text and records[2].id in caplog.text
    assert git(path, "rev-list", "--count", "HEAD").stdout.strip() == "3"
    assert git(path, "rev-parse", "HEAD").stdout.strip() == again.id
    fsck = git(path, "fsck", "--strict", "--no-dangling")
    assert fsck.returncode == 0, fsck.stderr
    assert git(path, "status", "--porcelain").stdout == ""


def test_an_emptied_ref_file_is_recovered_from_the_reflog(tmp_path: Path) -> None:
    path = tmp_path / "versions"
    with RecordRepository(path, "snapshots") as repository:
        records = [record(repository, n) for n in (1, 2)]
    (path / ".git" / "refs" / "heads" / "main").write_bytes(b"")
    with RecordRepository(path, "snapshots") as repository:
        assert repository.latest("Service A", "Terms of Service").id == records[1].id
        record(repository, 3)
    assert git(path, "fsck", "--strict").returncode == 0


def test_a_damaged_index_is_rebuilt(tmp_path: Path) -> None:
    path = tmp_path / "snapshots"
    with RecordRepository(path, "snapshots") as repository:
        record(repository, 1)
    (path / ".git" / "index").write_bytes(b"DIRC\0\0\0")
    with RecordRepository(path, "snapshots") as repository:
        record(repository, 2)
    assert git(path, "status", "--porcelain").stdout == ""


def test_an_empty_object_file_is_written_again_not_reused(tmp_path: Path) -> None:
    path = tmp_path / "snapshots"
    with RecordRepository(path, "snapshots") as repository:
        blob = object_store.object_id(b"blob", b"<p>revision 1</p>").hex()
        directory = path / ".git" / "objects" / blob[:2]
        directory.mkdir(parents=True, exist_ok=True)
        (directory / blob[2:]).write_bytes(b"")  # left by a power cut
        record(repository, 1)
    assert git(path, "cat-file", "blob", blob).stdout == "<p>revision 1</p>"
    assert git(path, "fsck", "--strict").returncode == 0


def test_a_record_flushes_its_objects_before_moving_the_ref(tmp_path: Path, monkeypatch) -> None:
    from termshift.archive_repo.ref_updater import RefUpdater

    events: list[str] = []
    real_flush, real_update = object_store.ObjectWriter.flush, RefUpdater.update

    def flush(self: object_store.ObjectWriter) -> None:
        events.append(f"flush {len(self._unflushed)}")
        real_flush(self)

    def update(self: RefUpdater, *arguments: str) -> None:
        events.append("update-ref")
        real_update(self, *arguments)

    monkeypatch.setattr(object_store.ObjectWriter, "flush", flush)
    monkeypatch.setattr(RefUpdater, "update", update)
    with RecordRepository(tmp_path / "snapshots", "snapshots") as repository:
        record(repository, 1)
    # blob, service tree, root tree, commit: each file and its directory, then the ref.
    assert events[0].startswith("flush ") and int(events[0].split()[1]) >= 8
    assert events[1:] == ["update-ref"]


def test_without_syncfs_each_object_file_and_directory_is_fsynced(tmp_path: Path, monkeypatch) -> None:
    flushed: list[str] = []
    real_fsync = os.fsync

    def spy(descriptor: int) -> None:
        flushed.append(os.readlink(f"/proc/self/fd/{descriptor}"))
        real_fsync(descriptor)

    monkeypatch.setattr(object_store, "_LIBC", None)
    monkeypatch.setattr(os, "fsync", spy)
    (tmp_path / "objects").mkdir()
    writer = object_store.ObjectWriter(tmp_path / "objects")
    hex_id = writer.write(b"blob", b"hello")
    assert flushed == []  # nothing is flushed object by object
    writer.flush()
    directory = tmp_path / "objects" / hex_id[:2]
    assert sorted(flushed) == sorted([str(tmp_path / "objects"), str(directory / hex_id[2:]), str(directory)])
    writer.flush()
    assert len(flushed) == 3  # nothing left to flush


@pytest.mark.skipif(not Path("/usr/bin/strace").exists(), reason="strace is not installed")
def test_ref_updates_ask_git_to_flush_the_ref(tmp_path: Path) -> None:
    path = tmp_path / "snapshots"
    with RecordRepository(path, "snapshots") as repository:
        record(repository, 1)
    from termshift.archive_repo.ref_updater import FSYNC_OPTIONS

    head = git(path, "rev-parse", "HEAD").stdout.strip()
    options = [argument for option in FSYNC_OPTIONS for argument in ("-c", option)]
    traced = subprocess.run(["strace", "-f", "-e", "trace=fsync", "git", "-C", str(path), *options,
                             "update-ref", "refs/heads/copy", head], capture_output=True, text=True)
    assert traced.returncode == 0 and "fsync(" in traced.stderr
