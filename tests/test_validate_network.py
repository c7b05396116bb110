"""`termshift validate` network checks against real local pages, and `--modified` on real git repos."""

from __future__ import annotations

import itertools
import json
import subprocess
from pathlib import Path

import pytest
from click.testing import CliRunner

from termshift.commands.validate import validate_command
from termshift.declarations import SourceDocument
from termshift.validate_network import (
    ModifiedSelectionError,
    analyse_selection,
    differing_lines,
    modified_selection,
    validate_modified,
)
from tests.support.servers import LocalServer

TERMS_TEXT = "These terms govern the use of the service and are long enough to be terms. " * 3


def page(body: str) -> str:
    return f"<!DOCTYPE html><html><head><title>T</title></head><body>{body}</body></html>"


@pytest.fixture(scope="module")
def environment(tmp_path_factory):
    """No configuration file, no delay between requests to one host, a short noise delay."""
    with pytest.MonkeyPatch.context() as patch:
        patch.chdir(tmp_path_factory.mktemp("cwd"))
        patch.delenv("TERMSHIFT_CONFIG", raising=False)
        patch.setenv("TERMSHIFT_FETCHER_HOST_DELAY", "0")
        patch.setenv("TERMSHIFT_FETCHER_RETRIES", "0")
        patch.setenv("TERMSHIFT_VALIDATE_NOISE_DELAY", "0.3")
        yield patch


@pytest.fixture(scope="module")
def site(environment):
    counter = itertools.count()
    with LocalServer(hosts=1) as server:
        server.add_page("/terms", page(f"<main><h1>Terms</h1><div class='ad'>Ad</div><p>{TERMS_TEXT}</p></main>"
                                       "<footer>f</footer>"))
        server.add_page("/privacy", page(f"<main><h1>Privacy</h1><p>{TERMS_TEXT}</p></main>"))
        server.add_page("/tiny", page("<main><p>Tiny</p></main>"))
        server.add_page("/no-main", page(f"<div><p>{TERMS_TEXT}</p></div>"))
        server.route("/noisy", lambda exchange: exchange.send(200, page(
            f"<main><p>{TERMS_TEXT}</p><p>Generated at {next(counter)}</p></main>")))
        server.route("/gone", lambda exchange: exchange.send(404, "Not found"))
        yield server


def write_service(directory: Path, service_id: str, terms: dict) -> Path:
    path = directory / f"{service_id}.json"
    path.write_text(json.dumps({"name": service_id, "terms": terms}, indent=2) + "\n", encoding="utf-8")
    return path


@pytest.fixture(scope="module")
def collection(site, tmp_path_factory):
    """Good passes everything; each terms type of Broken fails one check (two services: four crawls)."""
    directory = tmp_path_factory.mktemp("declarations")
    url = site.url
    write_service(directory, "Good", {
        "Terms of Service": {"fetch": url("/terms"), "select": ["h1", {"startAfter": "h1", "endBefore": "footer"}],
                             "remove": ".ad"},
        "Privacy Policy": {"fetch": url("/privacy"), "select": "main"},
    })
    write_service(directory, "Broken", {
        "Terms of Service": {"fetch": url("/gone"), "select": "main"},
        "Privacy Policy": {"fetch": url("/no-main"), "select": "main"},
        "Imprint": {"fetch": url("/tiny"), "select": "main"},
        "Trackers Policy": {"fetch": url("/noisy"), "select": "main"},
        "User Consent Policy": {"fetch": url("/privacy"), "select": ["main", ".does-not-exist"]},
        "Community Guidelines": {
            "select": "main",
            "combine": [{"fetch": url("/terms")}, {"fetch": url("/no-main")}, {"fetch": url("/terms")}],
        },
    })
    return directory


@pytest.fixture(scope="module")
def full_run(collection, site):
    result = CliRunner().invoke(validate_command, ["--declarations", str(collection)])
    return result


def errors_of(output: str, service: str) -> list[str]:
    """Error blocks (a line and its indented continuation lines) of one service's file."""
    blocks: list[str] = []
    mine = False
    for line in output.splitlines():
        if line.startswith(" "):
            if mine:
                blocks[-1] += "\n" + line
            continue
        mine = f"/{service}.json: " in line
        if mine:
            blocks.append(line)
    return blocks


