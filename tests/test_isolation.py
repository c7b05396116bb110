"""A defect costs only itself: one broken service never stops the others (issue 10 §3, issue 12 items 1, 6).

A collection holds sound services beside broken ones: a history entry with a misspelt key,
JSON nested 200,000 levels deep, a file that is not UTF-8, a filters file that raises or
calls `sys.exit()` when imported. Tracking (against a real loopback HTTP server, as in
test_track.py), rebuilding, upgrading and serving still do their work for the sound ones,
and report the others. Filter code runs only when a document is extracted: never for
`validate --schema-only`, the viewer, its declarations reload or its feeds (filters
files here leave a marker file when they are imported).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from termshift.cli import main
from termshift.declarations import load_collection
from termshift.trackers.replay import EXIT_SERVICES_SKIPPED, apply_technical_upgrades, rebuild
from termshift.trackers.run import FAILED, NEW_VERSION, run_tracking
from termshift.web import create_app
from termshift.web.declared_services import Declarations
from tests.support.servers import FaultServer
from tests.test_rebuild import page, record_snapshots, snapshot
from tests.test_track import Pages, declare, history, outcomes, terms_page, track_settings

REPO_ROOT = Path(__file__).resolve().parent.parent
BROKEN = ["Bad History", "Latin", "Nested"]  # their files do not load: skipped


def filters_file(marker: Path, body: str) -> str:
    """A filters file that writes `marker` as soon as it is imported, then runs `body`."""
    return (f"import pathlib\npathlib.Path({str(marker)!r}).write_text('imported')\n\n\n"
            "def clean(document, context):\n    for element in document.xpath('//footer'):\n"
            f"        element.drop_tree()\n\n\n{body}\n")


def broken_collection(directory: Path, markers: Path, url: Any) -> None:
    """Two sound services, one with a working filter; three that do not load; two whose filters
    file fails when imported. `url(name)` gives the page address of a service."""
    markers.mkdir(parents=True, exist_ok=True)
    declare(directory, "Good", {"Terms of Service": {"fetch": url("good"), "select": "main"}})
    declare(directory, "Marked", {"Terms of Service": {"fetch": url("marked"), "select": "body",
                                                       "filter": ["clean"]}})
    (directory / "Marked.filters.py").write_text(filters_file(markers / "Marked", ""))
    # A misspelt key in one history entry.
    declare(directory, "Bad History", {"Terms of Service": {"fetch": url("bad-history"), "select": "main"}})
    (directory / "Bad History.history.json").write_text(json.dumps({"Terms of Service": [
        {"fetch": url("bad-history"), "select": "body", "ValidUntil": "2024-01-01T00:00:00Z"}]}))
    (directory / "Nested.json").write_text("[" * 200_000 + "]" * 200_000)
    (directory / "Latin.json").write_bytes(b'{"name": "Caf\xe9", "terms": {}}')
    for name, body in (("Raises", "raise RuntimeError('broken at import')"), ("Exits", "import sys\nsys.exit(3)")):
        declare(directory, name, {"Terms of Service": {"fetch": url(name.lower()), "select": "body",
                                                       "filter": ["clean"]}})
        (directory / f"{name}.filters.py").write_text(filters_file(markers / name, body))


@pytest.fixture
def site() -> Any:
    with FaultServer(hosts=1) as server:
        pages = Pages(server)
        yield lambda name: pages.set(0, f"/site/{name}", terms_page(name.title(), f"The terms of {name}.",
                                                                    noise="footer noise"))


def test_track_rebuild_upgrade_and_serve_go_on_without_the_broken_services(site: Any, tmp_path: Path) -> None:
    declarations, data, markers = tmp_path / "declarations", tmp_path / "data", tmp_path / "markers"
    broken_collection(declarations, markers, site)
    collection = load_collection(declarations)
    assert sorted(collection.skipped) == BROKEN  # and loading imported no filters file
    assert sorted(collection.services) == ["Exits", "Good", "Marked", "Raises"]
    assert list(markers.iterdir()) == []

    summary = run_tracking(track_settings(declarations, data))
    assert summary.status == "completed"
    assert [skipped.service_id for skipped in summary.skipped] == BROKEN
    assert summary.counts.services_skipped == 3
    [bad_history] = [skipped for skipped in summary.skipped if skipped.service_id == "Bad History"]
    assert ("Bad History.history.json: $[\"Terms of Service\"][0].ValidUntil: unknown field 'ValidUntil' "
            "(did you mean 'validUntil'?)") in bad_history.errors
    [nested] = [skipped for skipped in summary.skipped if skipped.service_id == "Nested"]
    assert nested.errors == ["Nested.json: $: malformed JSON, it cannot be parsed: nested too deeply"]
    [latin] = [skipped for skipped in summary.skipped if skipped.service_id == "Latin"]
    assert latin.errors[0].startswith("Latin.json: $: not UTF-8 text: invalid continuation byte")
    assert outcomes(summary) == {("Good", "Terms of Service"): NEW_VERSION, ("Marked", "Terms of Service"): NEW_VERSION,
                                 ("Raises", "Terms of Service"): FAILED, ("Exits", "Terms of Service"): FAILED}
    errors = {result.service_id: result.error for result in summary.documents}
    assert 'the filters file "Raises.filters.py" cannot be loaded (line 10)' in errors["Raises"]
    assert "RuntimeError: broken at import" in errors["Raises"]
    assert "SystemExit: 3" in errors["Exits"]  # the process lived on
    [marked] = history(data, "versions", "Marked", "Terms of Service")
    assert "footer noise" not in marked.content  # the filter ran: it was needed to extract
    assert sorted(path.name for path in markers.iterdir()) == ["Exits", "Marked", "Raises"]
    # The run's summary, stored for /status, names the skipped services and each problem.
    assert "Bad History: skipped, its declarations do not load" in summary.describe()
    assert "3 services skipped (declarations do not load)" in summary.totals()

    # The viewer starts on the same folders; reading the declarations, its pages, its feeds
    # and its reload import no filters file.
    for marker in markers.iterdir():
        marker.unlink()
    app = create_app(track_settings(declarations, data), refresh_interval=0)
    client = app.test_client()
    status = client.get("/status.json").json
    assert [item["service_id"] for item in status["skipped_services"]] == BROKEN
    assert str(tmp_path) not in json.dumps(status["skipped_services"])  # file names, not paths
    assert [item["service_id"] for item in status["declarations_skipped"]] == BROKEN  # as the viewer reads them
    status_page = client.get("/status").get_data(as_text=True)
    assert "Nested.json: $: malformed JSON" in status_page
    assert "These declarations do not load now" in status_page
    assert client.get("/Good.json").status_code == 200
    assert client.get("/Marked").status_code == 200
    assert client.get("/feed.atom").status_code == 200
    assert client.get("/feed/Marked.atom").status_code == 200
    reloading = Declarations(declarations, interval=0)
    reloading.refresh()
    assert sorted(reloading.services) == ["Exits", "Good", "Marked", "Raises"]
    assert list(markers.iterdir()) == []

    # Technical upgrades: the broken services are reported, the others upgraded.
    upgrades = apply_technical_upgrades(declarations, data, settings=track_settings(declarations, data))
    assert sorted(upgrades.skipped_services) == BROKEN
    assert upgrades.documents[("Good", "Terms of Service")].failures == 0

    # Rebuild the whole snapshots history into a new versions repository.
    replay = rebuild(declarations, data / "snapshots", tmp_path / "rebuilt")
    assert sorted(replay.skipped_services) == BROKEN
    assert replay.versions_recorded == 2  # Good and Marked; Raises and Exits fail their documents
    assert replay.documents[("Exits", "Terms of Service")].failures == 1


def test_track_and_rebuild_commands_exit_3_when_services_were_skipped(site: Any, tmp_path: Path) -> None:
    declarations, data, markers = tmp_path / "declarations", tmp_path / "data", tmp_path / "markers"
    broken_collection(declarations, markers, site)
    # As test_track.py's command tests; loopback pages are allowed once fetches refuse private targets.
    environment = {"TERMSHIFT_WEB_BASE_URL": "https://terms.example.org", "TERMSHIFT_FETCHER_HOST_DELAY": "0",
                   "TERMSHIFT_FETCHER_RETRIES": "0", "TERMSHIFT_FETCHER_ALLOW_PRIVATE_TARGETS": "127.0.0.1"}
    runner = CliRunner()
    result = runner.invoke(main, ["track", "--declarations", str(declarations), "--data", str(data), "-q"],
                           env=environment)
    assert result.exit_code == EXIT_SERVICES_SKIPPED == 3, result.output
    assert "Good / Terms of Service: new version" in result.output
    assert "Nested: skipped, its declarations do not load: Nested.json: $: malformed JSON" in result.output
    # Only sound services asked for: a plain success.
    result = runner.invoke(main, ["track", "--declarations", str(declarations), "--data", str(data), "-q",
                                  "--services", "Good"], env=environment)
    assert result.exit_code == 0, result.output
    # A service that does not exist is a mistake in the command: nothing runs.
    result = runner.invoke(main, ["track", "--declarations", str(declarations), "--data", str(data), "-q",
                                  "--services", "Nobody"], env=environment)
    assert result.exit_code == 2 and "no declaration of service 'Nobody'" in result.output

    result = runner.invoke(main, ["rebuild", "--declarations", str(declarations), "--snapshots",
                                  str(data / "snapshots"), "--versions", str(tmp_path / "rebuilt"), "-q"])
    assert result.exit_code == 3, result.output
    assert "Latin: SKIPPED, its declarations do not load" in result.output
    result = runner.invoke(main, ["apply-technical-upgrades", "--declarations", str(declarations), "--data",
                                  str(data), "-q"])
    assert result.exit_code == 3, result.output


def test_a_history_entry_with_a_misspelt_key_skips_its_whole_service_in_a_rebuild(tmp_path: Path) -> None:
    """Skipping only the bad entry would extract its dates with the next declaration, not in force then."""
    declarations = tmp_path / "declarations"
    declare(declarations, "Acme", {"Terms of Service": {"fetch": "https://acme.example/t", "select": "main"}})
    (declarations / "Acme.history.json").write_text(json.dumps({"Terms of Service": [
        {"fetch": "https://acme.example/t", "select": "nav", "ValidUntil": "2024-01-03T12:30:00Z"}]}))
    declare(declarations, "Beta", {"Terms of Service": {"fetch": "https://beta.example/t", "select": "main"}})
    record_snapshots(tmp_path / "snapshots", [
        snapshot("Acme", "Terms of Service", 1, page("<p>Old place</p>").replace("<nav>", "<nav>Nav text")),
        snapshot("Acme", "Terms of Service", 4, page("<p>New place</p>")),
        snapshot("Beta", "Terms of Service", 1, page("<p>Beta terms</p>")),
    ])
    summary = rebuild(declarations, tmp_path / "snapshots", tmp_path / "versions")
    assert summary.versions_recorded == 1 and summary.skipped_snapshots["Acme"] == 2
    assert not (tmp_path / "versions" / "Acme").exists()
    assert (tmp_path / "versions" / "Beta" / "Terms of Service.md").read_text() == "Beta terms"


def test_validate_schema_only_reads_filters_files_without_running_them(tmp_path: Path) -> None:
    declarations, markers = tmp_path / "declarations", tmp_path / "markers"
    broken_collection(declarations, markers, lambda name: f"https://{name}.example/terms")
    declare(declarations, "Arity", {"Terms of Service": {"fetch": "https://arity.example/t", "select": "body",
                                                        "filter": [{"clean": ["too", "many"]}, "missing"]}})
    (declarations / "Arity.filters.py").write_text(filters_file(markers / "Arity", ""))
    environment = {key: value for key, value in os.environ.items() if not key.startswith("TERMSHIFT_")}
    environment["PYTHONPATH"] = str(REPO_ROOT)
    completed = subprocess.run([sys.executable, "-m", "termshift.cli", "validate", "--schema-only",
                                "--declarations", str(declarations)],
                               env=environment, capture_output=True, text=True, timeout=120, check=False)
    assert completed.returncode == 1, completed.stderr
    assert "Traceback" not in completed.stderr
    lines = completed.stdout.splitlines()
    assert f"{declarations}/Nested.json: $: malformed JSON, it cannot be parsed: nested too deeply" in lines
    assert any(line.startswith(f"{declarations}/Latin.json: $: not UTF-8 text") for line in lines)
    assert (f"{declarations}/Bad History.history.json: $[\"Terms of Service\"][0].ValidUntil: unknown field "
            "'ValidUntil' (did you mean 'validUntil'?)") in lines
    # Arity and names come from reading the file.
    assert any(line.startswith(f"{declarations}/Arity.json: $.terms[\"Terms of Service\"].filter[0]: filter "
                               "'clean' cannot be called: it is declared with parameters") for line in lines)
    assert any(line.startswith(f"{declarations}/Arity.json: $.terms[\"Terms of Service\"].filter[1]: unknown "
                               "filter 'missing'") for line in lines)
    assert list(markers.iterdir()) == []  # no filters file ran, not even the ones that would exit

    # lint reads the same files without a traceback either.
    result = CliRunner().invoke(main, ["lint", "--declarations", str(declarations)])
    assert "Traceback" not in result.output and result.exception is None or isinstance(result.exception, SystemExit)
    assert "Nested.json" in result.output and "nested too deeply" in result.output
    assert list(markers.iterdir()) == []


def test_validate_warns_about_a_select_that_is_prose_on_a_pdf(tmp_path: Path) -> None:
    declarations = tmp_path / "declarations"
    declare(declarations, "Papers", {
        "Terms of Service": {"fetch": "https://papers.example/terms.pdf", "select": "Whole PDF (all pages)."},
        "Privacy Policy": {"fetch": "https://papers.example/privacy", "select": "Whole page (all of it)."},
    })
    result = CliRunner().invoke(main, ["validate", "--schema-only", "--declarations", str(declarations)])
    lines = result.output.splitlines()
    assert any(line.startswith(f"warning: {declarations}/Papers.json: $.terms[\"Terms of Service\"].select: ")
               and "this document is a PDF" in line for line in lines), result.output
    assert any(line.startswith(f"{declarations}/Papers.json: $.terms[\"Privacy Policy\"].select: ")
               for line in lines), result.output
    assert result.exit_code == 1  # because of the HTML page's prose selector
    declare(declarations, "Papers", {
        "Terms of Service": {"fetch": "https://papers.example/terms.pdf", "select": "Whole PDF (all pages)."}})
    result = CliRunner().invoke(main, ["validate", "--schema-only", "--declarations", str(declarations)])
    assert result.exit_code == 0, result.output
    assert "no errors, 1 warning" in result.output
