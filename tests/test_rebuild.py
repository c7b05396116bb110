"""`termshift rebuild` and `termshift apply-technical-upgrades` on real git repositories.

The snapshots repositories are written with `termshift.archive_repo` (OTA's layout and
commit conventions), or come from the demo bundle shipped in the package, so these
tests run on a fresh clone without ../shared.
"""

from __future__ import annotations

import json
import subprocess
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from click.testing import CliRunner

from termshift.archive_repo import Archive, RecordRepository, Snapshot
from termshift.cli import main
from termshift.demo import prepare_demo
from termshift.trackers.replay import (
    DOCUMENT_SEPARATOR,
    RebuildError,
    apply_technical_upgrades,
    rebuild,
)

DAY = timedelta(days=1)
START = datetime(2024, 1, 1, 12, 30, tzinfo=UTC)


def page(body: str, noise: str = "") -> str:
    """A terms page: the text in <main>, noise (tokens, ads) outside it."""
    return f"<html><head><script>var token='{noise}'</script></head><body><nav>{noise}</nav>" \
           f"<main>{body}</main><footer>{noise}</footer></body></html>"


def write_json(path: Path, data: dict) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(data, indent=2), encoding="utf-8")


@pytest.fixture
def collection(tmp_path: Path) -> Path:
    """Two services: a single-page terms with a history file, and a combined terms."""
    declarations = tmp_path / "declarations"
    write_json(declarations / "Acme.json", {
        "name": "Acme",
        "terms": {"Terms of Service": {"fetch": "https://acme.example/terms", "select": "main"}},
    })
    # Until 2024-01-03 (inclusive) the text lived in <nav>.
    write_json(declarations / "Acme.history.json", {
        "Terms of Service": [{"fetch": "https://acme.example/terms", "select": "nav",
                              "validUntil": "2024-01-03T12:30:00Z"}],
    })
    write_json(declarations / "Combo.json", {
        "name": "Combo",
        "terms": {"Privacy Policy": {"select": "main", "combine": [
            {"fetch": "https://combo.example/privacy"},
            {"fetch": "https://combo.example/cookies"},
        ]}},
    })
    return declarations


def record_snapshots(repository_dir: Path, snapshots: list[Snapshot]) -> list[str]:
    with RecordRepository(repository_dir, "snapshots") as repository:
        return [repository.record(snapshot).id for snapshot in snapshots]


def snapshot(service: str, terms_type: str, day: int, content: str, document_id: str | None = None) -> Snapshot:
    return Snapshot(service, terms_type, START + day * DAY, content, mime_type="text/html",
                    document_id=document_id, metadata={"fetcher": "htmlOnly"})


def test_rebuild_records_a_version_only_when_the_text_changes_with_the_declaration_in_force(
    collection: Path, tmp_path: Path
) -> None:
    snapshots_dir, versions_dir = tmp_path / "snapshots", tmp_path / "versions"
    ids = record_snapshots(snapshots_dir, [
        snapshot("Acme", "Terms of Service", 1, page("<p>ignored</p>", "You agree.")),  # history: <nav>
        snapshot("Acme", "Terms of Service", 2, page("<p>ignored too</p>", "You agree.")),  # same text
        snapshot("Acme", "Terms of Service", 3, page("<p>You agree.</p>", "x1")),  # current: <main>
        snapshot("Acme", "Terms of Service", 4, page("<p>You agree.</p>", "x2")),  # noise only
        snapshot("Acme", "Terms of Service", 5, page("<p>You agree to arbitration.</p>", "x3")),
    ])
    summary = rebuild(collection, snapshots_dir, versions_dir)

    assert summary.snapshots_read == 5
    assert summary.failures == 0
    with RecordRepository(versions_dir, "versions", read_only=True) as versions:
        recorded = list(versions.iterate())
    # Day 1 (nav, history) and day 3 (main, current) give the same text: no version on day 3.
    assert [v.content for v in recorded] == ["You agree.", "You agree to arbitration."]
    assert [v.snapshot_ids for v in recorded] == [[ids[0]], [ids[4]]]
    assert [v.fetch_date for v in recorded] == [START + DAY, START + 5 * DAY]
    assert recorded[0].is_first_record and not recorded[1].is_first_record


