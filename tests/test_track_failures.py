"""How the tracking run records failures, in both repositories and in runs.sqlite.

Real misbehaving servers on 127.0.0.x (tests/support/servers.FaultServer), one
host per case so the cases run in parallel, as a real run spreads over hosts.
Documents say `executeClientScripts: false` so that 403/502/resets do not fall back
to Chromium here (test_track_browser.py covers the browser).
"""

from __future__ import annotations

import logging
import os
import signal
import sqlite3
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

from termshift.trackers.run import FAILED, INTERRUPTED, NEW_VERSION, UNCHANGED, run_tracking
from tests.support.servers import CLOUDFLARE_CHALLENGE_PAGE, FaultServer, html_page
from tests.test_track import declare, document_status, git_fsck, history, outcomes, track_settings

REPO_ROOT = Path(__file__).resolve().parent.parent

# service id -> (path on its own host, expected outcome, expected error kind)
CASES: dict[str, tuple[str, str, str | None]] = {
    "HTTP 500": ("/status/500", FAILED, "transient"),
    "HTTP 502": ("/status/502", FAILED, "bot-blocking"),
    "HTTP 503": ("/status/503", FAILED, "transient"),
    "HTTP 403": ("/status/403", FAILED, "bot-blocking"),
    "HTTP 404": ("/status/404", FAILED, "permanent"),
    "HTTP 429 long wait": ("/flaky/9/429/long?retry_after=120", FAILED, "transient"),
    "HTTP 429 short wait": ("/flaky/1/429/short?retry_after=1", NEW_VERSION, None),
    "Time-out": ("/sleep/5", FAILED, "transient"),
    "Connection reset": ("/reset", FAILED, "bot-blocking"),
    "Truncated body": ("/truncated", FAILED, "transient"),
    "Slow drip": ("/drip/5", FAILED, "transient"),
    "Redirect loop": ("/loop", FAILED, "permanent"),
    "Oversized body": ("/big/200000", FAILED, "permanent"),
    "Empty body": ("/empty", FAILED, "permanent"),
    "Challenge page": ("/challenge", FAILED, "blocked"),
    "Charset in meta only": ("/cp1251", NEW_VERSION, None),
    "Wrong charset": ("/wrong-charset", NEW_VERSION, None),
    "No content type": ("/no-content-type", NEW_VERSION, None),
}
TERMS = "Terms of Service"


def failure_settings(declarations: Path, data: Path) -> Any:
    return track_settings(declarations, data, timeout=1.0, retries=1, max_body_bytes=65536, max_redirects=5)


def wrong_charset(exchange: Any) -> None:
    """UTF-8 bytes announced as ISO-8859-1: recorded as the server declared it (as OTA)."""
    exchange.send(200, html_page("Conditions", "Données personnelles protégées."), "text/html; charset=iso-8859-1")


