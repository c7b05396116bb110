"""Publishing: both repositories pushed to local bare repositories, retries, failures on /status."""

from __future__ import annotations

import subprocess
import threading
import time
from datetime import UTC, datetime
from pathlib import Path

from termshift import monitoring
from termshift.archive_repo import Archive, Snapshot, Version
from termshift.config import load_settings
from termshift.publish import Publisher, redact
from termshift.scheduler import SchedulerService


def git(repo: Path, *arguments: str) -> str:
    return subprocess.run(["git", "-C", str(repo), *arguments], capture_output=True, text=True, check=True).stdout.strip()


def bare(path: Path) -> Path:
    subprocess.run(["git", "init", "-q", "--bare", str(path)], check=True)
    return path


def record(data: Path, text: str, when: datetime) -> None:
    with Archive.open(data) as archive:
        snapshot = archive.snapshots.record(Snapshot("ACME", "Terms of Service", when, f"<p>{text}</p>"))
        archive.versions.record(Version("ACME", "Terms of Service", when, text, snapshot_ids=[snapshot.id]))


def settings_for(data: Path, **publish: object):
    return load_settings(None, environ={}, overrides={"": {"data": str(data)}, "publish": publish,
                                                      "schedule": {"deliveries": 0, "dataset": ""}})


def test_both_repositories_are_pushed_and_later_commits_follow(tmp_path: Path) -> None:
    data = tmp_path / "data"
    record(data, "First terms.", datetime(2024, 1, 1, tzinfo=UTC))
    remotes = {"snapshots": bare(tmp_path / "snapshots.git"), "versions": bare(tmp_path / "versions.git")}
    publisher = Publisher.from_settings(settings_for(data, snapshots_remote=str(remotes["snapshots"]),
                                                     versions_remote=str(remotes["versions"])))
    results = publisher.publish()
    assert [(r.repository, r.ok, r.attempts) for r in results] == [("snapshots", True, 1), ("versions", True, 1)]
    for name, remote in remotes.items():
        assert git(remote, "rev-parse", "refs/heads/main") == git(data / name, "rev-parse", "HEAD")

    record(data, "Second terms.", datetime(2024, 2, 1, tzinfo=UTC))
    publisher.publish_in_background()
    assert publisher.wait(30)
    assert git(remotes["versions"], "rev-parse", "refs/heads/main") == git(data / "versions", "rev-parse", "HEAD")
    assert git(remotes["versions"], "rev-list", "--count", "refs/heads/main") == "2"
    rows = monitoring.read_publish(data)
    assert [(row["repository"], row["ok"], row["failures"]) for row in rows] == [("snapshots", 1, 0), ("versions", 1, 0)]


def test_a_failing_remote_is_retried_recorded_and_shown(tmp_path: Path) -> None:
    data = tmp_path / "data"
    record(data, "Terms.", datetime(2024, 1, 1, tzinfo=UTC))
    good = bare(tmp_path / "snapshots.git")
    missing = tmp_path / "nowhere" / "versions.git"
    publisher = Publisher(data, {"snapshots": str(good), "versions": str(missing)}, retries=2, backoff=0.2)
    started = time.monotonic()
    snapshots, versions = publisher.publish()
    elapsed = time.monotonic() - started
    assert snapshots.ok and snapshots.attempts == 1
    assert not versions.ok and versions.attempts == 3
    assert elapsed >= 0.2 + 0.4  # waited between attempts, doubling
    assert "nowhere/versions.git" in versions.error
    status = monitoring.status(settings_for(data))
    shown = {row["repository"]: row for row in status["publish"]}
    assert shown["versions"]["ok"] == 0 and shown["versions"]["last_success"] is None
    assert "nowhere/versions.git" in shown["versions"]["error"]
    assert shown["snapshots"]["ok"] == 1 and shown["snapshots"]["last_success"].endswith("Z")


def test_a_diverged_remote_is_not_overwritten(tmp_path: Path) -> None:
    data = tmp_path / "data"
    record(data, "Ours.", datetime(2024, 1, 1, tzinfo=UTC))
    other = tmp_path / "other"
    record(other, "Someone else's.", datetime(2024, 1, 2, tzinfo=UTC))
    remote = bare(tmp_path / "versions.git")
    git(other / "versions", "push", "-q", str(remote), "HEAD:refs/heads/main")
    theirs = git(remote, "rev-parse", "refs/heads/main")
    [result] = Publisher(data, {"versions": str(remote)}, retries=0).publish()
    assert not result.ok and "rejected" in result.error
    assert git(remote, "rev-parse", "refs/heads/main") == theirs


