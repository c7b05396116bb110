"""The scheduler in this process: scheduled runs, deliveries, restarts and missed runs.

Real APScheduler with its SQLite job store, real git repositories, a real local HTTP
server, the real viewer index and the real webhook delivery. The tracking function is
`tests.support.scheduler_child.record_pages` (a small real run: fetch, record).
"""

from __future__ import annotations

import io
import itertools
import json
import sqlite3
import threading
import time
from pathlib import Path
from typing import Any

import pytest

from termshift import logs, monitoring
from termshift.archive_repo import Archive
from termshift.config import Settings, load_settings
from termshift.scheduler import (
    SchedulerService,
    summary_counts,
    summary_documents,
)
from termshift.schedules import ScheduleError, parse_schedule
from tests.support.receiver import Receiver
from tests.support.scheduler_child import record_pages
from tests.support.servers import LocalServer, html_page
from tests.support.waiting import wait_until

# How long a wait for something that must happen (a run due every second, a delivery) may
# take before the test fails: long, because a loaded CI machine can be 10x slower. No
# test asserts a duration; a run that never comes still fails.
PATIENCE = 60.0

def make_settings(data: Path, **sections: dict[str, Any]) -> Settings:
    """Settings for `data` with quick schedules: no dataset, no periodic deliveries unless asked."""
    overrides: dict[str, dict[str, Any]] = {"": {"data": str(data)},
                                            "schedule": {"dataset": "", "deliveries": 0, "timezone": "UTC"}}
    for section, values in sections.items():
        overrides.setdefault(section, {}).update(values)
    return load_settings(None, environ={}, overrides=overrides)


def tracking_rows(data: Path, status: str | None = None) -> list[dict[str, Any]]:
    rows = monitoring.read_history(data, "tracking", limit=1000)
    return [row for row in rows if status is None or row["status"] == status]


def stored_jobs(data: Path) -> list[tuple[str, float | None]]:
    with sqlite3.connect(data / "scheduler.sqlite") as db:
        return db.execute("SELECT id, next_run_time FROM apscheduler_jobs ORDER BY id").fetchall()


@pytest.fixture
def terms_server():
    """A page whose text changes at every request, so each run records a new version."""
    revisions = itertools.count(1)
    with LocalServer() as server:
        server.route("/terms", lambda exchange: exchange.send(200, html_page("Terms", f"Revision {next(revisions)}.")))
        server.route("/privacy", lambda exchange: exchange.send(200, html_page("Privacy", "We keep nothing.")))
        yield server


def write_pages(data: Path, server: LocalServer) -> None:
    data.mkdir(parents=True, exist_ok=True)
    pages = [{"service": "ACME", "type": "Terms of Service", "url": server.url("/terms")},
             {"service": "ACME", "type": "Privacy Policy", "url": server.url("/privacy")}]
    (data / "pages.json").write_text(json.dumps(pages), encoding="utf-8")


def test_two_scheduled_runs_record_versions_one_after_the_other(tmp_path: Path, terms_server) -> None:
    data = tmp_path / "data"
    write_pages(data, terms_server)
    service = SchedulerService(make_settings(data, schedule={"tracking": "every 1s"}), tracking=record_pages)
    service.start()
    try:
        wait_until(lambda: len(tracking_rows(data, "ok")) >= 2, PATIENCE, "two tracking runs")
    finally:
        service.shutdown()

    runs = sorted(tracking_rows(data, "ok"), key=lambda row: row["id"])
    assert runs[0]["counts"]["documents_fetched"] == 2
    assert runs[1]["started_at"] >= runs[0]["finished_at"]  # one after the other
    with Archive.open(data, read_only=True) as archive:
        terms = archive.versions.history("ACME", "Terms of Service")
        privacy = archive.versions.history("ACME", "Privacy Policy")
    assert len(terms) == len(runs)  # the terms changed at every run: one version each
    assert len(privacy) == 1  # the privacy policy did not change after the first run
    # The index is the tracking run's job (its listener refreshes it: see
    # test_two_scheduled_real_tracking_runs); the scheduler does not refresh it again.
    assert not (data / "index.sqlite").exists()
    # Per-document results are kept for /metrics.
    with sqlite3.connect(data / "scheduler.sqlite") as db:
        per_run = db.execute("SELECT COUNT(*) FROM run_documents WHERE run_id = ?", (runs[0]["id"],)).fetchone()[0]
    assert per_run == 2


