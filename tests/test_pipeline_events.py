"""The tracking pipeline's events (termshift.trackers.events): what the run, the rebuild and the
technical upgrades tell their listeners, and that a failing listener costs only itself."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from termshift.alerts.listener import AlertsListener
from termshift.archive_repo import RecordRepository, Snapshot, Version
from termshift.config import load_settings
from termshift.trackers.events import REBUILD, TECHNICAL_UPGRADE, TRACKING, VersionRecorded, hookimpl
from termshift.trackers.replay import rebuild
from termshift.trackers.run import FAILED, NEW_VERSION, run_tracking
from tests.support.alerts import BASE_URL
from tests.support.servers import FaultServer
from tests.test_track import Pages, declare, terms_page, track_settings
from tests.test_webhooks import queued, subscribe


class Recorder:
    """Notes every event, in order."""

    def __init__(self) -> None:
        self.events: list[tuple[str, Any]] = []

    @hookimpl
    def run_started(self, run_id: int, started_at: datetime) -> None:
        self.events.append(("run_started", run_id))

    @hookimpl
    def snapshot_recorded(self, snapshot: Snapshot, run_id: int | None) -> None:
        self.events.append(("snapshot_recorded", (snapshot.service_id, snapshot.terms_type, bool(snapshot.content))))

    @hookimpl
    def version_recorded(self, event: VersionRecorded) -> None:
        self.events.append(("version_recorded", event))

    @hookimpl
    def terms_failed(self, result: Any, run_id: int | None) -> None:
        self.events.append(("terms_failed", (result.service_id, result.terms_type, result.error)))

    @hookimpl
    def records_written(self, run_id: int | None) -> None:
        self.events.append(("records_written", run_id))

    @hookimpl
    def run_finished(self, summary: Any) -> None:
        self.events.append(("run_finished", summary.status))

    def names(self) -> list[str]:
        return [name for name, _ in self.events]

    def versions(self) -> list[VersionRecorded]:
        return [event for name, event in self.events if name == "version_recorded"]


class Broken:
    """A listener that fails at every version, and one that says it could not do its part."""

    @hookimpl
    def version_recorded(self, event: VersionRecorded) -> None:
        raise RuntimeError("listener down")

    @hookimpl
    def run_finished(self) -> str:
        return "could not do it"


def test_the_tracking_run_tells_its_listeners_what_happened(tmp_path: Path) -> None:
    declarations, data = tmp_path / "declarations", tmp_path / "data"
    with FaultServer(hosts=2) as server:
        pages = Pages(server)
        terms = pages.set(0, "/site/terms", terms_page("Terms", "Version one."))
        declare(declarations, "Acme", {"Terms of Service": {"fetch": terms, "select": "main"},
                                       "Privacy Policy": {"fetch": server.url("/site/missing", 1), "select": "main"}})
        settings = track_settings(declarations, data)
        first = Recorder()
        summary = run_tracking(settings, listeners=[first])
        assert first.names() == ["run_started", "snapshot_recorded", "version_recorded", "terms_failed",
                                 "records_written", "run_finished"] or \
            first.names() == ["run_started", "terms_failed", "snapshot_recorded", "version_recorded",
                              "records_written", "run_finished"]  # results arrive in any order
        assert first.events[0] == ("run_started", summary.run_id)
        assert ("snapshot_recorded", ("Acme", "Terms of Service", True)) in first.events
        [(_, failed)] = [event for event in first.events if event[0] == "terms_failed"]
        assert failed[:2] == ("Acme", "Privacy Policy") and "404" in failed[2]
        [version] = first.versions()
        assert (version.origin, version.run_id) == (TRACKING, summary.run_id)
        assert version.markdown == "Terms\n=====\n\nVersion one." and version.previous_markdown is None
        assert version.version.id == summary.new_versions[0].id and version.version.is_first_record
        assert first.events[-1] == ("run_finished", "completed")
        assert {(r.terms_type, r.outcome) for r in summary.documents} == {("Terms of Service", NEW_VERSION),
                                                                          ("Privacy Policy", FAILED)}

        # A declaration change applied as a technical upgrade before fetching, then a change.
        declare(declarations, "Acme", {"Terms of Service": {"fetch": terms, "select": "main p"}})
        pages.set(0, "/site/terms", terms_page("Terms", "Version two."))
        second = Recorder()
        summary = run_tracking(settings, listeners=[second, Broken()])
    upgrade, change = second.versions()
    assert (upgrade.origin, upgrade.markdown, upgrade.run_id) == (TECHNICAL_UPGRADE, "Version one.", summary.run_id)
    assert upgrade.version.is_technical_upgrade and upgrade.previous_markdown == "Terms\n=====\n\nVersion one."
    assert (change.origin, change.markdown, change.previous_markdown) == (TRACKING, "Version two.", "Version one.")
    assert not change.version.is_first_record
    # The failing listener stopped neither the run nor the others' events; both problems are reported.
    assert summary.status == "completed" and second.names()[-1] == "run_finished"
    assert "version_recorded: RuntimeError: listener down" in summary.errors
    assert "could not do it" in summary.errors


def test_a_rebuild_announces_each_version(tmp_path: Path) -> None:
    declarations = tmp_path / "declarations"
    declare(declarations, "Acme", {"Terms of Service": {"fetch": "https://acme.example/terms", "select": "main"}})
    snapshots = RecordRepository(tmp_path / "snapshots", "snapshots")
    start = datetime(2024, 1, 1, tzinfo=UTC)
    for day, text in enumerate(["One.", "One.", "Two."]):
        snapshots.record(Snapshot(service_id="Acme", terms_type="Terms of Service", document_id=None,
                                  fetch_date=start + timedelta(days=day), content=terms_page("Terms", text),
                                  mime_type="text/html"))
    snapshots.close()
    recorder = Recorder()
    summary = rebuild(declarations, tmp_path / "snapshots", tmp_path / "versions", listeners=[recorder])
    assert summary.versions_recorded == 2
    first, second = recorder.versions()
    assert [event.origin for event in (first, second)] == [REBUILD, REBUILD]
    assert first.version.is_first_record and first.markdown.endswith("One.") and first.previous_markdown is None
    assert second.markdown.endswith("Two.") and second.version.fetch_date == start + timedelta(days=2)
    assert second.previous_markdown == first.markdown
    assert recorder.names()[-1] == "records_written"


def test_the_alerts_listener_queues_from_the_texts_in_memory(tmp_path: Path) -> None:
    """Nothing is read back from git: here there is no versions repository at all, and the
    events still carry statistics, sentences and the diff computed from the event's texts."""
    subscriber = subscribe(tmp_path, include_diff=True)
    settings = load_settings(environ={}, overrides={"": {"data": str(tmp_path)}, "web": {"base_url": BASE_URL},
                                                     "webhooks": {"allow_private_targets": ["127.0.0.1"]}})
    listener = AlertsListener(settings)
    when = datetime(2026, 1, 2, tzinfo=UTC)
    first = Version("Acme", "Imprint", when, "Hello there, world.", id="0" * 40, is_first_record=True,
                    snapshot_ids=["a" * 40])
    change = Version("Acme", "Imprint", when, "Hello there, wide world.", id="1" * 40, snapshot_ids=["b" * 40])
    upgrade = Version("Acme", "Imprint", when, "Hello.", id="2" * 40, is_technical_upgrade=True,
                      snapshot_ids=["b" * 40])
    assert listener.version_recorded(VersionRecorded(first, first.content, None, TRACKING)) is None
    listener.version_recorded(VersionRecorded(change, change.content, first.content, TRACKING))
    listener.version_recorded(VersionRecorded(upgrade, upgrade.content, change.content, TECHNICAL_UPGRADE))
    assert queued(tmp_path) == []  # batched until the records are written
    assert listener.records_written() is None
    payloads = {row["version_id"]: row["payload"]["data"] for row in queued(tmp_path)}
    assert sorted(payloads) == ["0" * 40, "1" * 40]  # technical upgrades are never announced
    assert payloads["0" * 40]["stats"] == {"words_added": 3, "words_removed": 0}
    assert payloads["1" * 40]["stats"] == {"words_added": 1, "words_removed": 0}
    assert payloads["1" * 40]["changed_sentences"] == ["Hello there, wide world."]
    assert "+Hello there, wide world." in payloads["1" * 40]["diff"]["text"]
    assert all(row["subscription_id"] == subscriber.id for row in queued(tmp_path))
