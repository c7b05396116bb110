"""`termshift dataset`: OTA's ZIP layout, README, LICENSE and versions.csv, from a real versions repository."""

from __future__ import annotations

import csv
import io
import zipfile
from datetime import UTC, datetime
from pathlib import Path

import pytest
from click.testing import CliRunner

from termshift.archive_repo import Archive, Snapshot, Version
from termshift.commands.dataset import dataset_command
from termshift.dataset import (
    ODBL_URL,
    DatasetError,
    archive_basename,
    export_dataset,
    scheduled_export,
)


def at(day: str) -> datetime:
    return datetime.fromisoformat(day).replace(tzinfo=UTC)


# (service, terms type, fetch date, content, technical upgrade), in recording order.
RECORDS = [
    ("ServiceA", "Terms of Service", at("2024-01-01T10:00:00"), "Hello world.", False),
    ("ServiceB", "Terms of Service", at("2024-01-15T08:30:05"), "B terms.\n\nOne clause.", False),
    ("ServiceA", "Terms of Service", at("2024-02-01T10:00:00"), "Hello brave new world.", False),
    ("ServiceB", "Privacy Policy", at("2024-03-01T12:00:00"), "We keep data.", False),
    # Re-extracted from the same snapshot, so dated the same second: same file name.
    ("ServiceB", "Privacy Policy", at("2024-03-01T12:00:00"), "We keep your data.", True),
]


@pytest.fixture
def data(tmp_path: Path) -> Path:
    data = tmp_path / "data"
    with Archive.open(data) as archive:
        for service, terms_type, date, text, upgrade in RECORDS:
            snapshot = archive.snapshots.record(Snapshot(service, terms_type, date, f"<p>{text}</p>"))
            snapshot = snapshot or archive.snapshots.latest(service, terms_type)
            archive.versions.record(Version(service, terms_type, date, text, snapshot_ids=[snapshot.id],
                                            is_technical_upgrade=upgrade))
    return data


def test_zip_layout_contents_and_versions_csv(data: Path, tmp_path: Path) -> None:
    release = at("2024-04-02T09:00:00")
    name = archive_basename("Termshift Demo (EU)", release)
    assert name == "termshift-demo--eu--2024-04-02"
    summary = export_dataset(data, tmp_path / name, title="Termshift Demo (EU)",
                             versions_repository_url="https://example.org/versions", release_date=release)
    assert summary.path == tmp_path / f"{name}.zip"
    with zipfile.ZipFile(summary.path) as archive:
        names = sorted(archive.namelist())
        read = {entry: archive.read(entry).decode("utf-8") for entry in names}
        assert all(info.compress_type == zipfile.ZIP_DEFLATED for info in archive.infolist())
    assert names == sorted(f"{name}/{path}" for path in [
        "README.md", "LICENSE", "versions.csv",
        "ServiceA/Terms of Service/2024-01-01T10-00-00Z.md",
        "ServiceA/Terms of Service/2024-02-01T10-00-00Z.md",
        "ServiceB/Terms of Service/2024-01-15T08-30-05Z.md",
        "ServiceB/Privacy Policy/2024-03-01T12-00-00Z.md",
    ])
    assert read[f"{name}/ServiceA/Terms of Service/2024-02-01T10-00-00Z.md"] == "Hello brave new world."
    assert read[f"{name}/ServiceB/Terms of Service/2024-01-15T08-30-05Z.md"] == "B terms.\n\nOne clause."
    # The technical upgrade of the same second is the file kept.
    assert read[f"{name}/ServiceB/Privacy Policy/2024-03-01T12-00-00Z.md"] == "We keep your data."

    readme = read[f"{name}/README.md"]
    assert readme.startswith("# Termshift Demo (EU) — April 2, 2024\n")
    assert "5 versions of 3 terms documents from 2 service providers" in readme
    assert "from January 1, 2024 to March 1, 2024" in readme
    assert "https://example.org/versions" in readme and ODBL_URL in readme
    assert "Open Database License (ODbL) v1.0" in read[f"{name}/LICENSE"] and ODBL_URL in read[f"{name}/LICENSE"]

    rows = list(csv.DictReader(io.StringIO(read[f"{name}/versions.csv"])))
    assert [(row["service"], row["terms_type"], row["date"]) for row in rows] == [
        (service, terms_type, date.strftime("%Y-%m-%dT%H:%M:%SZ")) for service, terms_type, date, _, _ in RECORDS]
    with Archive.open(data, read_only=True) as archive:
        versions = list(archive.versions.iterate())
    assert [row["version_id"] for row in rows] == [version.id for version in versions]
    assert [row["snapshot_ids"] for row in rows] == [" ".join(version.snapshot_ids) for version in versions]
    words = [(int(row["words_added"]), int(row["words_removed"])) for row in rows]
    # First records count all their words; "brave new" was added; "your" was added by the upgrade.
    assert words == [(2, 0), (4, 0), (2, 0), (3, 0), (1, 0)]
    assert [row["is_technical_upgrade"] for row in rows] == ["0", "0", "0", "0", "1"]
    assert [row["is_first_record"] for row in rows] == ["1", "1", "0", "1", "0"]
    assert summary.versions == 5 and summary.files == 4
    assert not list(tmp_path.glob(".*.partial"))