def test_each_failure_is_recorded_exactly_once_and_never_as_a_version(tmp_path: Path) -> None:
    declarations, data = tmp_path / "declarations", tmp_path / "data"
    with FaultServer(hosts=len(CASES) + 2) as server:
        server.route("/wrong-charset", wrong_charset)
        for index, (service_id, (path, _outcome, _kind)) in enumerate(CASES.items()):
            declare(declarations, service_id,
                    {TERMS: {"fetch": server.url(path, index), "select": "body", "executeClientScripts": False}})
        # Combined terms: one document answers, the other is gone (410).
        declare(declarations, "Combined", {TERMS: {"combine": [
            {"fetch": server.url("/page/available", len(CASES))},
            {"fetch": server.url("/status/410", len(CASES) + 1)},
        ], "select": "body", "executeClientScripts": False}})

        summary = run_tracking(failure_settings(declarations, data))
        requests_for = {path: len(server.requests_to(path)) for path, _o, _k in CASES.values()}

    assert summary.status == "completed"  # document failures never fail the run
    results = {result.service_id: result for result in summary.documents}
    for service_id, (_path, outcome, kind) in CASES.items():
        result = results[service_id]
        assert (result.outcome, result.error_kind) == (outcome, kind), (service_id, result.error)
        versions = history(data, "versions", service_id, TERMS)
        snapshots = history(data, "snapshots", service_id, TERMS)
        if outcome == NEW_VERSION:
            assert len(versions) == 1 and len(snapshots) == 1
            assert versions[0].snapshot_ids == [snapshots[0].id]
        elif kind == "blocked":
            # The block page is kept as evidence, marked, and never extracted.
            [blocked] = snapshots
            assert blocked.metadata["blocked"] == "cloudflare-challenge"
            assert blocked.content == CLOUDFLARE_CHALLENGE_PAGE
            assert versions == []
            assert "Blocked page (cloudflare-challenge)" in result.error
        else:
            assert snapshots == [] and versions == [], service_id
    # In-run retries: transient errors twice (retries=1), others once; a long Retry-After is not waited for.
    assert requests_for["/status/503"] == 2 and requests_for["/status/404"] == 1
    assert requests_for["/flaky/9/429/long?retry_after=120"] == 1
    assert requests_for["/flaky/1/429/short?retry_after=1"] == 2
    # Decoding: a charset found in <meta> only, and a wrong one taken at its word.
    assert "Пользовательское соглашение" in history(data, "versions", "Charset in meta only", TERMS)[0].content
    assert "DonnÃ©es personnelles" in history(data, "versions", "Wrong charset", TERMS)[0].content
    # The combined terms keeps the snapshot that succeeded, and has no version.
    combined = results["Combined"]
    assert (combined.outcome, combined.error_kind, combined.snapshots_recorded) == (FAILED, "permanent", 1)
    assert len(history(data, "snapshots", "Combined", TERMS, "page-available")) == 1
    assert history(data, "snapshots", "Combined", TERMS, "status-410") == []
    assert history(data, "versions", "Combined", TERMS) == []

    statuses = document_status(data)
    assert statuses[("Challenge page", TERMS)]["blocked"] == 1
    assert statuses[("Challenge page", TERMS)]["error_kind"] == "blocked"
    assert statuses[("HTTP 404", TERMS)]["consecutive_failures"] == 1
    assert statuses[("HTTP 404", TERMS)]["last_success"] is None
    assert statuses[("Wrong charset", TERMS)]["consecutive_failures"] == 0
    counts = summary.counts
    failed = sum(1 for _p, outcome, _k in CASES.values() if outcome == FAILED) + 1
    assert (counts.failed, counts.blocked, counts.new_versions) == (failed, 1, len(CASES) + 1 - failed)
    assert "Challenge page / Terms of Service: failed (blocked)" in summary.describe()
    git_fsck(data / "snapshots")
    git_fsck(data / "versions")


class Switch:
    """Routes `/switch/<name>` whose answer a test changes between runs: "ok", "500" or "challenge"."""

    def __init__(self, server: FaultServer) -> None:
        self.modes: dict[str, str] = {}
        server.route("/switch/", self._serve)

    def _serve(self, exchange: Any) -> None:
        mode = self.modes[exchange.path.rsplit("/", 1)[-1]]
        if mode == "ok":
            exchange.send(200, html_page("Terms", "The same terms every time."))
        elif mode == "challenge":
            exchange.send(200, CLOUDFLARE_CHALLENGE_PAGE, headers={"Server": "cloudflare"})
        else:
            exchange.send(int(mode), html_page("Error", "Something broke."))