def test_restart_keeps_one_job_per_id_and_runs_missed_runs_once(tmp_path: Path) -> None:
    data = tmp_path / "data"
    calls: list[float] = []

    def tracking(settings: Settings, stop_event: threading.Event | None = None) -> dict[str, Any]:
        calls.append(time.time())
        return {"counts": {"documents_fetched": 0}}

    settings = make_settings(data, schedule={"tracking": "every 2s", "dataset": "30 8 * * MON",
                                             "deliveries": 30, "misfire_grace": 60})
    first = SchedulerService(settings, tracking=tracking)
    first.start()
    wait_until(lambda: calls, PATIENCE, "first run")
    first.shutdown()
    assert [job for job, _ in stored_jobs(data)] == ["dataset", "deliveries", "tracking"]
    due = dict(stored_jobs(data))["tracking"]

    # Down for three scheduled runs (due, due + 2, due + 4), then back.
    time.sleep(max(0.0, due + 4.3 - time.time()))
    calls.clear()
    second = SchedulerService(settings, tracking=tracking)
    second.start()
    try:
        wait_until(lambda: calls, PATIENCE, "the missed run, at start-up")
        time.sleep(max(0.0, due + 5.5 - time.time()))  # before the next regular run (due + 6)
        assert len(calls) == 1, "three missed runs must coalesce into one"
    finally:
        second.shutdown()
    # Restarting re-registered the jobs under the same ids: no duplicate, none lost.
    assert [job for job, _ in stored_jobs(data)] == ["dataset", "deliveries", "tracking"]
    assert len(tracking_rows(data, "ok")) == 2

    # A changed schedule replaces the stored trigger (the old next run time is not kept).
    third = SchedulerService(make_settings(data, schedule={"tracking": "every 1h", "deliveries": 30}),
                             tracking=tracking)
    third.start()
    try:
        next_run = third.next_run_times()["tracking"].timestamp()
    finally:
        third.shutdown()
    assert 3590 < next_run - time.time() < 3601
    assert [job for job, _ in stored_jobs(data)] == ["deliveries", "tracking"]  # dataset disabled: removed


def test_a_run_missed_beyond_the_grace_time_is_recorded_and_not_run(tmp_path: Path) -> None:
    data = tmp_path / "data"
    calls: list[float] = []

    def tracking(settings: Settings, stop_event: threading.Event | None = None) -> None:
        calls.append(time.time())

    settings = make_settings(data, schedule={"tracking": "every 4s", "misfire_grace": 1})
    first = SchedulerService(settings, tracking=tracking)
    first.start()
    first.shutdown()  # before its first run
    due = dict(stored_jobs(data))["tracking"]
    time.sleep(max(0.0, due + 1.6 - time.time()))  # the run is now 1.6 s late: beyond the 1 s grace
    second = SchedulerService(settings, tracking=tracking)
    second.start()
    try:
        wait_until(lambda: tracking_rows(data, "missed"), PATIENCE, "a 'missed' row")
    finally:
        second.shutdown()
    assert calls == []
    assert "missed" in tracking_rows(data, "missed")[0]["message"]


def test_a_failing_run_is_recorded_and_the_next_run_still_happens(tmp_path: Path) -> None:
    data = tmp_path / "data"
    outcomes = iter([RuntimeError("declarations folder unreadable"), None])

    def tracking(settings: Settings, stop_event: threading.Event | None = None) -> dict[str, Any]:
        error = next(outcomes, None)
        if error:
            raise error
        return {"counts": {"versions_recorded": 3}}

    service = SchedulerService(make_settings(data, schedule={"tracking": "every 1s"}), tracking=tracking)
    service.start()
    try:
        wait_until(lambda: tracking_rows(data, "ok"), PATIENCE, "a successful run after the failure")
    finally:
        service.shutdown()
    failed = tracking_rows(data, "failed")
    assert failed and failed[-1]["message"] == "RuntimeError: declarations folder unreadable"
    assert tracking_rows(data, "ok")[0]["counts"] == {"versions_recorded": 3}
    assert monitoring.last_run(data)["status"] == "ok"


def test_deliveries_run_continuously(tmp_path: Path) -> None:
    from termshift.alerts import outbox, store, subscriptions

    data = tmp_path / "data"
    with Receiver(secret=None) as receiver:
        db = store.connect(data)
        try:
            subscription = subscriptions.add(db, receiver.url(), allow_private_targets=["127.0.0.1"])
        finally:
            db.close()
        receiver.secret = subscription.secret
        settings = make_settings(data, schedule={"tracking": "", "deliveries": 1},
                                 webhooks={"allow_private_targets": ["127.0.0.1"]})
        service = SchedulerService(settings, tracking=lambda *a, **k: None)
        service.start()
        try:
            outbox.enqueue_test_event(data, subscription)
            assert receiver.wait_for(lambda r: len(r.accepted()) == 1, timeout=PATIENCE)
            wait_until(lambda: monitoring.read_history(data, "deliveries"), PATIENCE, "a deliveries row")
        finally:
            service.shutdown()
    assert monitoring.read_history(data, "deliveries")[0]["counts"]["delivered"] == 1
    assert monitoring.read_deliveries(data)["counts"]["delivered"] == 1


