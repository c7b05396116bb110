"""The scheduler as real processes: the cross-process run lock, and SIGTERM in the middle of a run.

Each scheduler is `python -m tests.support.scheduler_child CONFIG` (what `termshift
schedule` runs, with the small real tracking run `record_pages`), fetching from a
local HTTP server started here, recording into real git repositories.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest

from termshift import monitoring
from termshift.locking import RunLock
from tests.conftest import TEST_FETCH_ALLOW
from tests.support.servers import LocalServer, html_page
from tests.support.waiting import wait_until

REPO_ROOT = Path(__file__).resolve().parent.parent


def write_config(tmp_path: Path, data: Path, tracking: str) -> Path:
    config = tmp_path / "termshift.toml"
    config.write_text(
        f'data = "{data}"\n[schedule]\ntracking = "{tracking}"\ndataset = ""\ndeliveries = 0\n'
        'timezone = "UTC"\nmisfire_grace = 30\n',
        encoding="utf-8",
    )
    return config


def write_pages(data: Path, server: LocalServer, count: int) -> None:
    data.mkdir(parents=True, exist_ok=True)
    pages = [{"service": f"Service {n}", "type": "Terms of Service", "url": server.url(f"/terms/{n}")}
             for n in range(count)]
    (data / "pages.json").write_text(json.dumps(pages), encoding="utf-8")


@pytest.fixture
def slow_server() -> Iterator[LocalServer]:
    """Pages that take 0.4 s each and change at every request (every run records versions)."""
    served = {"count": 0}

    def page(exchange: Any) -> None:
        served["count"] += 1
        exchange.send(200, html_page("Terms", f"{exchange.path} revision {served['count']}"))

    with LocalServer(latency=0.4) as server:
        server.route("/terms/", page)
        yield server


@contextmanager
def scheduler_process(config: Path, log_file: Path) -> Iterator[subprocess.Popen]:
    """A scheduler child; killed at the end if the test did not stop it."""
    with log_file.open("ab") as log:
        process = subprocess.Popen([sys.executable, "-m", "tests.support.scheduler_child", str(config)],
                                   cwd=REPO_ROOT, stdout=subprocess.DEVNULL, stderr=log)
    try:
        yield process
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()


def stop(process: subprocess.Popen, timeout: float = 20) -> int:
    process.send_signal(signal.SIGTERM)
    return process.wait(timeout)


def json_lines(path: Path) -> list[dict[str, Any]]:
    if not path.is_file():
        return []
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]


def git(repo: Path, *arguments: str) -> subprocess.CompletedProcess:
    return subprocess.run(["git", "-C", str(repo), *arguments], capture_output=True, text=True, check=False)


def assert_repositories_sound(data: Path) -> None:
    for name in ("snapshots", "versions"):
        fsck = git(data / name, "fsck", "--full", "--strict")
        assert fsck.returncode == 0, f"{name}: {fsck.stdout}{fsck.stderr}"
        assert git(data / name, "status", "--porcelain").stdout == "", f"{name}: work tree differs from HEAD"


def test_a_run_is_skipped_while_another_process_holds_the_lock(tmp_path: Path, slow_server: LocalServer) -> None:
    data = tmp_path / "data"
    write_pages(data, slow_server, 1)
    config = write_config(tmp_path, data, "every 1s")
    lock = RunLock(data)
    lock.acquire("test")  # this process is "running" a tracking run
    log_file = tmp_path / "scheduler.log"
    with scheduler_process(config, log_file) as child:
        try:
            skipped = wait_until(
                lambda: [row for row in monitoring.read_history(data, "tracking") if row["status"] == "skipped"],
                20, "a skipped run")
        finally:
            lock.release()
        assert skipped[0]["pid"] == child.pid
        assert f"pid {os.getpid()}" in skipped[0]["message"]
        wait_until(lambda: any(row["status"] == "ok" for row in monitoring.read_history(data, "tracking")),
                   20, "a run once the lock is free")
        assert stop(child) == 0
    lines = [json.loads(line) for line in log_file.read_text().splitlines() if line.startswith("{")]
    skip_lines = [line for line in lines if line["message"].startswith("tracking run skipped")]
    assert skip_lines and skip_lines[0]["level"] == "WARNING" and f"pid {os.getpid()}" in skip_lines[0]["message"]
    assert not (data / "tracking.lock.json").exists()  # released cleanly by the child


def test_two_schedulers_on_one_data_folder_never_overlap(tmp_path: Path, slow_server: LocalServer) -> None:
    data = tmp_path / "data"
    write_pages(data, slow_server, 3)  # a run takes about 1.2 s; one is due every second
    config = write_config(tmp_path, data, "every 1s")
    with scheduler_process(config, tmp_path / "a.log") as first, scheduler_process(config, tmp_path / "b.log") as second:
        wait_until(lambda: len(json_lines(data / "runs.log")) >= 3, 40, "three runs")
        assert stop(first) == 0
        assert stop(second) == 0
    runs = sorted(json_lines(data / "runs.log"), key=lambda run: run["start"])
    for earlier, later in zip(runs, runs[1:], strict=False):
        assert later["start"] >= earlier["end"], f"overlapping runs: {earlier} and {later}"
    history = monitoring.read_history(data, "tracking", limit=1000)
    assert any(row["status"] == "skipped" for row in history)  # runs fell due while another one ran
    # Which process runs a due job is a race (they share the job store), so this test does not
    # insist that both ran one; the lock test above proves a busy lock skips the other's run.
    assert {run["pid"] for run in runs} <= {first.pid, second.pid}


def test_schedulers_starting_together_on_a_new_data_folder_all_start(tmp_path: Path) -> None:
    """APScheduler creates its job table with a check-then-create and registers jobs with a
    lookup-then-insert: schedulers starting at the same moment on a new folder used to crash
    ("table apscheduler_jobs already exists", exit 1). Start-ups now take turns."""
    data = tmp_path / "data"
    config = write_config(tmp_path, data, "every 1h")
    logs = [tmp_path / f"{n}.log" for n in range(4)]
    with contextlib.ExitStack() as stack:
        children = [stack.enter_context(scheduler_process(config, log)) for log in logs]
        for child, log in zip(children, logs, strict=True):
            wait_until(lambda child=child, log=log: child.poll() is not None
                       or "scheduler started" in log.read_text(encoding="utf-8"), 60, f"{log.name}: started")
            assert child.poll() is None, f"{log.name}: exited at start-up:\n{log.read_text(encoding='utf-8')}"
        assert [stop(child) for child in children] == [0, 0, 0, 0], [log.read_text() for log in logs]


def write_declarations(tmp_path: Path, server: LocalServer, count: int) -> Path:
    declarations = tmp_path / "declarations"
    declarations.mkdir()
    for n in range(count):
        (declarations / f"Service {n}.json").write_text(json.dumps({
            "name": f"Service {n}",
            "terms": {"Terms of Service": {"fetch": server.url(f"/terms/{n}"), "select": "main"}},
        }), encoding="utf-8")
    return declarations


def runs_table(data: Path) -> list[dict[str, Any]]:
    return monitoring.read_runs(data, limit=None)


def test_sigterm_mid_run_leaves_consistent_repositories_and_the_next_run_succeeds(
    tmp_path: Path, slow_server: LocalServer,
) -> None:
    """The real tracking run (termshift.trackers.run) in a scheduler process, stopped half-way."""
    data = tmp_path / "data"
    declarations = write_declarations(tmp_path, slow_server, 6)  # one host, 0.4 s a page: a run of 3 s or more
    config = write_config(tmp_path, data, "every 1s")
    # Top-level keys first in TOML; then a quick, retry-less fetcher.
    config.write_text(f'declarations = "{declarations}"\n' + config.read_text(encoding="utf-8")
                      + "[fetcher]\nretries = 0\nhost_delay = 0.1\n"
                      + f"allow_private_targets = {json.dumps(TEST_FETCH_ALLOW)}\n", encoding="utf-8")

    def snapshots_recorded() -> int:
        if not (data / "snapshots" / ".git").is_dir():
            return 0
        answer = git(data / "snapshots", "rev-list", "--count", "HEAD")
        return int(answer.stdout) if answer.returncode == 0 else 0

    with scheduler_process(config, tmp_path / "first.log") as child:
        wait_until(lambda: snapshots_recorded() >= 2, 60, "a run half-way")
        started = time.monotonic()
        assert stop(child) == 0
        stopping = time.monotonic() - started
    assert stopping < 10  # it recorded what it had in hand, it did not finish the run
    [run] = runs_table(data)
    assert run["status"] == "interrupted"
    recorded = snapshots_recorded()
    assert 2 <= recorded < 6
    assert_repositories_sound(data)
    [row] = [row for row in monitoring.read_history(data, "tracking") if row["status"] != "skipped"]
    assert row["status"] == "stopped" and row["counts"]["interrupted"] >= 1

    with scheduler_process(config, tmp_path / "second.log") as child:
        wait_until(lambda: any(run["status"] == "completed" for run in runs_table(data)), 60, "a complete run")
        assert stop(child) == 0
    assert_repositories_sound(data)
    completed = next(run for run in runs_table(data) if run["status"] == "completed")
    assert completed["counts"]["failed"] == 0 and completed["counts"]["interrupted"] == 0
    versions = git(data / "versions", "ls-files").stdout.splitlines()
    assert sorted(versions) == sorted(f"Service {n}/Terms of Service.md" for n in range(6))
    assert all(document["last_success"] for document in monitoring.read_documents(data))
