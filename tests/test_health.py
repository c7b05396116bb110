"""/status, /status.json, /healthz and /metrics, read from the data folder's SQLite files.

`runs.sqlite` is written with the tracking run's own store (termshift.trackers.run_store),
the scheduler's history, the publish log and the webhook outbox by their real code.
"""

from __future__ import annotations

import re
import threading
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from flask import Flask
from prometheus_client.parser import text_string_to_metric_families

from termshift.archive_repo import Archive, Version
from termshift.config import Settings, load_settings
from termshift.locking import RunLock
from termshift.publish import Publisher
from termshift.scheduler import SchedulerService
from termshift.web.health_routes import blueprint


def make_settings(data: Path, **schedule: Any) -> Settings:
    return load_settings(None, environ={}, overrides={"": {"data": str(data)},
                                                      "schedule": {"deliveries": 0, "dataset": "", **schedule}})


ADMIN_TOKEN = "an-admin-token-of-at-least-32-characters"
ADMIN = {"Authorization": f"Bearer {ADMIN_TOKEN}"}  # the details (remotes, errors, pids) are the admin's


def make_app(settings: Settings) -> Flask:
    app = Flask("test")
    app.config["SETTINGS"] = settings
    app.config["ADMIN_TOKEN"] = ADMIN_TOKEN
    app.register_blueprint(blueprint)
    return app


def metrics(client) -> dict[str, dict[tuple, float]]:
    """/metrics parsed: sample name → {sorted label items: value}."""
    response = client.get("/metrics")
    assert response.status_code == 200 and response.mimetype == "text/plain"
    samples: dict[str, dict[tuple, float]] = {}
    for family in text_string_to_metric_families(response.get_data(as_text=True)):
        for sample in family.samples:
            samples.setdefault(sample.name, {})[tuple(sorted(sample.labels.items()))] = sample.value
    return samples


def at(moment: str) -> datetime:
    return datetime.fromisoformat(moment).replace(tzinfo=UTC)


def write_runs(data: Path) -> None:
    """Two finished runs and three terms' states, written with the tracking run's own store."""
    from termshift.trackers.run_store import RUNS_FILE, RunStore

    data.mkdir(parents=True, exist_ok=True)
    with RunStore(data / RUNS_FILE) as store:
        for started, finished, counts in [
            ("2024-05-01T00:30:00", "2024-05-01T00:31:40", {"documents_fetched": 3, "versions_recorded": 2,
                                                            "failures": 1}),
            ("2024-05-01T12:30:00", "2024-05-01T12:30:30", {"documents_fetched": 3, "versions_recorded": 1,
                                                            "failures": 2}),
        ]:
            run = store.start_run(at(started))
            summary = {"documents": [{"service_id": name, "terms_type": "Terms of Service", "seconds": seconds}
                                     for name, seconds in (("ACME", 0.4), ("Blocky", 3.0), ("Flaky", 30.0))]}
            store.finish_run(run, "completed", at(finished), counts, summary)
        store.record_success("ACME", "Terms of Service", run, at("2024-05-01T12:30:10"), "fingerprint", [])
        store.record_success("Blocky", "Privacy Policy", run, at("2024-04-01T00:30:00"), "fingerprint", [])
        for day in ("2024-04-02", "2024-04-03", "2024-04-04", "2024-04-05"):
            store.record_failure("Blocky", "Privacy Policy", run, at(f"{day}T00:30:00"), "blocked",
                                 "Blocked page (cloudflare) received when trying to fetch "
                                 "'https://blocky.example/privacy'", blocked=1)
        store.record_failure("Flaky", "Terms of Service", run, at("2024-05-01T12:30:20"), "transient",
                             "Fetch failed: HTTP code 503")