def test_a_working_service_passes_every_check(full_run):
    assert errors_of(full_run.output, "Good") == [], full_run.output


def test_fetchable_fails_on_a_404_with_a_hint(full_run):
    [error] = [e for e in errors_of(full_run.output, "Broken") if "[fetchable]" in e]
    assert '$.terms["Terms of Service"].fetch' in error
    assert "HTTP code 404" in error and "hint: open the URL in a browser" in error


def test_selectors_match_fails_when_select_matches_nothing(full_run):
    [error] = [e for e in errors_of(full_run.output, "Broken") if '["Privacy Policy"].select: [selectors-match]' in e]
    assert 'The provided selector "main" has no match' in error
    assert "termshift try URL --select SELECTOR" in error


def test_long_enough_fails_on_tiny_content(full_run):
    [error] = [e for e in errors_of(full_run.output, "Broken") if "[long-enough]" in e]
    assert "$.terms.Imprint.select" in error and "only 4 characters" in error and "'Tiny'" in error


def test_stable_fails_on_noise_and_shows_the_differing_lines(full_run):
    [error] = [e for e in errors_of(full_run.output, "Broken") if "[stable]" in e]
    assert '$.terms["Trackers Policy"]' in error
    lines = error.splitlines()
    removed = [line.strip() for line in lines if line.strip().startswith("-Generated at")]
    added = [line.strip() for line in lines if line.strip().startswith("+Generated at")]
    assert len(removed) == 1 and len(added) == 1 and removed[0][1:] != added[0][1:]
    assert lines[-1].strip().startswith("hint: part of the page changes")


def test_select_items_fails_on_an_item_that_matches_nothing(full_run):
    [error] = [e for e in errors_of(full_run.output, "Broken") if "[select-items]" in e]
    assert '$.terms["User Consent Policy"].select[1]' in error
    assert "'.does-not-exist' matches nothing" in error


def test_combined_terms_point_at_the_inherited_selector_and_duplicates(full_run):
    errors = [e for e in errors_of(full_run.output, "Broken") if "Community Guidelines" in e]
    duplicate = [e for e in errors if "appears more than once" in e]
    no_match = [e for e in errors if "[selectors-match]" in e]
    assert len(duplicate) == 1 and "/terms' appears more than once" in duplicate[0]
    # The second document inherits the terms-level `select`: that is where the error is.
    assert len(no_match) == 1 and '$.terms["Community Guidelines"].select:' in no_match[0]
    assert "/no-main" in no_match[0]


def test_exit_code_and_summary(full_run):
    assert full_run.exit_code == 1
    assert full_run.output.strip().splitlines()[-1] == "2 services checked (all checks): 7 errors in 1 service"


def test_each_document_is_fetched_twice_at_most_and_failures_once(full_run, site):
    assert site.hits("/gone") == 1  # a failed fetch is not fetched again for the noise check
    # Two documents of Broken use it: one download serves both; extraction failed, so no second fetch.
    assert site.hits("/no-main") == 1
    assert site.hits("/noisy") == 2


def test_a_passing_selection_exits_zero_and_fetches_only_its_types(collection, site):
    before = site.hits("/terms"), site.hits("/privacy")
    result = CliRunner().invoke(validate_command, ["--declarations", str(collection), "--services", "Good",
                                                   "--types", "Privacy Policy"])
    assert result.exit_code == 0, result.output
    assert result.output.strip() == "1 service checked (all checks): no errors"
    assert (site.hits("/terms"), site.hits("/privacy")) == (before[0], before[1] + 2)