def test_one_scheduler_per_data_folder_in_a_process(tmp_path: Path) -> None:
    settings = make_settings(tmp_path / "data", schedule={"tracking": "every 1h"})
    first = SchedulerService(settings, tracking=lambda *a, **k: None)
    first.start()
    try:
        with pytest.raises(RuntimeError, match="already runs"):
            SchedulerService(settings, tracking=lambda *a, **k: None).start()
    finally:
        first.shutdown()


@pytest.mark.parametrize(("expression", "seconds"), [("every 30s", 30), ("every 1.5 m", 90), ("every 2h", 7200)])
def test_interval_expressions(expression: str, seconds: float) -> None:
    assert parse_schedule(expression).interval.total_seconds() == seconds


@pytest.mark.parametrize("expression", ["every 0s", "every day", "* * * *", "0 25 * * *"])
def test_bad_schedule_expressions_say_why(expression: str) -> None:
    with pytest.raises(ScheduleError, match=r"'"):
        parse_schedule(expression)


def test_ota_default_cron_fires_at_half_past_every_twelve_hours() -> None:
    from datetime import UTC, datetime

    trigger = parse_schedule("30 */12 * * *", UTC)
    first = trigger.get_next_fire_time(None, datetime(2024, 5, 1, 3, 0, tzinfo=UTC))
    second = trigger.get_next_fire_time(first, first)
    assert (first.hour, first.minute, second.hour, second.minute) == (12, 30, 0, 30)


def test_summaries_as_objects_or_dicts() -> None:
    from dataclasses import dataclass

    @dataclass
    class Result:
        service_id: str
        terms_type: str
        error: Exception | None = None
        error_kind: str | None = None
        seconds: float | None = None

    @dataclass
    class Summary:
        counts: dict
        documents: list

    summary = Summary({"fetched": 2}, [Result("A", "Terms of Service", seconds=1.5),
                                       Result("B", "Privacy Policy", RuntimeError("HTTP code 503"), "transient")])
    assert summary_counts(summary) == {"fetched": 2}
    documents = summary_documents(summary)
    assert documents[0] == {"service_id": "A", "terms_type": "Terms of Service", "outcome": "ok",
                            "error_kind": None, "error": None, "seconds": 1.5}
    assert documents[1]["outcome"] == "failed" and documents[1]["error_kind"] == "transient"
    assert summary_counts(None) == {} and summary_documents(None) == []


def test_json_logs_have_one_line_per_document(tmp_path: Path) -> None:
    stream = io.StringIO()
    settings = make_settings(tmp_path, logging={"json": True})
    handler = logs.configure(settings.logging, stream=stream)
    try:
        logs.log_documents([
            {"service_id": "A", "terms_type": "Terms of Service", "outcome": "ok", "error_kind": None, "error": None},
            {"service_id": "B", "terms_type": "Privacy Policy", "outcome": "failed", "error_kind": "blocked",
             "error": "Blocked page (cloudflare)"},
        ], run_id=7)
    finally:
        import logging

        logging.getLogger().removeHandler(handler)
    lines = [json.loads(line) for line in stream.getvalue().splitlines()]
    assert [(line["level"], line["service_id"], line["run_id"]) for line in lines] == [
        ("INFO", "A", 7), ("WARNING", "B", 7)]
    assert lines[1]["error_kind"] == "blocked" and lines[1]["event"] == "document"
    assert lines[0]["time"].endswith("Z")


def test_scheduler_py_at_the_repository_root_is_the_schedule_command() -> None:
    import subprocess
    import sys

    root = Path(__file__).resolve().parent.parent
    result = subprocess.run([sys.executable, "scheduler.py", "--help"], cwd=root, capture_output=True, text=True,
                            timeout=60, check=False)
    assert result.returncode == 0, result.stderr
    assert "Run Termshift as a service" in result.stdout and "--log-json" in result.stdout


def test_the_run_lock_is_reentrant_in_its_thread_and_busy_for_others(tmp_path: Path) -> None:
    from termshift.locking import RunLock, RunLockBusy, read_holder

    scheduler_lock, run_lock = RunLock(tmp_path), RunLock(tmp_path)  # e.g. the scheduler and run_tracking
    scheduler_lock.acquire("tracking")
    run_lock.acquire("tracking")  # same thread: nested
    outcome: list[str] = []

    def other_thread() -> None:
        lock = RunLock(tmp_path)
        try:
            lock.acquire()
            outcome.append("acquired")
            lock.release()
        except RunLockBusy as busy:
            outcome.append(str(busy))

    thread = threading.Thread(target=other_thread)
    thread.start()
    thread.join()
    assert "tracking run already in progress" in outcome[0] and f"pid {__import__('os').getpid()}" in outcome[0]
    run_lock.release()
    assert scheduler_lock.held and read_holder(tmp_path)["purpose"] == "tracking"
    scheduler_lock.release()
    assert not scheduler_lock.held and read_holder(tmp_path) is None
    thread = threading.Thread(target=other_thread)
    thread.start()
    thread.join()
    assert outcome[1] == "acquired"