def test_a_fresh_install_is_healthy_and_says_nothing_ran(tmp_path: Path) -> None:
    data = tmp_path / "data"
    data.mkdir()
    client = make_app(make_settings(data)).test_client()
    response = client.get("/healthz")
    assert response.status_code == 200
    assert response.json["status"] == "ok"
    assert response.json["checks"]["versions"]["detail"].startswith("not created yet")
    status = client.get("/status.json").json
    assert status["last_run"] is None and status["documents"] == [] and status["deliveries"] is None
    page = client.get("/status").get_data(as_text=True)
    assert "no run yet" in page and "never run on this data folder" in page
    samples = metrics(client)
    assert samples["termshift_info"] == {(("version", __import__("termshift").__version__),): 1.0}
    assert samples["termshift_tracking_run_duration_seconds_count"] == {(): 0.0}


def test_status_and_metrics_show_runs_documents_deliveries_and_publishing(tmp_path: Path) -> None:
    from termshift.alerts import outbox, store, subscriptions

    data = tmp_path / "data"
    write_runs(data)
    settings = make_settings(data, tracking="every 1h")

    def tracking(settings: Settings, stop_event: threading.Event | None = None) -> dict[str, Any]:
        return {"counts": {"documents_fetched": 2},
                "documents": [{"service_id": "ACME", "terms_type": "Terms of Service", "seconds": 0.3},
                              {"service_id": "Flaky", "terms_type": "Terms of Service", "seconds": 12.0,
                               "error": "Fetch failed: HTTP code 503", "error_kind": "transient"}]}

    service = SchedulerService(settings, tracking=tracking)
    service.start()  # stores the next run times
    try:
        assert service.run_tracking() == "ok"
    finally:
        service.shutdown()
    with Archive.open(data) as archive:
        archive.versions.record(Version("ACME", "Terms of Service", datetime(2024, 5, 1, tzinfo=UTC), "Terms.",
                                        snapshot_ids=["0" * 40]))
    Publisher(data, {"versions": str(tmp_path / "missing.git")}, retries=0).publish()
    db = store.connect(data)
    try:
        subscription = subscriptions.add(db, "http://127.0.0.1:9/hook", allow_private_targets=["127.0.0.1"])
    finally:
        db.close()
    for _ in range(2):
        outbox.enqueue_test_event(data, subscription)

    client = make_app(settings).test_client()
    status = client.get("/status.json", headers=ADMIN).json
    assert status["last_run"]["started_at"] == "2024-05-01T12:30:00Z"
    assert status["last_run"]["duration"] == 30.0
    assert status["last_run"]["counts"]["versions_recorded"] == 1
    assert set(status["next_runs"]) == {"tracking"} and status["next_runs"]["tracking"].endswith("Z")
    assert [doc["service_id"] for doc in status["documents"]] == ["Blocky", "Flaky", "ACME"]  # longest failing first
    blocky = status["documents"][0]
    assert (blocky["failing_since"], blocky["error_kind"], blocky["consecutive_failures"], blocky["blocked"]) == (
        "2024-04-02T00:30:00Z", "blocked", 4, 1)
    assert status["failures_by_kind"] == {"blocked": 1, "transient": 1}
    assert status["deliveries"]["backlog"] == 2
    [push] = status["publish"]
    assert push["repository"] == "versions" and push["ok"] == 0 and "missing.git" in push["error"]

    page = client.get("/status", headers=ADMIN).get_data(as_text=True)
    assert "Blocked page (cloudflare) received" in page
    assert "2 terms tracked" not in page and "3 terms tracked, 2 failing" in page
    assert "Backlog: 2 event(s)" in page and "missing.git" in page

    samples = metrics(client)
    assert samples["termshift_tracking_runs_total"] == {(("status", "completed"),): 2.0}
    assert samples["termshift_documents_fetched_total"] == {(): 6.0}
    # Versions are counted in the versions repository (one recorded above), not from run summaries.
    assert samples["termshift_versions_recorded_total"] == {(): 1.0}
    assert samples["termshift_tracking_counts_total"][(("count", "failures"),)] == 3.0
    assert samples["termshift_documents_failing"] == {(("error_kind", "blocked"),): 1.0,
                                                      (("error_kind", "transient"),): 1.0}
    assert samples["termshift_documents_blocked"] == {(): 1.0}
    assert samples["termshift_tracking_run_duration_seconds_count"] == {(): 2.0}
    assert samples["termshift_tracking_run_duration_seconds_sum"] == {(): 130.0}
    assert samples["termshift_tracking_run_duration_seconds_bucket"][(("le", "60.0"),)] == 1.0
    assert samples["termshift_tracking_run_duration_seconds_bucket"][(("le", "120.0"),)] == 2.0
    # Per-terms fetch times of the last run, from the run's own summary.
    assert samples["termshift_last_run_fetch_duration_seconds_gcount"] == {(): 3.0}
    assert samples["termshift_last_run_fetch_duration_seconds_gsum"] == {(): 33.4}
    assert samples["termshift_last_run_fetch_duration_seconds_bucket"][(("le", "5.0"),)] == 2.0
    assert samples["termshift_scheduler_jobs_total"][(("job", "tracking"), ("status", "ok"))] == 1.0
    assert samples["termshift_webhook_backlog"] == {(): 2.0}
    assert samples["termshift_webhook_events"][(("status", "pending"),)] == 2.0
    assert samples["termshift_publish_last_ok"] == {(("repository", "versions"),): 0.0}
    assert samples["termshift_publish_failures_total"] == {(("repository", "versions"),): 1.0}
    next_tracking = samples["termshift_scheduler_next_run_timestamp_seconds"][(("job", "tracking"),)]
    assert 3500 < next_tracking - time.time() < 3601