def test_cli_writes_the_named_file(data: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    result = CliRunner().invoke(dataset_command, ["--file", "release", "--data", str(data)])
    assert result.exit_code == 0, result.output
    assert "release.zip: 5 versions of 3 terms from 2 services (2024-01-01T10:00:00Z to 2024-03-01T12:00:00Z)" \
        in result.output
    with zipfile.ZipFile(tmp_path / "release.zip") as archive:
        assert "release/versions.csv" in archive.namelist()


def test_cli_without_versions_says_so(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    result = CliRunner().invoke(dataset_command, ["--data", str(tmp_path / "empty")])
    assert result.exit_code == 1
    assert "empty/versions: no versions repository" in result.output
    assert not list(tmp_path.glob("*.zip")) and not list(tmp_path.glob(".*partial"))
    with pytest.raises(DatasetError):
        export_dataset(tmp_path / "empty", tmp_path / "x.zip")


def test_scheduled_exports_keep_the_newest(data: Path, tmp_path: Path) -> None:
    from termshift.config import load_settings

    exports = tmp_path / "exports"
    exports.mkdir()
    for day in ("2024-01-01", "2024-01-08", "2024-01-15"):
        (exports / f"weekly-{day}.zip").write_bytes(b"old")
    (exports / "unrelated.zip").write_bytes(b"keep me")
    settings = load_settings(None, environ={}, overrides={
        "": {"data": str(data)}, "dataset": {"title": "Weekly", "directory": str(exports), "keep": 2}})
    result = scheduled_export(settings)
    assert result["versions"] == 5 and result["services"] == 2
    today = archive_basename("Weekly", datetime.now(UTC))
    assert sorted(path.name for path in exports.iterdir()) == ["unrelated.zip", "weekly-2024-01-15.zip", f"{today}.zip"]


def test_versions_csv_cells_never_start_a_spreadsheet_formula(tmp_path: Path) -> None:
    data = tmp_path / "data"
    hostile = ["=1+1", "+SUM(A1)", "-2+3", "@cmd", "\tTab"]  # line breaks: refused by the archive
    with Archive.open(data) as archive:
        for number, service in enumerate(hostile):
            date = at(f"2024-01-0{number + 1}T10:00:00")
            snapshot = archive.snapshots.record(Snapshot(service, "=Terms", date, f"<p>{number}</p>"))
            archive.versions.record(Version(service, "=Terms", date, f"Text {number}.", snapshot_ids=[snapshot.id]))
    summary = export_dataset(data, tmp_path / "out.zip")
    with zipfile.ZipFile(summary.path) as archive:
        name = next(n for n in archive.namelist() if n.endswith("versions.csv"))
        rows = list(csv.DictReader(io.StringIO(archive.read(name).decode())))
    assert sorted(row["service"] for row in rows) == sorted("'" + service for service in hostile)
    assert {row["terms_type"] for row in rows} == {"'=Terms"}
    assert not any(value.startswith(("=", "+", "-", "@", "\t", "\r")) for row in rows for value in row.values())
