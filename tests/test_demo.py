"""`termshift demo`: the shipped slice of OTA's demo collection, rebuilt and served offline.

Uses only what the package ships (termshift/demo_data/), never ../shared: the demo
must work on a fresh install without network.
"""

from __future__ import annotations

import subprocess
from pathlib import Path

from click.testing import CliRunner

from termshift.archive_repo.messages import RecordKind, parse_subject
from termshift.cli import main
from termshift.demo import demo_data_dir
from termshift.urls import document_url
from termshift.web.app import create_app


def git(repository: Path, *arguments: str) -> str:
    result = subprocess.run(["git", "-C", str(repository), *arguments], capture_output=True, text=True,
                            timeout=60, check=False)
    assert result.returncode == 0, f"git {arguments[0]} in {repository}: {result.stderr}"
    return result.stdout


def declared_services() -> set[str]:
    """Service ids of the shipped declarations (`<id>.json`; `<id>.history.json` is history)."""
    return {path.name.removesuffix(".json") for path in (demo_data_dir() / "declarations").glob("*.json")
            if not path.name.endswith(".history.json")}


def test_demo_rebuilds_the_shipped_history_reuses_it_and_serves_it(tmp_path: Path) -> None:
    directory = tmp_path / "demo"
    runner = CliRunner()

    first = runner.invoke(main, ["demo", "--no-serve", "--dir", str(directory)])
    assert first.exit_code == 0, first.output
    assert "Rebuilding the demo history" in first.output
    snapshots, versions = directory / "data" / "snapshots", directory / "data" / "versions"

    # Versions were recorded from the shipped snapshots, oldest first.
    subjects = git(versions, "log", "--reverse", "--format=%s").splitlines()
    records = [subject for subject in subjects if parse_subject(subject) is not None]
    assert len(records) > 10
    assert records[0].startswith(f"{RecordKind.FIRST_RECORD.value} ")
    assert {path.name for path in versions.iterdir() if path.is_dir() and path.name != ".git"} == declared_services()
    snapshot_count = int(git(snapshots, "rev-list", "--count", "HEAD"))
    assert snapshot_count > len(records)  # unchanged snapshots give no new version
    git(snapshots, "fsck", "--strict", "--no-progress")
    git(versions, "fsck", "--strict", "--no-progress")

    head = git(versions, "rev-parse", "HEAD")
    second = runner.invoke(main, ["demo", "--no-serve", "--dir", str(directory)])
    assert second.exit_code == 0, second.output
    assert "Reusing" in second.output and "Rebuilding" not in second.output
    assert git(versions, "rev-parse", "HEAD") == head

    # The viewer on the demo archive: the home page and the first recorded document.
    first_path = git(versions, "log", "--reverse", "--format=", "--name-only", "--diff-filter=A").split("\n", 1)[0]
    service_id, _, file_name = first_path.partition("/")
    app = create_app(versions, snapshots, directory / "declarations", tmp_path / "index.sqlite")
    client = app.test_client()
    home = client.get("/")
    assert home.status_code == 200
    assert service_id in home.get_data(as_text=True)
    page = client.get(document_url(service_id, file_name.removesuffix(".md")))
    assert page.status_code == 200
    assert "First record" in page.get_data(as_text=True)