def test_metrics_survive_the_process_that_ran_the_jobs(tmp_path: Path) -> None:
    """A second app (another process, a restart) reads the same figures: nothing lives in memory."""
    data = tmp_path / "data"
    write_runs(data)
    first = metrics(make_app(make_settings(data)).test_client())
    second = metrics(make_app(make_settings(data)).test_client())
    assert first == second and first["termshift_documents_fetched_total"] == {(): 6.0}


def test_healthz_fails_while_a_run_is_stuck(tmp_path: Path) -> None:
    data = tmp_path / "data"
    data.mkdir()
    client = make_app(make_settings(data, stuck_after=0.3)).test_client()
    lock = RunLock(data)
    lock.acquire()
    try:
        assert client.get("/healthz").json["checks"]["tracking"] == {"ok": True, "detail": "running"}
        time.sleep(0.4)
        response = client.get("/healthz")
        assert response.status_code == 503
        assert "more than schedule.stuck_after" in response.json["checks"]["tracking"]["detail"]
        assert client.get("/status.json", headers=ADMIN).json["running"]["pid"] > 0
    finally:
        lock.release()
    assert client.get("/healthz").status_code == 200


@pytest.mark.parametrize("broken", ["data folder missing", "versions not a repository"])
def test_healthz_fails_when_the_archive_is_unreadable(tmp_path: Path, broken: str) -> None:
    data = tmp_path / "data"
    if broken == "versions not a repository":
        (data / "versions").mkdir(parents=True)
    response = make_app(make_settings(data)).test_client().get("/healthz")
    assert response.status_code == 503
    failed = [name for name, check in response.json["checks"].items() if not check["ok"]]
    assert failed == (["data_dir"] if broken == "data folder missing" else ["versions"])


def test_the_page_follows_the_viewer_content_security_policy(tmp_path: Path) -> None:
    from termshift.web.security import register

    data = tmp_path / "data"
    write_runs(data)
    app = make_app(make_settings(data))
    register(app)
    client = app.test_client()
    page = client.get("/status")
    assert "style-src 'self'" in page.headers["Content-Security-Policy"]
    html = page.get_data(as_text=True)
    assert "<style" not in html and " style=" not in html
    scripts = re.findall(r"<script[^>]*>", html)  # the site's own script file only, nothing inline
    assert scripts and all(" src=" in tag for tag in scripts)
    # The page extends the site's layout, even in an app that only registered this blueprint.
    assert '<a class="skip-link" href="#main">' in html and '<nav class="language"' in html
    assert "<footer" in html and 'href="/status?lang=fr"' in html
    stylesheet = client.get("/-/health/status.css")
    assert stylesheet.status_code == 200 and stylesheet.mimetype == "text/css"
    assert "/-/health/status.css" in html