def test_consecutive_failures_count_across_runs_and_reset_on_success(tmp_path: Path) -> None:
    declarations, data = tmp_path / "declarations", tmp_path / "data"
    with FaultServer(hosts=4) as server:
        switch = Switch(server)
        names = {"Steady": "/status/503", "Flip": "/switch/flip", "Turns blocked": "/switch/blocked",
                 "Turns failing": "/switch/failing"}
        for index, (service_id, path) in enumerate(names.items()):
            declare(declarations, service_id,
                    {TERMS: {"fetch": server.url(path, index), "select": "main", "executeClientScripts": False}})
        settings = track_settings(declarations, data)

        switch.modes.update(flip="500", blocked="ok", failing="ok")
        first = run_tracking(settings)
        assert outcomes(first) == {("Steady", TERMS): FAILED, ("Flip", TERMS): FAILED,
                                   ("Turns blocked", TERMS): NEW_VERSION, ("Turns failing", TERMS): NEW_VERSION}
        after_first = document_status(data)

        switch.modes.update(flip="ok", blocked="challenge", failing="500")
        second = run_tracking(settings)
        assert outcomes(second) == {("Steady", TERMS): FAILED, ("Flip", TERMS): NEW_VERSION,
                                    ("Turns blocked", TERMS): FAILED, ("Turns failing", TERMS): FAILED}
        after_second = document_status(data)
        # A failed fetch and a block page leave the versions as they were.
        assert len(history(data, "versions", "Turns failing", TERMS)) == 1
        assert len(history(data, "snapshots", "Turns failing", TERMS)) == 1
        blocked, good = history(data, "snapshots", "Turns blocked", TERMS)
        assert "blocked" in blocked.metadata and "blocked" not in good.metadata
        assert len(history(data, "versions", "Turns blocked", TERMS)) == 1

        switch.modes.update(blocked="ok", failing="ok")
        third = run_tracking(settings)
        after_third = document_status(data)

    steady = [after[("Steady", TERMS)] for after in (after_first, after_second, after_third)]
    assert [row["consecutive_failures"] for row in steady] == [1, 2, 3]
    assert steady[0]["failing_since"] == steady[2]["failing_since"] is not None  # since the first failure
    assert "[3 consecutive failures]" in third.describe()

    flip = after_second[("Flip", TERMS)]
    assert after_first[("Flip", TERMS)]["consecutive_failures"] == 1
    assert (flip["consecutive_failures"], flip["failing_since"], flip["error_kind"]) == (0, None, None)
    assert flip["last_success"] is not None

    assert after_second[("Turns blocked", TERMS)]["blocked"] == 1
    assert after_second[("Turns blocked", TERMS)]["error_kind"] == "blocked"
    # Back to the page of run 1: a new snapshot (the file held the block page), the same Markdown.
    assert outcomes(third)[("Turns blocked", TERMS)] == UNCHANGED
    assert len(history(data, "snapshots", "Turns blocked", TERMS)) == 3
    assert len(history(data, "versions", "Turns blocked", TERMS)) == 1
    assert after_third[("Turns blocked", TERMS)]["blocked"] == 0
    assert after_third[("Turns blocked", TERMS)]["consecutive_failures"] == 0
    assert outcomes(third)[("Turns failing", TERMS)] == UNCHANGED


def slow_collection(declarations: Path, server: FaultServer, per_host: int) -> list[str]:
    """One service per page, `per_host` pages on each host; returns the service ids."""
    services = []
    for host in range(len(server.hosts)):
        for number in range(per_host):
            service_id = f"Slow {host}-{number}"
            declare(declarations, service_id,
                    {TERMS: {"fetch": server.url(f"/page/{service_id.replace(' ', '-')}", host), "select": "main"}})
            services.append(service_id)
    return services