def test_rebuild_assembles_combined_terms_once_every_document_has_a_snapshot(
    collection: Path, tmp_path: Path
) -> None:
    snapshots_dir, versions_dir = tmp_path / "snapshots", tmp_path / "versions"
    ids = record_snapshots(snapshots_dir, [
        snapshot("Combo", "Privacy Policy", 1, page("<p>Privacy v1</p>"), "privacy"),
        snapshot("Combo", "Privacy Policy", 2, page("<p>Cookies v1</p>"), "cookies"),
        snapshot("Combo", "Privacy Policy", 3, page("<p>Cookies v2</p>"), "cookies"),
    ])
    rebuild(collection, snapshots_dir, versions_dir)
    with RecordRepository(versions_dir, "versions", read_only=True) as versions:
        recorded = list(versions.iterate())
    assert [v.content for v in recorded] == [
        "Privacy v1" + DOCUMENT_SEPARATOR + "Cookies v1",
        "Privacy v1" + DOCUMENT_SEPARATOR + "Cookies v2",
    ]
    assert recorded[1].snapshot_ids == [ids[0], ids[2]]  # declaration order, latest of each


def test_rebuild_reports_failures_per_document_and_skips_blocked_pages(collection: Path, tmp_path: Path) -> None:
    snapshots_dir, versions_dir = tmp_path / "snapshots", tmp_path / "versions"
    blocked = snapshot("Acme", "Terms of Service", 5, "<html><title>Just a moment...</title></html>")
    blocked.metadata["blocked"] = "cloudflare-challenge"
    record_snapshots(snapshots_dir, [
        snapshot("Acme", "Terms of Service", 4, page("<p>Terms</p>")),
        blocked,
        snapshot("Acme", "Terms of Service", 6, "<html><body><div>redesigned</div></body></html>"),
        snapshot("Unknown", "Terms of Service", 6, page("<p>x</p>")),
    ])
    seen = []
    summary = rebuild(collection, snapshots_dir, versions_dir,
                      on_snapshot=lambda s, markdown, error, version: seen.append((markdown, error)))

    assert summary.versions_recorded == 1
    acme = summary.documents[("Acme", "Terms of Service")]
    assert acme.failures == 2
    assert any("blocked page" in reason for reason in acme.reasons)
    assert any('selector "main" has no match' in reason for reason in acme.reasons)
    unknown = summary.documents[("Unknown", "Terms of Service")]
    assert (unknown.failures, unknown.skipped) == (0, 1)  # not a failure of any declaration
    assert [markdown for markdown, _ in seen] == ["Terms", None, None, None]
    text = summary.describe()
    assert "Acme / Terms of Service: 2 failed of 3" in text
    assert "Unknown / Terms of Service: 1 snapshots skipped (not declared then)" in text


def test_rebuild_never_writes_into_a_versions_repository_that_holds_versions(
    collection: Path, tmp_path: Path
) -> None:
    snapshots_dir, versions_dir = tmp_path / "snapshots", tmp_path / "versions"
    record_snapshots(snapshots_dir, [snapshot("Acme", "Terms of Service", 4, page("<p>Terms</p>"))])
    rebuild(collection, snapshots_dir, versions_dir)
    head = subprocess.run(["git", "-C", str(versions_dir), "rev-parse", "HEAD"],
                          capture_output=True, text=True, check=True).stdout
    with pytest.raises(RebuildError, match="already holds 1 versions"):
        rebuild(collection, snapshots_dir, versions_dir)
    assert subprocess.run(["git", "-C", str(versions_dir), "rev-parse", "HEAD"],
                          capture_output=True, text=True, check=True).stdout == head