def test_fetch_durations_without_runs_sqlite_come_from_the_scheduler_history(tmp_path: Path) -> None:
    data = tmp_path / "data"

    def tracking(settings: Settings, stop_event: threading.Event | None = None) -> dict[str, Any]:
        return {"documents": [{"service_id": "A", "terms_type": "Terms of Service", "seconds": 0.2},
                              {"service_id": "B", "terms_type": "Terms of Service", "seconds": 45.0}]}

    service = SchedulerService(make_settings(data), tracking=tracking)
    assert service.run_tracking() == "ok"
    samples = metrics(make_app(make_settings(data)).test_client())
    assert samples["termshift_last_run_fetch_duration_seconds_gcount"] == {(): 2.0}
    assert samples["termshift_last_run_fetch_duration_seconds_bucket"][(("le", "0.25"),)] == 1.0
    assert samples["termshift_scheduler_jobs_total"][(("job", "tracking"), ("status", "ok"))] == 1.0


def test_states_are_gauges_and_versions_are_counted_at_commit_time(tmp_path: Path) -> None:
    """A run in progress is a state, not an event; a version committed by a run killed before it
    wrote its summary is still counted."""
    from termshift.scheduler import RunHistory
    from termshift.trackers.run_store import RUNS_FILE, RunStore

    data = tmp_path / "data"
    write_runs(data)  # two finished runs whose summaries say 3 versions were recorded
    with RunStore(data / RUNS_FILE) as store:
        store.start_run(at("2024-05-02T00:30:00"))  # killed: never finished
    history = RunHistory(data)
    history.finish(history.start("tracking"), "ok")
    history.start("tracking")  # in progress
    with Archive.open(data) as archive:  # what the runs committed, the killed one included
        for day in (1, 2, 3, 4):
            archive.versions.record(Version("ACME", "Terms of Service", datetime(2024, 5, day, tzinfo=UTC),
                                            f"Terms {day}.", snapshot_ids=["0" * 40]))
    samples = metrics(make_app(make_settings(data)).test_client())
    assert samples["termshift_tracking_runs_total"] == {(("status", "completed"),): 2.0}
    assert samples["termshift_tracking_run_in_progress"] == {(): 0.0}  # no process holds the lock
    assert samples["termshift_scheduler_jobs_total"] == {(("job", "tracking"), ("status", "ok")): 1.0}
    assert samples["termshift_scheduler_jobs_running"] == {(("job", "tracking"),): 1.0}
    assert samples["termshift_versions_recorded_total"] == {(): 4.0}
    with Archive.open(data) as archive:
        archive.versions.record(Version("ACME", "Terms of Service", datetime(2024, 5, 5, tzinfo=UTC),
                                        "Terms 5.", snapshot_ids=["0" * 40]))
    samples = metrics(make_app(make_settings(data)).test_client())
    assert samples["termshift_versions_recorded_total"] == {(): 5.0}


def test_public_declaration_errors_name_the_file_not_its_folder() -> None:
    from termshift.monitoring import public_file_error

    assert public_file_error("/srv/termshift/declarations/Acme.json: $.terms: https://a.example/x: bad") == \
        "Acme.json: $.terms: https://a.example/x: bad"
    assert public_file_error("Acme.json: $: reason") == "Acme.json: $: reason"


def test_reading_the_state_creates_no_database(tmp_path: Path) -> None:
    """/status, /status.json and /metrics read each file through its owner's read methods,
    which never create one."""
    from termshift import job_history
    from termshift.trackers.run_store import RUNS_FILE, RunStore

    data = tmp_path / "data"
    data.mkdir()
    client = make_app(make_settings(data)).test_client()
    for path in ("/status", "/status.json", "/metrics"):
        assert client.get(path, headers=ADMIN).status_code == 200
    assert RunStore.open_read_only(data / RUNS_FILE) is None
    assert job_history.recent_runs(data) == [] and job_history.next_run_times(data) == {}
    assert list(data.iterdir()) == []
