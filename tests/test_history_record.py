"""`termshift history record` on a real snapshots archive (git, OTA's layout)."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from click.testing import CliRunner

from termshift.archive_repo import Archive, Snapshot
from termshift.commands.history import history_group
from termshift.contrib.lint import lint_json_file
from termshift.declarations import load_service, source_document_id
from termshift.trackers.extract import extract

START = datetime(2024, 1, 1, 12, 30, 7, tzinfo=UTC)
TEXT = "These terms apply to every user of the service and they are long enough. "


def old_layout(number: int) -> str:
    return f"<html><body><div class='old'><p>{TEXT} Version {number}.</p></div></body></html>"


def new_layout(number: int) -> str:
    return f"<html><body><article class='new'><p>{TEXT} Version {number}.</p></article></body></html>"


def day(number: int) -> datetime:
    return START + timedelta(days=number)


def iso(date: datetime) -> str:
    return date.strftime("%Y-%m-%dT%H:%M:%SZ")


A_URL, B_URL = "https://combo.example/privacy/a", "https://combo.example/privacy/b"


@pytest.fixture
def data_dir(tmp_path: Path) -> Path:
    """ACME's terms: 3 snapshots in the old layout, then 2 in the new one. Combo: two documents,
    `a` redesigned from day 2, `b` from day 3."""
    data = tmp_path / "data"
    with Archive.open(data) as archive:
        for number, html in enumerate([old_layout(0), old_layout(1), old_layout(2), new_layout(3), new_layout(4)]):
            assert archive.snapshots.record(Snapshot("ACME", "Terms of Service", day(number), html)) is not None
        for number in range(4):
            for url, redesigned_on in ((A_URL, 2), (B_URL, 3)):
                html = (new_layout if number >= redesigned_on else old_layout)(number)
                archive.snapshots.record(Snapshot("Combo", "Privacy Policy", day(number) + timedelta(minutes=1),
                                                  html, document_id=source_document_id(url)))
    return data


@pytest.fixture
def declarations(tmp_path: Path, monkeypatch) -> Path:
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("TERMSHIFT_CONFIG", raising=False)
    directory = tmp_path / "declarations"
    directory.mkdir()
    write(directory / "ACME.json", {"name": "ACME", "terms": {
        "Terms of Service": {"fetch": "https://acme.example/tos", "select": ".old"},
        "Imprint": {"fetch": "https://acme.example/imprint", "select": "main"},
    }})
    write(directory / "Combo.json", {"name": "Combo", "terms": {"Privacy Policy": {
        "select": ".old", "combine": [{"fetch": A_URL}, {"fetch": B_URL}]}}})
    return directory


def write(path: Path, data: dict) -> None:
    path.write_text(json.dumps(data, indent=2) + "\n", encoding="utf-8")


def record(declarations: Path, data_dir: Path, service: str, terms_type: str, *options: str):
    return CliRunner().invoke(history_group, ["record", service, terms_type, "--declarations", str(declarations),
                                              "--data", str(data_dir), *options])


def test_record_moves_the_declaration_with_the_last_date_it_extracted(declarations, data_dir):
    current = (declarations / "ACME.json").read_text()
    result = record(declarations, data_dir, "ACME", "Terms of Service")
    assert result.exit_code == 0, result.output
    history_file = declarations / "ACME.history.json"
    assert json.loads(history_file.read_text()) == {"Terms of Service": [
        {"fetch": "https://acme.example/tos", "select": ".old", "validUntil": iso(day(2))}]}
    assert lint_json_file(history_file).is_canonical
    assert (declarations / "ACME.json").read_text() == current  # left for the contributor to edit
    assert f"valid until {iso(day(2))}" in result.output
    assert f"2 newer snapshot(s) do not extract, the first fetched {iso(day(3))}" in result.output
    assert 'termshift preview "ACME" "Terms of Service"' in result.output


def test_after_editing_every_snapshot_extracts_with_the_declaration_of_its_date(declarations, data_dir):
    assert record(declarations, data_dir, "ACME", "Terms of Service").exit_code == 0
    data = json.loads((declarations / "ACME.json").read_text())
    data["terms"]["Terms of Service"]["select"] = ".new"
    write(declarations / "ACME.json", data)
    service = load_service(declarations, "ACME")
    with Archive.open(data_dir) as archive:
        snapshots = archive.snapshots.history("ACME", "Terms of Service")
        assert len(snapshots) == 5
        for snapshot in snapshots:
            [document] = service.terms_at("Terms of Service", snapshot.fetch_date).documents
            assert "Version" in extract(snapshot.content, snapshot.mime_type, document)


def test_recording_twice_is_refused(declarations, data_dir):
    assert record(declarations, data_dir, "ACME", "Terms of Service").exit_code == 0
    before = (declarations / "ACME.history.json").read_text()
    result = record(declarations, data_dir, "ACME", "Terms of Service")
    assert result.exit_code == 1
    assert f'already has an entry valid until {iso(day(2))}' in result.output
    assert (declarations / "ACME.history.json").read_text() == before


def test_the_history_file_stays_sorted_and_keeps_other_types(declarations, data_dir):
    write(declarations / "ACME.history.json", {
        "Imprint": [{"fetch": "https://acme.example/old-imprint", "select": "main", "validUntil": "2022-01-01T00:00:00Z"}],
        "Terms of Service": [
            {"fetch": "https://acme.example/tos", "select": "#v2", "validUntil": "2023-06-01T00:00:00Z"},
            {"fetch": "https://acme.example/tos", "select": "#v1", "validUntil": "2022-06-01T00:00:00Z"},
        ]})
    assert record(declarations, data_dir, "ACME", "Terms of Service").exit_code == 0
    history = json.loads((declarations / "ACME.history.json").read_text())
    assert [entry["select"] for entry in history["Terms of Service"]] == ["#v1", "#v2", ".old"]
    assert history["Imprint"][0]["fetch"] == "https://acme.example/old-imprint"


def test_combined_terms_end_at_the_first_document_that_broke(declarations, data_dir):
    result = record(declarations, data_dir, "Combo", "Privacy Policy")
    assert result.exit_code == 0, result.output
    [entry] = json.loads((declarations / "Combo.history.json").read_text())["Privacy Policy"]
    # `a` last extracted on day 1, `b` on day 2: from day 2 on, the new declaration applies.
    assert entry == {"select": ".old", "combine": [{"fetch": A_URL}, {"fetch": B_URL}],
                     "validUntil": iso(day(1) + timedelta(minutes=1))}


@pytest.mark.parametrize(("service", "terms_type", "change", "message"), [
    ("ACME", "Imprint", None, "no snapshot of ACME / Imprint (https://acme.example/imprint) in the archive"),
    ("ACME", "Terms of Service", ".nothing", "none of the 5 snapshots of https://acme.example/tos extracts"),
    ("ACME", "Privacy Policy", None, "ACME has no current 'Privacy Policy' declaration; it declares: "
                                     "Terms of Service, Imprint"),
    ("Nobody", "Imprint", None, "no declaration of service 'Nobody'"),
])
def test_refusals_say_why(declarations, data_dir, service, terms_type, change, message):
    if change:
        data = json.loads((declarations / "ACME.json").read_text())
        data["terms"]["Terms of Service"]["select"] = change
        write(declarations / "ACME.json", data)
    result = record(declarations, data_dir, service, terms_type)
    assert result.exit_code == 1 and message in result.output, result.output
    assert not (declarations / f"{service}.history.json").exists()


def test_without_an_archive(declarations, tmp_path):
    result = record(declarations, tmp_path / "no-data", "ACME", "Terms of Service")
    assert result.exit_code == 1
    assert f"no snapshots archive at {tmp_path / 'no-data' / 'snapshots'}" in result.output


def test_refused_while_the_declaration_still_extracts_the_newest_snapshot(declarations, data_dir):
    # `p` is in both layouts: the page "changed" but this declaration did not stop working.
    data = json.loads((declarations / "ACME.json").read_text())
    data["terms"]["Terms of Service"]["select"] = "p"
    write(declarations / "ACME.json", data)
    result = record(declarations, data_dir, "ACME", "Terms of Service")
    assert result.exit_code == 1
    assert (f'the current "Terms of Service" declaration of ACME still extracts the newest snapshot '
            f"(fetched {iso(day(4))})") in result.output
    assert "pass --force" in result.output
    assert not (declarations / "ACME.history.json").exists()

    forced = record(declarations, data_dir, "ACME", "Terms of Service", "--force")
    assert forced.exit_code == 0, forced.output
    assert "it still extracts the newest snapshot (recorded with --force)" in forced.output
    [entry] = json.loads((declarations / "ACME.history.json").read_text())["Terms of Service"]
    assert entry == {"fetch": "https://acme.example/tos", "select": "p", "validUntil": iso(day(4))}


def test_combined_terms_are_refused_only_when_no_document_broke(declarations, data_dir):
    data = json.loads((declarations / "Combo.json").read_text())
    data["terms"]["Privacy Policy"]["select"] = "p"
    write(declarations / "Combo.json", data)
    result = record(declarations, data_dir, "Combo", "Privacy Policy")
    assert result.exit_code == 1 and "still extracts every document's newest snapshot" in result.output
    assert not (declarations / "Combo.history.json").exists()
