"""The tracking run (`termshift track`, `run_tracking`) against real local servers.

Real pages are replayed from the demo snapshots bundle (tests using ../shared skip
without it); small hand-written pages cover the same ground on a fresh clone.
Every run here is a real one: fetch worker process, Scrapy, git repositories,
SQLite. Failures are in test_track_failures.py, JavaScript pages in
test_track_browser.py.
"""

from __future__ import annotations

import json
import sqlite3
import subprocess
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from termshift.alerts import store as alerts_store
from termshift.alerts import subscriptions
from termshift.archive_repo import RecordRepository
from termshift.cli import main
from termshift.config import Settings, load_settings
from termshift.declarations import load_collection
from termshift.trackers.extract import extract
from termshift.trackers.replay import DOCUMENT_SEPARATOR
from termshift.trackers.run import FAILED, NEW_VERSION, UNCHANGED, RunSummary, run_tracking
from tests.support.receiver import Receiver
from tests.support.replay_server import ReplayServer
from tests.support.servers import FaultServer, LocalServer, html_page

# -- helpers shared with test_track_failures.py and test_track_browser.py ---------------------


def track_settings(declarations: Path, data: Path, **fetcher: Any) -> Settings:
    """Settings for fast runs: no pause between requests to a host, short time-outs."""
    return load_settings(environ={}, overrides={
        "": {"declarations": str(declarations), "data": str(data)},
        "fetcher": {"timeout": 3.0, "host_delay": 0.0, "retries": 0, **fetcher},
        "web": {"base_url": "https://terms.example.org"},
    })


def declare(directory: Path, service_id: str, terms: dict[str, Any]) -> None:
    """Write `<service_id>.json` with these terms."""
    directory.mkdir(parents=True, exist_ok=True)
    (directory / f"{service_id}.json").write_text(json.dumps({"name": service_id, "terms": terms}), encoding="utf-8")


def repositories(data: Path) -> tuple[RecordRepository, RecordRepository]:
    """The snapshots and versions repositories, read-only (they must be closed)."""
    return (RecordRepository(data / "snapshots", "snapshots", read_only=True),
            RecordRepository(data / "versions", "versions", read_only=True))


def history(data: Path, kind: str, service_id: str, terms_type: str, document_id: str | None = None) -> list:
    """Records of a document, newest first."""
    repository = RecordRepository(data / kind, kind, read_only=True)  # type: ignore[arg-type]
    try:
        records = repository.history(service_id, terms_type, document_id)
        for record in records:
            _ = record.content  # load while the repository is open
        return records
    finally:
        repository.close()


def outcomes(summary: RunSummary) -> dict[tuple[str, str], str]:
    return {(result.service_id, result.terms_type): result.outcome for result in summary.documents}


def document_status(data: Path) -> dict[tuple[str, str], dict[str, Any]]:
    with sqlite3.connect(data / "runs.sqlite") as db:
        db.row_factory = sqlite3.Row
        return {(row["service_id"], row["terms_type"]): dict(row) for row in db.execute("SELECT * FROM document_status")}


def git_fsck(repository: Path) -> None:
    answer = subprocess.run(["git", "-C", str(repository), "fsck", "--full", "--strict"],
                            capture_output=True, text=True, check=False)
    assert answer.returncode == 0, answer.stderr


# -- real pages from the demo corpus ------------------------------------------------------------

# Terms whose archived pages change in Markdown over their last 40 snapshots, and some that do
# not (Buffer's four terms share one page; only two of them change).
REPLAYED = [
    ("Buffer", "Developer Terms"), ("Buffer", "Terms of Service"), ("Buffer", "Privacy Policy"),
    ("Buffer", "Copyright Claims Policy"),
    ("GitHub", "Terms of Service"), ("Open Collective", "Terms of Service"),
    ("UptimeRobot", "Privacy Policy"), ("UptimeRobot", "Terms of Service"),
    ("Open Terms Archive", "Imprint"),
]
KEEP = 40