def test_a_slow_failing_push_never_delays_the_next_run(tmp_path: Path) -> None:
    data = tmp_path / "data"
    runs: list[float] = []

    def tracking(settings, stop_event: threading.Event | None = None) -> None:
        runs.append(time.monotonic())
        record(data, f"Terms {len(runs)}.", datetime(2024, 1, len(runs), tzinfo=UTC))

    settings = settings_for(data, versions_remote=str(tmp_path / "missing.git"), retries=5, backoff=2.0)
    service = SchedulerService(settings, tracking=tracking)
    assert service.run_tracking() == "ok"
    assert service.run_tracking() == "ok"  # while the first push is still waiting to retry
    assert runs[1] - runs[0] < 2.0
    service.shutdown()  # stops the retries
    assert service.publisher.wait(5)
    [row] = monitoring.read_publish(data)
    assert row["ok"] == 0 and row["attempts"] < 6


def test_credentials_never_reach_the_log() -> None:
    assert redact("https://bot:s3cret@git.example.org/acme/versions.git") == "https://bot:***@git.example.org/acme/versions.git"
    assert redact("https://token@git.example.org/x.git") == "https://***@git.example.org/x.git"
    assert redact("git@example.org:acme/versions.git") == "git@example.org:acme/versions.git"
    assert redact("/srv/git/versions.git") == "/srv/git/versions.git"


def test_relative_remote_paths_and_empty_repositories(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.chdir(tmp_path)  # the operator wrote `versions_remote = "backup/versions.git"` here
    data = tmp_path / "data"
    Archive.open(data).close()
    remote = bare(tmp_path / "backup" / "versions.git")
    publisher = Publisher.from_settings(settings_for(data, versions_remote="backup/versions.git"))
    assert publisher.remotes == {"versions": str(remote)}
    [result] = publisher.publish()
    assert result.ok and result.head is None  # nothing recorded yet: nothing to push, not a failure
    record(data, "Terms.", datetime(2024, 1, 1, tzinfo=UTC))
    [result] = publisher.publish()
    assert result.ok and result.head == git(remote, "rev-parse", "refs/heads/main")


def test_a_failing_remote_never_holds_up_the_other_one(tmp_path: Path) -> None:
    data = tmp_path / "data"
    record(data, "Terms 1.", datetime(2024, 1, 1, tzinfo=UTC))
    good = bare(tmp_path / "snapshots.git")
    stop = threading.Event()
    publisher = Publisher(data, {"snapshots": str(good), "versions": str(tmp_path / "missing.git")},
                          retries=3, backoff=5.0, stop_event=stop)
    try:
        publisher.publish_in_background()  # the end of run 1: versions now waits 5 s to retry
        record(data, "Terms 2.", datetime(2024, 1, 2, tzinfo=UTC))
        publisher.publish_in_background()  # the end of run 2
        wanted = git(data / "snapshots", "rev-parse", "HEAD")
        deadline = time.monotonic() + 3.0
        pushed = None
        while time.monotonic() < deadline:
            pushed = subprocess.run(["git", "-C", str(good), "rev-parse", "refs/heads/main"],
                                    capture_output=True, text=True).stdout.strip()
            if pushed == wanted:
                break
            time.sleep(0.05)
        assert pushed == wanted, "the snapshots push waited for the failing versions remote"
    finally:
        stop.set()
        assert publisher.wait(10)


def test_pushes_of_both_repositories_run_at_once(tmp_path: Path) -> None:
    data = tmp_path / "data"
    record(data, "Terms.", datetime(2024, 1, 1, tzinfo=UTC))
    good = bare(tmp_path / "snapshots.git")
    publisher = Publisher(data, {"versions": str(tmp_path / "missing.git"), "snapshots": str(good)},
                          retries=1, backoff=1.5)
    versions, snapshots = publisher.publish()
    assert snapshots.ok and not versions.ok and versions.attempts == 2
    assert snapshots.finished_at < versions.started_at + 1.0  # not after the versions retry


def test_a_remote_that_looks_like_an_option_is_refused(tmp_path: Path) -> None:
    data = tmp_path / "data"
    record(data, "Terms.", datetime(2024, 1, 1, tzinfo=UTC))
    marker = tmp_path / "ran"
    [result] = Publisher(data, {"versions": f"--receive-pack=touch {marker}; git-receive-pack"},
                         retries=0).publish()
    assert not result.ok and "starts with '-'" in result.error
    assert not marker.exists()
    from termshift.config import ConfigError

    try:
        settings_for(data, versions_remote="--upload-pack=x")
    except ConfigError as error:
        assert "publish.versions_remote" in str(error)
    else:
        raise AssertionError("the configuration check accepted a remote starting with '-'")