def test_rebuild_skips_a_service_whose_declarations_do_not_load_and_replays_the_others(
    collection: Path, tmp_path: Path
) -> None:
    (collection / "Broken.json").write_text('{"name": "Broken", "terms": {"Terms of Servce": {}}}')
    record_snapshots(tmp_path / "snapshots", [snapshot("Acme", "Terms of Service", 4, page("<p>T</p>")),
                                              snapshot("Broken", "Terms of Service", 4, page("<p>B</p>"))])
    summary = rebuild(collection, tmp_path / "snapshots", tmp_path / "versions")
    assert summary.versions_recorded == 1  # Acme's
    assert list(summary.skipped_services) == ["Broken"]
    assert summary.skipped_snapshots["Broken"] == 1
    assert any("Broken.json: $.terms[\"Terms of Servce\"]: unknown terms type" in line
               for line in summary.skipped_services["Broken"])
    assert "Broken: SKIPPED, its declarations do not load (1 snapshots not extracted)" in summary.describe()
    # A service asked for that is not declared at all is a mistake in the command: nothing runs.
    with pytest.raises(RebuildError, match="no declaration of 'Nobody'"):
        rebuild(collection, tmp_path / "snapshots", tmp_path / "other", services=["Nobody"])


def test_apply_technical_upgrades_re_extracts_the_latest_snapshot(collection: Path, tmp_path: Path) -> None:
    data = tmp_path / "data"
    record_snapshots(data / "snapshots", [
        snapshot("Acme", "Terms of Service", 4, page("<h1>Terms</h1><p>You agree.</p>")),
    ])
    rebuild(collection, data / "snapshots", data / "versions")

    unchanged = apply_technical_upgrades(collection, data)
    assert unchanged.versions_recorded == 0

    declaration = json.loads((collection / "Acme.json").read_text())
    declaration["terms"]["Terms of Service"]["select"] = "main p"  # a declaration fix
    (collection / "Acme.json").write_text(json.dumps(declaration))
    summary = apply_technical_upgrades(collection, data)

    assert summary.versions_recorded == 1
    with Archive.open(data, read_only=True) as archive:
        latest = archive.versions.latest("Acme", "Terms of Service")
        snapshot_record = archive.snapshots.latest("Acme", "Terms of Service")
    assert latest.content == "You agree."
    assert latest.is_technical_upgrade
    assert latest.fetch_date == snapshot_record.fetch_date  # dated at its snapshot, as OTA
    subject = subprocess.run(["git", "-C", str(data / "versions"), "log", "-1", "--format=%s"],
                             capture_output=True, text=True, check=True).stdout.strip()
    assert subject == "Apply technical or declaration upgrade on Acme Terms of Service"
    # Combined terms with no snapshot yet are left for the next tracking run.
    assert summary.documents[("Combo", "Privacy Policy")].versions == 0


def test_rebuild_command_on_the_shipped_demo_history(tmp_path: Path) -> None:
    declarations, data = prepare_demo(tmp_path / "demo")
    result = CliRunner().invoke(main, [
        "rebuild", "--declarations", str(declarations), "--snapshots", str(data / "snapshots"),
        "--versions", str(data / "versions"), "--quiet",
    ])
    assert result.exit_code == 0, result.output
    assert "288 snapshots read" in result.output
    with RecordRepository(data / "versions", "versions", read_only=True) as versions:
        uptime = versions.history("UptimeRobot", "Privacy Policy")
        imprint = versions.history("Open Terms Archive", "Imprint")
    assert len(uptime) >= 5
    assert uptime[-1].is_first_record and uptime[0].content.startswith("Privacy policy.\n====")
    assert imprint  # extracted with the history declarations of the shipped collection

    again = CliRunner().invoke(main, [
        "rebuild", "--declarations", str(declarations), "--snapshots", str(data / "snapshots"),
        "--versions", str(data / "versions"), "--quiet",
    ])
    assert again.exit_code == 1
    assert "already holds" in again.output