def test_bad_selectors_are_reported_where_they_are_and_not_fetched(site, tmp_path):
    directory = tmp_path / "declarations"
    directory.mkdir()
    bad_remove, both_bad, dead_range = (site.url("/terms") + query for query in ("?r", "?b", "?d"))
    write_service(directory, "Selectors", {
        "Terms of Service": {"fetch": bad_remove, "select": "main", "remove": "div[["},
        "Privacy Policy": {"fetch": both_bad, "select": "main[[", "remove": [".ad", "div[["]},
        "Imprint": {"fetch": dead_range, "select": "main",
                    "remove": [{"startAfter": "#nowhere", "endBefore": "p"}, ".ad"]},
    })
    result = CliRunner().invoke(validate_command, ["--declarations", str(directory)])
    assert result.exit_code == 1
    errors = errors_of(result.output, "Selectors")
    where = [error.split(": ")[1] for error in errors]
    assert where == ['$.terms["Terms of Service"].remove', '$.terms["Privacy Policy"].select',
                     '$.terms["Privacy Policy"].remove[1]', "$.terms.Imprint.remove[0].startAfter"], result.output
    assert "'div[[' is not a valid selector" in errors[0] and "'main[[' is not a valid selector" in errors[1]
    # Reported once, by the offline check: the pages with bad CSS are not even fetched.
    assert (site.hits("/terms?r"), site.hits("/terms?b")) == (0, 0)
    assert '[selectors-match]' in errors[3] and 'The "start" selector has no match' in errors[3]
    assert "hint: extraction stops when a bound of a remove range matches nothing" in errors[3]
    assert site.hits("/terms?d") == 1


# ------------------------------------------------------------------ pure parts


def test_analyse_selection_reports_dead_range_bounds_and_many_candidates():
    html = page("<main><h1>T</h1><p>a</p><p>b</p><section><p>c</p></section></main>")
    document = SourceDocument("https://example.com/t", ["p", {"startAfter": "h1", "endBefore": "#gone"}, "main"])
    findings = analyse_selection(html, document)
    assert [(f.check, f.where, f.warning) for f in findings] == [
        ("several-candidates", ("select", 0), True),
        ("select-items", ("select", 1, "endBefore"), False),
    ]
    assert findings[0].message == "'p' matches 3 separate elements"


def test_analyse_selection_sees_the_page_after_remove():
    html = page("<main><div class='ad'>ad</div><p>text</p></main>")
    document = SourceDocument("https://example.com/t", ["main", ".ad"], remove=".ad")
    assert [(f.check, f.where) for f in analyse_selection(html, document)] == [("select-items", ("select", 1))]


def test_differing_lines_are_limited():
    first = "\n".join(f"line {n}" for n in range(40))
    second = "\n".join(f"line {n}!" for n in range(40))
    lines = differing_lines(first, second, limit=5)
    assert lines[:2] == ["-line 0", "-line 1"] and lines[-1] == "… and 75 more"


# ------------------------------------------------------------------ --modified


def git(directory: Path, *arguments: str) -> str:
    environment = {"GIT_AUTHOR_NAME": "t", "GIT_AUTHOR_EMAIL": "t@t", "GIT_COMMITTER_NAME": "t",
                   "GIT_COMMITTER_EMAIL": "t@t", "PATH": "/usr/bin:/bin", "HOME": str(directory)}
    return subprocess.run(["git", *arguments], cwd=directory, env=environment, check=True,
                          capture_output=True, text=True).stdout


def terms(url: str, select: str = "main") -> dict:
    return {"fetch": url, "select": select}


@pytest.fixture
def repository(tmp_path):
    """A collection repository: `main` with six services, then a branch changing them."""
    root = tmp_path / "collection"
    declarations = root / "declarations"
    declarations.mkdir(parents=True)
    git(root, "init", "-q", "-b", "main")
    write_service(declarations, "Alpha", {"Terms of Service": terms("https://a.example/tos"),
                                          "Privacy Policy": terms("https://a.example/privacy")})
    write_service(declarations, "Beta", {"Terms of Service": terms("https://b.example/tos")})
    write_service(declarations, "Gamma", {"Terms of Service": terms("https://c.example/tos")})
    (declarations / "Gamma.history.json").write_text("{}\n")
    write_service(declarations, "Delta", {"Terms of Service": terms("https://d.example/tos"),
                                          "Imprint": terms("https://d.example/imprint")})
    (declarations / "Delta.filters.py").write_text("def clean(document, context):\n    pass\n")
    write_service(declarations, "Zeta", {"Terms of Service": terms("https://z.example/tos")})
    write_service(declarations, "Eta", {"Terms of Service": terms("https://h.example/tos")})
    (root / "README.md").write_text("collection\n")
    git(root, "add", "-A")
    git(root, "commit", "-q", "-m", "Initial collection")
    git(root, "checkout", "-q", "-b", "feature")
    # Alpha: one type changed. Beta: same content, other key order. Gamma: history only.
    write_service(declarations, "Alpha", {"Terms of Service": terms("https://a.example/tos", "#terms"),
                                          "Privacy Policy": terms("https://a.example/privacy")})
    (declarations / "Beta.json").write_text(json.dumps(
        {"terms": {"Terms of Service": {"select": "main", "fetch": "https://b.example/tos"}}, "name": "Beta"}))
    (declarations / "Gamma.history.json").write_text('{"Terms of Service": []}\n')
    (declarations / "Delta.filters.py").write_text("def clean(document, context):\n    return None\n")
    write_service(declarations, "Epsilon", {"Imprint": terms("https://e.example/imprint")})
    write_service(declarations, "Société Générale", {"Imprint": terms("https://sg.example/imprint")})
    (declarations / "Zeta.json").unlink()
    (root / "README.md").write_text("changed, but not a declaration\n")
    git(root, "add", "-A")
    git(root, "commit", "-q", "-m", "Change declarations")
    return root, declarations