def test_two_scheduled_real_tracking_runs(tmp_path: Path, terms_server) -> None:
    """The scheduler driving the real tracking run (termshift.trackers.run) against a local server."""
    pytest.importorskip("termshift.trackers.run", reason="the tracking run is not written yet")
    declarations = tmp_path / "declarations"
    declarations.mkdir()
    (declarations / "ACME.json").write_text(json.dumps({
        "name": "ACME", "terms": {"Terms of Service": {"fetch": terms_server.url("/terms"), "select": "main"}},
    }), encoding="utf-8")
    data = tmp_path / "data"
    settings = make_settings(data, schedule={"tracking": "every 2s"}, fetcher={"host_delay": 0.0, "retries": 0},
                             **{"": {"data": str(data), "declarations": str(declarations)}})
    service = SchedulerService(settings)
    service.start()
    try:
        wait_until(lambda: len(tracking_rows(data, "ok")) >= 2, 90, "two real tracking runs")
    finally:
        service.shutdown()
    with Archive.open(data, read_only=True) as archive:
        versions = archive.versions.history("ACME", "Terms of Service")
    assert len(versions) >= 2 and "Revision" in versions[0].content
    runs = monitoring.read_runs(data)
    assert len([run for run in runs if run["finished_at"]]) >= 2
    assert monitoring.read_documents(data)[0]["last_success"] is not None
    with sqlite3.connect(data / "index.sqlite") as db:
        indexed = {row[0] for row in db.execute("SELECT commit_id FROM versions")}
    assert {version.id for version in versions} <= indexed  # refreshed by the run itself
    assert monitoring.read_history(data, "index", limit=10) == []  # …and not a second time by the scheduler


def test_schedule_once_runs_the_real_tracking_and_logs_one_json_line_per_document(
    tmp_path: Path, terms_server,
) -> None:
    import subprocess
    import sys

    pytest.importorskip("termshift.trackers.run", reason="the tracking run is not written yet")
    declarations = tmp_path / "declarations"
    declarations.mkdir()
    for name, path in (("ACME", "/terms"), ("Privy", "/privacy")):
        (declarations / f"{name}.json").write_text(json.dumps({
            "name": name, "terms": {"Terms of Service": {"fetch": terms_server.url(path), "select": "main"}},
        }), encoding="utf-8")
    (declarations / "Broken.json").write_text("{}", encoding="utf-8")
    config = tmp_path / "termshift.toml"
    config.write_text(f'declarations = "{declarations}"\ndata = "{tmp_path / "data"}"\n'
                      '[fetcher]\nretries = 0\nhost_delay = 0.0\n', encoding="utf-8")
    root = Path(__file__).resolve().parent.parent

    def once() -> subprocess.CompletedProcess:
        return subprocess.run([sys.executable, "-m", "termshift.cli", "schedule", "--once", "--log-json",
                               "--config", str(config)], cwd=root, capture_output=True, text=True, timeout=120,
                              check=False)

    broken = once()  # the broken service is skipped and reported; the others are tracked
    assert broken.returncode == 3, broken.stderr
    failure = next(json.loads(line) for line in broken.stderr.splitlines() if '"service_skipped"' in line)
    assert "Broken.json" in failure["message"] and "exception" not in failure
    assert failure["service_id"] == "Broken"
    tracked = [json.loads(line) for line in broken.stderr.splitlines() if '"event": "document"' in line]
    assert sorted(line["service_id"] for line in tracked) == ["ACME", "Privy"]
    assert {line["outcome"] for line in tracked} == {"new version"}

    (declarations / "Broken.json").unlink()
    result = once()
    assert result.returncode == 0, result.stderr
    lines = [json.loads(line) for line in result.stderr.splitlines() if line.startswith("{")]
    documents = [line for line in lines if line.get("event") == "document"]
    assert sorted(line["service_id"] for line in documents) == ["ACME", "Privy"]
    assert {line["outcome"] for line in documents} <= {"new version", "unchanged"}
    assert all(isinstance(line["seconds"], float) for line in documents)
    history = monitoring.read_history(tmp_path / "data", "tracking")
    assert [row["status"] for row in history] == ["ok", "ok"]
    assert history[1]["message"] == "services skipped, their declarations do not load: Broken"