def test_stop_event_records_what_is_in_hand_and_the_next_run_finishes(tmp_path: Path) -> None:
    declarations, data = tmp_path / "declarations", tmp_path / "data"
    stop = threading.Event()

    class StopAfterFirstVersion(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            if record.getMessage().endswith(": new version"):
                stop.set()

    handler = StopAfterFirstVersion()
    track_log = logging.getLogger("termshift.track")
    level = track_log.level
    track_log.addHandler(handler)
    track_log.setLevel(logging.INFO)
    try:
        with FaultServer(hosts=2, latency=0.3) as server:
            services = slow_collection(declarations, server, per_host=6)
            settings = track_settings(declarations, data)
            interrupted = run_tracking(settings, stop_event=stop)
            track_log.removeHandler(handler)
            assert interrupted.status == "interrupted"
            assert interrupted.counts.interrupted > 0
            assert interrupted.counts.new_versions + interrupted.counts.interrupted == len(services)
            assert INTERRUPTED in outcomes(interrupted).values()
            with sqlite3.connect(data / "runs.sqlite") as db:
                assert db.execute("SELECT status FROM runs").fetchall() == [("interrupted",)]
            git_fsck(data / "snapshots")
            git_fsck(data / "versions")

            finished = run_tracking(settings)
    finally:
        track_log.removeHandler(handler)
        track_log.setLevel(level)
    assert finished.status == "completed"
    for service_id in services:
        assert len(history(data, "versions", service_id, TERMS)) == 1
        assert len(history(data, "snapshots", service_id, TERMS)) == 1


def commits(repository: Path) -> int:
    answer = subprocess.run(["git", "-C", str(repository), "rev-list", "--count", "HEAD"],
                            capture_output=True, text=True, check=False)
    return int(answer.stdout.strip()) if answer.returncode == 0 else 0


def test_a_killed_run_loses_nothing_and_the_next_run_records_the_rest(tmp_path: Path) -> None:
    declarations, data = tmp_path / "declarations", tmp_path / "data"
    with FaultServer(hosts=3, latency=0.5) as server:
        services = slow_collection(declarations, server, per_host=5)
        environment = {**os.environ, "PYTHONPATH": str(REPO_ROOT), "TERMSHIFT_FETCHER_HOST_DELAY": "0",
                       "TERMSHIFT_SCHEDULE_REFRESH_INDEX": "false"}
        process = subprocess.Popen(
            [sys.executable, "-m", "termshift.cli", "track", "--declarations", str(declarations), "--data", str(data),
             "-q"],
            env=environment, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True,
        )
        try:
            deadline = time.monotonic() + 60
            while commits(data / "snapshots") < 2 and time.monotonic() < deadline and process.poll() is None:
                time.sleep(0.02)
            assert process.poll() is None, "the run ended before it could be killed"
            recorded_before_kill = commits(data / "snapshots")
            assert 2 <= recorded_before_kill < len(services)
            os.killpg(process.pid, signal.SIGKILL)  # the run and its fetch worker, mid-flight
        finally:
            process.wait(timeout=30)
        assert process.returncode == -signal.SIGKILL
        git_fsck(data / "snapshots")
        git_fsck(data / "versions")
        with sqlite3.connect(data / "runs.sqlite") as db:
            assert db.execute("SELECT status, finished_at FROM runs").fetchall() == [("running", None)]
        snapshots_kept, versions_kept = commits(data / "snapshots"), commits(data / "versions")

        summary = run_tracking(track_settings(declarations, data))
    assert summary.status == "completed"
    # What the killed run recorded is kept and not recorded again; the rest is recorded now.
    assert summary.counts.snapshots_recorded == len(services) - snapshots_kept
    assert summary.counts.new_versions == len(services) - versions_kept
    for service_id in services:
        [snapshot] = history(data, "snapshots", service_id, TERMS)
        [version] = history(data, "versions", service_id, TERMS)
        assert version.snapshot_ids == [snapshot.id]
        assert version.content.startswith(service_id.replace(" ", "-"))
    with sqlite3.connect(data / "runs.sqlite") as db:
        assert [row[0] for row in db.execute("SELECT status FROM runs ORDER BY id")] == ["killed", "completed"]


def test_a_failing_terms_sends_no_validators(tmp_path: Path) -> None:
    """A 304 must never stand for a page that failed: validators are dropped when a terms fails."""
    declarations, data = tmp_path / "declarations", tmp_path / "data"
    with FaultServer(hosts=2) as server:
        declare(declarations, "Versioned", {TERMS: {"combine": [
            {"fetch": server.url("/etag", 0)}, {"fetch": server.url("/status/404", 1)}], "select": "main",
            "executeClientScripts": False}})
        settings = track_settings(declarations, data)
        for _ in range(2):
            summary = run_tracking(settings)
            assert outcomes(summary) == {("Versioned", TERMS): FAILED}
        etag_requests = server.requests_to("/etag")
    assert len(etag_requests) == 2
    assert all("if-none-match" not in request.headers for request in etag_requests)
    assert summary.counts.not_modified == 0


def test_an_archive_changed_behind_the_runs_back_is_extracted_again(tmp_path: Path) -> None:
    """Pages identical to their snapshots skip extraction only while the archive is as the last
    completed run left it: here the versions repository is rolled back (a restored backup)."""
    declarations, data = tmp_path / "declarations", tmp_path / "data"
    with FaultServer(hosts=2) as server:
        declare(declarations, "Steady", {TERMS: {"fetch": server.url("/page/steady", 0), "select": "main"}})
        declare(declarations, "Other", {TERMS: {"fetch": server.url("/page/other", 1), "select": "main"}})
        settings = track_settings(declarations, data)
        run_tracking(settings)
        assert commits(data / "versions") == 2
        subprocess.run(["git", "-C", str(data / "versions"), "reset", "-q", "--hard", "HEAD~1"], check=True)
        lost = "Other" if not history(data, "versions", "Other", TERMS) else "Steady"

        again = run_tracking(settings)
    assert outcomes(again)[(lost, TERMS)] == NEW_VERSION
    assert again.counts.snapshots_recorded == 0
    assert len(history(data, "versions", lost, TERMS)) == 1