def test_modified_follows_ota_rules(repository):
    _root, declarations = repository
    assert modified_selection(declarations) == {
        "Alpha": {"Terms of Service"},
        "Beta": set(),  # reformatted only: schema checks, nothing to fetch
        "Delta": None,  # filters changed: every type
        "Epsilon": None,  # new service
        "Société Générale": None,  # new, with a non-ASCII id
    }


def test_modified_includes_uncommitted_and_untracked_changes(repository):
    _root, declarations = repository
    write_service(declarations, "Eta", {"Terms of Service": terms("https://h.example/tos"),
                                        "Imprint": terms("https://h.example/imprint")})
    write_service(declarations, "Theta", {"Imprint": terms("https://t.example/imprint")})
    selection = modified_selection(declarations)
    assert selection["Eta"] == {"Imprint"} and selection["Theta"] is None


def test_modified_against_an_explicit_base(repository):
    root, declarations = repository
    git(root, "checkout", "-q", "-b", "second")
    write_service(declarations, "Beta", {"Terms of Service": terms("https://b.example/new-tos")})
    git(root, "commit", "-q", "-am", "Move Beta")
    assert modified_selection(declarations, "feature") == {"Beta": {"Terms of Service"}}
    # The merge base with main is the initial commit: the first branch's changes count too.
    assert set(modified_selection(declarations)) == {"Alpha", "Beta", "Delta", "Epsilon", "Société Générale"}


def test_modified_explains_what_it_cannot_do(tmp_path, repository):
    outside = tmp_path / "outside"
    outside.mkdir()
    with pytest.raises(ModifiedSelectionError, match="not inside a git repository"):
        modified_selection(outside)
    _root, declarations = repository
    with pytest.raises(ModifiedSelectionError, match="no branch or commit 'nope' to compare with: pass --base"):
        modified_selection(declarations, "nope")


def test_validate_modified_fetches_only_changed_types(tmp_path, site):
    root = tmp_path / "repo"
    root.mkdir()
    git(root, "init", "-q", "-b", "main")
    write_service(root, "Site", {"Terms of Service": terms(site.url("/terms")),
                                 "Imprint": terms(site.url("/tiny"))})
    git(root, "add", "-A")
    git(root, "commit", "-q", "-m", "Site")
    git(root, "checkout", "-q", "-b", "change")
    write_service(root, "Site", {"Terms of Service": terms(site.url("/privacy")),
                                 "Imprint": terms(site.url("/tiny"))})
    before = site.hits("/tiny"), site.hits("/privacy")
    report = validate_modified(root)
    assert report.services == ["Site"] and report.errors == {}
    assert site.hits("/tiny") == before[0]  # Imprint did not change: not fetched (it would fail)
    assert site.hits("/privacy") == before[1] + 2


def test_validate_command_modified_option_when_wired(repository):
    """Runs once the --modified option is wired into termshift.validate (see validate_network)."""
    if "modified" not in {parameter.name for parameter in validate_command.params}:
        pytest.skip("validate --modified is not wired into termshift.validate yet")
    _root, declarations = repository
    result = CliRunner().invoke(validate_command, ["--declarations", str(declarations), "--modified",
                                                   "--schema-only"])
    assert "Changed since main: Alpha (Terms of Service); Beta (no terms type)" in result.output
    assert "5 services checked (schema only)" in result.output