@pytest.fixture(scope="session")
def demo_snapshots(corpus_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The demo snapshots bundle, cloned once per session (bare: reading needs no work tree)."""
    target = tmp_path_factory.mktemp("demo") / "snapshots.git"
    subprocess.run(["git", "clone", "-q", "--bare", "-b", "subset", str(corpus_dir / "snapshots.bundle"), str(target)],
                   check=True)
    return target


def expected_markdown(server: ReplayServer, declarations: Path, step: int) -> dict[tuple[str, str], str | None]:
    """What extraction gives for each replayed terms at `step` (None when it fails)."""
    collection = load_collection(declarations)
    expected = {}
    for service_id, service in collection.services.items():
        for terms_type, terms in service.terms.items():
            parts = []
            try:
                for document in terms.documents:
                    original = next(url for url in server.documents if server.local_url(url) == document.location)
                    parts.append(extract(server.page(original, step), "text/html", document, service.filters))
            except Exception:  # noqa: BLE001 - the oracle only needs to know that it fails
                expected[(service_id, terms_type)] = None
                continue
            expected[(service_id, terms_type)] = DOCUMENT_SEPARATOR.join(parts)
    return expected


def expected_outcome(previous: str | None, markdown: str | None) -> str:
    """The oracle: a version when extraction works and gives new Markdown."""
    if markdown is None:
        return FAILED
    return UNCHANGED if markdown == previous else NEW_VERSION


@pytest.mark.corpus
def test_replayed_real_pages_give_the_right_snapshots_and_versions(demo_snapshots: Path, corpus_dir: Path,
                                                                  tmp_path: Path) -> None:
    declarations, data = tmp_path / "declarations", tmp_path / "data"
    with ReplayServer.from_repository(demo_snapshots, corpus_dir / "declarations", terms=REPLAYED, keep=KEEP) as server:
        server.write_declarations(declarations)
        settings = track_settings(declarations, data)
        collection = load_collection(declarations)
        first, last = 0, KEEP - 1
        before, after = expected_markdown(server, declarations, first), expected_markdown(server, declarations, last)
        assert sorted(before) == sorted(REPLAYED)
        changed = {key for key in REPLAYED if expected_outcome(before[key], after[key]) == NEW_VERSION}
        assert changed and changed != set(REPLAYED), "the chosen pages must hold changes and non-changes"
        # Open Terms Archive's older Imprint page predates its current selector: a real extraction failure.
        assert before[("Open Terms Archive", "Imprint")] is None

        # Run 1: the oldest kept page of every URL.
        server.step = first
        summary = run_tracking(settings)
        assert summary.status == "completed"
        assert outcomes(summary) == {key: expected_outcome(None, before[key]) for key in REPLAYED}
        assert server.hits("/legal") == 1  # Buffer's four terms share one URL: fetched once
        for service_id, terms_type in REPLAYED:
            [snapshot] = history(data, "snapshots", service_id, terms_type)  # recorded even when extraction fails
            location = collection.services[service_id].terms[terms_type].documents[0].location
            original = next(url for url in server.documents if server.local_url(url) == location)
            assert snapshot.content == server.page(original, first)  # byte for byte what was served
            assert snapshot.metadata["x-fetcher"] == "htmlOnly"
            assert snapshot.metadata["x-source-document-location"] == location
            versions = history(data, "versions", service_id, terms_type)
            if before[(service_id, terms_type)] is None:
                assert versions == []
                continue
            [version] = versions
            assert version.content == before[(service_id, terms_type)]
            assert version.snapshot_ids == [snapshot.id]
            assert version.fetch_date == snapshot.fetch_date
            assert version.is_first_record

        # Run 2: the latest pages. Raw pages all moved on; versions only where the Markdown did.
        server.step = last
        summary = run_tracking(settings)
        assert outcomes(summary) == {key: expected_outcome(before[key], after[key]) for key in REPLAYED}
        for key in REPLAYED:
            snapshots = history(data, "snapshots", *key)
            versions = history(data, "versions", *key)
            raw_changed = snapshots[0].content != snapshots[-1].content
            assert len(snapshots) == (2 if raw_changed else 1)
            assert len(versions) == (before[key] is not None) + (key in changed)
            assert versions[0].content == after[key]
            # An unchanged version still names the snapshot it was extracted from in run 1.
            assert versions[0].snapshot_ids == [snapshots[0].id if key in changed else snapshots[-1].id]
        assert summary.counts.new_versions == len(changed)

        # Run 3: nothing changed anywhere.
        summary = run_tracking(settings)
        assert set(outcomes(summary).values()) == {UNCHANGED}
        assert summary.counts.snapshots_recorded == 0
    git_fsck(data / "snapshots")
    git_fsck(data / "versions")


# -- small hand-written pages (no ../shared needed) ----------------------------------------------


class Pages:
    """Pages a test changes between runs: `pages[(host index, path)] = (status, body, content type)`."""

    def __init__(self, server: LocalServer) -> None:
        self.server = server
        self.pages: dict[tuple[str, str], tuple[int, str | bytes, str]] = {}
        server.route("/site/", self._serve)

    def set(self, host: int, path: str, body: str | bytes, content_type: str = "text/html; charset=utf-8") -> str:
        address = self.server.hosts[host]
        self.pages[(address, path)] = (200, body, content_type)
        return self.server.url(path, host)

    def _serve(self, exchange: Any) -> None:
        status, body, content_type = self.pages.get((exchange.host, exchange.path), (404, "missing", "text/plain"))
        exchange.send(status, body, content_type)


def terms_page(title: str, text: str, noise: str = "") -> str:
    return html_page(title, text).replace("</main>", f"</main><footer>{noise}</footer>")


@pytest.fixture
def site() -> Any:
    with FaultServer(hosts=3) as server:
        yield server, Pages(server)


def test_tracking_hand_written_pages_across_runs(site: Any, tmp_path: Path) -> None:
    server, pages = site
    declarations, data = tmp_path / "declarations", tmp_path / "data"
    terms_url = pages.set(0, "/site/terms", terms_page("Terms", "You agree to version one.", noise="visit 1"))
    part_a = pages.set(1, "/site/privacy/data", terms_page("Data", "We keep your data one year."))
    part_b = pages.set(2, "/site/privacy/cookies", terms_page("Cookies", "We use two cookies.", noise="a"))
    declare(declarations, "Acme", {
        "Terms of Service": {"fetch": terms_url, "select": "main"},
        "Privacy Policy": {"combine": [{"fetch": part_a}, {"fetch": part_b}], "select": "main"},
    })
    declare(declarations, "Beta", {
        "Terms of Service": {"fetch": server.url("/pdf", 1)},
        "Privacy Policy": {"fetch": server.url("/etag", 2), "select": "main"},
    })
    settings = track_settings(declarations, data)

    first = run_tracking(settings)
    assert first.status == "completed"
    assert outcomes(first) == {("Acme", "Terms of Service"): NEW_VERSION, ("Acme", "Privacy Policy"): NEW_VERSION,
                               ("Beta", "Terms of Service"): NEW_VERSION, ("Beta", "Privacy Policy"): NEW_VERSION}
    assert first.counts.snapshots_recorded == 5
    # Combined terms: one snapshot file per document, one version joining them in declaration order.
    [data_snapshot] = history(data, "snapshots", "Acme", "Privacy Policy", "site-privacy-data")
    [cookies_snapshot] = history(data, "snapshots", "Acme", "Privacy Policy", "site-privacy-cookies")
    assert (data / "snapshots" / "Acme" / "Privacy Policy #site-privacy-data.html").is_file()
    [combined] = history(data, "versions", "Acme", "Privacy Policy")
    assert combined.content == "Data\n====\n\nWe keep your data one year." + DOCUMENT_SEPARATOR + \
        "Cookies\n=======\n\nWe use two cookies."
    assert combined.snapshot_ids == [data_snapshot.id, cookies_snapshot.id]
    [pdf_version] = history(data, "versions", "Beta", "Terms of Service")
    assert "Terms of the PDF" in pdf_version.content
    assert (data / "snapshots" / "Beta" / "Terms of Service.pdf").is_file()
    statuses = document_status(data)
    assert all(row["consecutive_failures"] == 0 and row["last_success"] for row in statuses.values())

    # Run 2: the terms change; a combined part changes only outside its selection; the ETag page
    # answers 304 to the validators stored by run 1.
    pages.set(0, "/site/terms", terms_page("Terms", "You agree to version two.", noise="visit 2"))
    pages.set(2, "/site/privacy/cookies", terms_page("Cookies", "We use two cookies.", noise="b"))
    second = run_tracking(settings)
    assert outcomes(second) == {("Acme", "Terms of Service"): NEW_VERSION, ("Acme", "Privacy Policy"): UNCHANGED,
                                ("Beta", "Terms of Service"): UNCHANGED, ("Beta", "Privacy Policy"): UNCHANGED}
    assert second.counts.not_modified == 1
    etag_requests = server.requests_to("/etag")
    assert etag_requests[-1].headers.get("if-none-match") == '"v1"'
    assert len(history(data, "snapshots", "Beta", "Privacy Policy")) == 1  # a 304 records nothing
    assert len(history(data, "snapshots", "Acme", "Privacy Policy", "site-privacy-cookies")) == 2
    assert len(history(data, "versions", "Acme", "Privacy Policy")) == 1
    new_terms, old_terms = history(data, "versions", "Acme", "Terms of Service")
    assert new_terms.content == "Terms\n=====\n\nYou agree to version two."
    assert not new_terms.is_first_record and not new_terms.is_technical_upgrade
    assert [version.id for version in second.new_versions] == [new_terms.id]

    # Run 3: a declaration change with no page change is a technical upgrade, dated at the snapshot.
    declare(declarations, "Acme", {
        "Terms of Service": {"fetch": terms_url, "select": "main p"},
        "Privacy Policy": {"combine": [{"fetch": part_a}, {"fetch": part_b}], "select": "main"},
    })
    third = run_tracking(settings)
    assert third.counts.technical_upgrades == 1
    assert outcomes(third)[("Acme", "Terms of Service")] == UNCHANGED
    upgrade = history(data, "versions", "Acme", "Terms of Service")[0]
    assert upgrade.is_technical_upgrade and upgrade.content == "You agree to version two."
    assert upgrade.fetch_date == history(data, "snapshots", "Acme", "Terms of Service")[0].fetch_date
    # Run 4: the fingerprint is stored: no upgrade pass, nothing re-extracted.
    fourth = run_tracking(settings)
    assert fourth.counts.technical_upgrades == 0
    assert set(outcomes(fourth).values()) == {UNCHANGED}


def test_runs_table_and_document_status_columns(site: Any, tmp_path: Path) -> None:
    server, pages = site
    declarations, data = tmp_path / "declarations", tmp_path / "data"
    declare(declarations, "Acme", {"Terms of Service": {"fetch": pages.set(0, "/site/t", terms_page("T", "Text.")),
                                                        "select": "main"}})
    summary = run_tracking(track_settings(declarations, data))
    with sqlite3.connect(data / "runs.sqlite") as db:
        db.row_factory = sqlite3.Row
        columns = [row[1] for row in db.execute("PRAGMA table_info(document_status)")]
        assert columns[:10] == ["service_id", "terms_type", "last_success", "failing_since", "error_kind", "error",
                                "consecutive_failures", "blocked", "last_run_id", "fingerprint"]
        [run] = db.execute("SELECT * FROM runs").fetchall()
    assert run["id"] == summary.run_id and run["status"] == "completed"
    assert run["started_at"].endswith("Z") and run["finished_at"] >= run["started_at"]
    assert json.loads(run["counts"])["new_versions"] == 1
    stored = json.loads(run["summary"])
    assert stored["documents"][0]["outcome"] == NEW_VERSION
    assert stored["documents"][0]["service_id"] == "Acme"


def test_new_versions_are_queued_for_webhooks_and_delivered_with_deliver(site: Any, tmp_path: Path) -> None:
    server, pages = site
    declarations, data = tmp_path / "declarations", tmp_path / "data"
    url = pages.set(0, "/site/terms", terms_page("Terms", "Version one."))
    declare(declarations, "Acme", {"Terms of Service": {"fetch": url, "select": "main"}})
    with Receiver(secret=None) as receiver:
        db = alerts_store.connect(data)
        subscription = subscriptions.add(db, receiver.url(), allow_private_targets=["127.0.0.1"])
        db.commit()
        db.close()
        receiver.secret = subscription.secret
        environment = {"TERMSHIFT_WEBHOOKS_ALLOW_PRIVATE_TARGETS": "127.0.0.1",
                       "TERMSHIFT_WEB_BASE_URL": "https://terms.example.org", "TERMSHIFT_FETCHER_HOST_DELAY": "0"}
        runner = CliRunner()
        result = runner.invoke(main, ["track", "--declarations", str(declarations), "--data", str(data), "-q"],
                               env=environment)
        assert result.exit_code == 0, result.output
        assert "Acme / Terms of Service: new version" in result.output
        assert receiver.deliveries == []  # the run queues, it never delivers by itself
        with sqlite3.connect(data / "alerts.sqlite") as alerts:
            assert alerts.execute("SELECT status FROM outbox").fetchall() == [("pending",)]

        pages.set(0, "/site/terms", terms_page("Terms", "Version two."))
        result = runner.invoke(main, ["track", "--declarations", str(declarations), "--data", str(data), "-q",
                                      "--deliver"], env=environment)
        assert result.exit_code == 0, result.output
        assert len(receiver.accepted()) == 2  # both versions' events, signed and accepted
        events = [delivery.json() for delivery in receiver.accepted()]
        assert {event["type"] for event in events} == {"version.recorded"}


def test_bad_declarations_are_skipped_naming_file_field_and_reason_bad_options_exit_2(tmp_path: Path) -> None:
    declarations, data = tmp_path / "declarations", tmp_path / "data"
    declare(declarations, "Broken", {"Terms of Service": {"fetch": "http://127.0.0.1:9/t", "select": 42}})
    declare(declarations, "Fine", {"Terms of Service": {"fetch": "http://127.0.0.1:9/t", "select": "main"}})
    result = CliRunner().invoke(main, ["track", "--declarations", str(declarations), "--data", str(data), "-q"])
    assert result.exit_code == 3  # completed, but a service was skipped (test_isolation.py has more)
    assert "Broken.json: $.terms[\"Terms of Service\"].select: expected a CSS selector" in result.output
    assert "Fine / Terms of Service: failed" in result.output  # tried: nothing answers on port 9

    result = CliRunner().invoke(main, ["track", "--declarations", str(declarations), "--data", str(data), "-q",
                                       "--services", "Fine", "--types", "Imprint"])
    assert result.exit_code == 2
    assert "--types: no selected service declares terms of type 'Imprint'" in result.output
    result = CliRunner().invoke(main, ["track", "--declarations", str(declarations), "--data", str(data), "-q",
                                       "--services", "Nobody"])
    assert result.exit_code == 2
    assert "no declaration of service 'Nobody'" in result.output
