"""`termshift try URL` and `termshift preview SERVICE [TYPE]` against real local pages."""

from __future__ import annotations

import itertools
import json
import shutil
from pathlib import Path

import pytest
from click.testing import CliRunner

from termshift.commands.try_page import preview_command, try_command
from termshift.schema import service_problems
from tests.support.servers import JsPageServer, LocalServer

TERMS_TEXT = "You agree to these terms by using the service, which are long enough to matter. " * 3


def page(body: str) -> str:
    return f"<!DOCTYPE html><html><head><title>T</title></head><body>{body}</body></html>"


@pytest.fixture(autouse=True)
def environment(monkeypatch, tmp_path):
    monkeypatch.chdir(tmp_path)  # no termshift.toml
    monkeypatch.delenv("TERMSHIFT_CONFIG", raising=False)
    monkeypatch.setenv("TERMSHIFT_FETCHER_HOST_DELAY", "0")
    monkeypatch.setenv("TERMSHIFT_FETCHER_RETRIES", "0")


@pytest.fixture(scope="module")
def site():
    counter = itertools.count()
    with LocalServer() as server:
        server.add_page("/terms", page(f"<main><h1>Terms</h1><div class='ad'>BUY NOW</div><p>{TERMS_TEXT}</p>"
                                       "<p>Second paragraph.</p></main>"))
        server.add_page("/tiny", page("<main><p>Tiny</p></main>"))
        server.route("/noisy", lambda exchange: exchange.send(200, page(
            f"<main><p>{TERMS_TEXT}</p><p class='stamp'>Generated at {next(counter)}</p></main>")))
        yield server


def run(command, *arguments: str):
    return CliRunner().invoke(command, list(arguments))


def section(output: str, title: str) -> str:
    """The text of one `── title ──` section of the output."""
    start = output.index(f"── {title}")
    body = output[output.index("\n", start) + 1:]
    return body.split("\n── ", 1)[0]


def test_try_prints_markdown_checks_and_a_valid_declaration(site):
    result = run(try_command, site.url("/terms"), "--select", "main", "--remove", ".ad",
                 "--type", "Terms of Service", "--name", "ACME", "--delay", "0.2")
    assert result.exit_code == 0, result.output
    markdown = section(result.output, "Markdown of")
    assert markdown.startswith("Terms\n=====\n\nYou agree to these terms")
    assert "BUY NOW" not in markdown
    checks = section(result.output, "Checks")
    for check in ("fetchable", "selectors-match", "select-items", "long-enough", "stable"):
        assert f"  ok   {check}:" in checks
    declaration = json.loads(section(result.output, "Declaration: save as declarations/ACME.json"))
    assert declaration == {"name": "ACME", "terms": {"Terms of Service": {
        "fetch": site.url("/terms"), "select": "main", "remove": ".ad"}}}
    assert service_problems(declaration) == []


def test_try_shows_noise_and_several_candidates(site):
    result = run(try_command, site.url("/noisy"), "--select", "p", "--delay", "0.2")
    assert result.exit_code == 1
    checks = section(result.output, "Checks")
    assert " FAIL  stable: two fetches a few seconds apart give different text:" in checks
    assert "-Generated at" in checks and "+Generated at" in checks
    assert " warn  several-candidates [select]: 'p' matches 2 separate elements" in checks
    assert json.loads(section(result.output, "Terms declaration")) == {"fetch": site.url("/noisy"), "select": "p"}


def test_try_without_select_takes_the_body_and_flags_tiny_content(site):
    result = run(try_command, site.url("/tiny"), "--once")
    assert result.exit_code == 1
    # First, before the Markdown it explains, as docs/adding-a-service.md shows it.
    lines = result.stdout.splitlines()
    assert lines[0].startswith("No --select given: extracting the whole <body>. Find the element")
    assert lines[1:3] == ["", f"── Markdown of {site.url('/tiny')} (4 characters, fetched with htmlOnly) " + "─" * 3]
    checks = section(result.output, "Checks")
    assert " FAIL  long-enough [select]: the extracted text has only 4 characters" in checks
    assert "hint: that is too short for terms" in checks
    assert " skip  stable:" in checks  # --once
    assert site.hits("/tiny") == 1


def test_try_with_a_selector_that_matches_nothing(site):
    result = run(try_command, site.url("/terms"), "--select", "article", "--select",
                 '{"startAfter": "h1", "endBefore": "p"}', "--once")
    assert result.exit_code == 1
    assert "── No Markdown from" not in result.output  # the range alone still extracts something
    result = run(try_command, site.url("/terms"), "--select", "#nothing", "--once")
    assert result.exit_code == 1
    assert "── No Markdown from" in result.output
    checks = section(result.output, "Checks")
    assert ' FAIL  selectors-match [select]: The provided selector "#nothing" has no match' in checks
    assert " skip  long-enough:" in checks


@pytest.mark.parametrize(("arguments", "message"), [
    (["--select", "{not json"], "starts with '{' but is not valid JSON"),
    (["--select", '{"startAfter": "h1"}'], "$.select: a range selector needs exactly one start"),
    (["--select", "main", "--type", "Terms of Servce"], "did you mean 'Terms of Service'?"),
])
def test_try_rejects_bad_input_before_fetching(site, arguments, message):
    before = site.hits("/terms")
    result = run(try_command, site.url("/terms"), *arguments)
    assert result.exit_code == 2 and message in result.output
    assert site.hits("/terms") == before


def test_try_reports_every_selector_that_is_not_css_before_fetching(site):
    before = site.hits("/terms")
    result = run(try_command, site.url("/terms"), "--select", "main", "--select", '{"startAfter": "h1[", '
                 '"endBefore": "p"}', "--remove", ".ad", "--remove", "div[[")
    assert result.exit_code == 2
    assert "$.select[1].startAfter: 'h1[' is not a valid selector" in result.output
    assert "$.remove[1]: 'div[[' is not a valid selector" in result.output
    assert "$.select:" not in result.output and "$.remove:" not in result.output
    assert site.hits("/terms") == before


@pytest.fixture
def collection(tmp_path: Path, site) -> Path:
    directory = tmp_path / "declarations"
    directory.mkdir()
    declaration = {"name": "Noisy Inc.", "terms": {
        "Privacy Policy": {"fetch": site.url("/noisy"), "select": "main", "filter": ["dropStamp"]},
        "Imprint": {"fetch": site.url("/tiny"), "select": "main"},
    }}
    (directory / "Noisy.json").write_text(json.dumps(declaration, indent=2) + "\n")
    (directory / "Noisy.filters.py").write_text(
        "def dropStamp(document, context):\n"
        "    for element in document.cssselect('.stamp'):\n"
        "        element.drop_tree()\n")
    return directory


def test_preview_runs_the_declared_filters(collection: Path):
    result = run(preview_command, "Noisy", "Privacy Policy", "--declarations", str(collection), "--delay", "0.2")
    assert result.exit_code == 0, result.output
    assert result.output.startswith("\nNoisy — Privacy Policy\n")
    assert "Generated at" not in section(result.output, "Markdown of")  # the filter removed it
    assert "  ok   stable:" in section(result.output, "Checks")
    declared = json.loads(section(result.output, 'Declaration of "Privacy Policy"'))
    assert declared["filter"] == ["dropStamp"]


def test_preview_explains_unknown_names(collection: Path):
    result = run(preview_command, "Noisi", "--declarations", str(collection))
    assert result.exit_code == 1 and "no declaration of service 'Noisi'" in result.output
    assert "did you mean 'Noisy'?" in result.output
    result = run(preview_command, "Noisy", "Imprnt", "--declarations", str(collection))
    assert result.exit_code == 1 and "Noisy declares no 'Imprnt' (did you mean 'Imprint'?)" in result.output


@pytest.mark.browser
@pytest.mark.skipif(shutil.which("chromium") is None and not Path("/usr/bin/chromium").exists(),
                    reason="Chromium is not installed")
def test_try_with_the_browser_runs_the_page_scripts():
    with JsPageServer() as server:
        result = run(try_command, server.url("/js/delayed?ms=200"), "--select", "#terms", "--browser", "--once")
    assert result.exit_code == 0, result.output
    assert "fetched with fullDom" in result.output
    assert section(result.output, "Markdown of").startswith("These terms were written by JavaScript.")
    assert json.loads(section(result.output, "Terms declaration"))["executeClientScripts"] is True


def test_preview_points_at_each_bad_selector_and_does_not_fetch(tmp_path: Path, site):
    directory = tmp_path / "declarations"
    directory.mkdir()
    url = site.url("/terms") + "?bad-selectors"
    (directory / "Bad.json").write_text(json.dumps({"name": "Bad", "terms": {"Imprint": {
        "fetch": url, "select": "main[[", "remove": [".ad", "div[["]}}}))
    result = run(preview_command, "Bad", "--declarations", str(directory), "--once")
    assert result.exit_code == 1
    checks = section(result.output, "Checks").splitlines()
    assert checks[0] == " skip  fetchable: the page can be fetched (not fetched: fix the selectors first)"
    failures = [line for line in checks if line.startswith(" FAIL ")]
    assert [line.split(":")[0] for line in failures] == [" FAIL  selectors-match [select]",
                                                         " FAIL  selectors-match [remove.1]"]
    assert "'main[[' is not a valid selector" in failures[0] and "'div[[' is not a valid selector" in failures[1]
    assert site.hits("/terms?bad-selectors") == 0


def test_preview_of_a_service_whose_filters_exit_at_import_reports_it(tmp_path: Path, site):
    directory = tmp_path / "declarations"
    directory.mkdir()
    (directory / "Exiting.json").write_text(json.dumps({"name": "Exiting", "terms": {"Imprint": {
        "fetch": site.url("/terms"), "select": "main", "filter": ["clean"]}}}))
    (directory / "Exiting.filters.py").write_text("import sys\n\ndef clean(document, context):\n    pass\n\n"
                                                  "sys.exit(5)\n")
    result = run(preview_command, "Exiting", "--declarations", str(directory), "--once")
    assert result.exit_code == 1, result.output  # not 5: the filters file did not end the command
    assert 'the filters file "Exiting.filters.py" cannot be loaded (line 6): cannot load the filters: ' \
           "SystemExit: 5" in result.output
    (directory / "Deep.json").write_text("[" * 200_000 + "]" * 200_000)
    result = run(preview_command, "Deep", "--declarations", str(directory), "--once")
    assert result.exit_code == 1 and result.exception is None or isinstance(result.exception, SystemExit)
    assert "Deep does not load:" in result.output and "nested too deeply" in result.output


def test_preview_of_a_pdf_whose_select_is_prose_fetches_it_and_only_warns(tmp_path: Path):
    from tests.support.servers import minimal_pdf

    directory = tmp_path / "declarations"
    directory.mkdir()
    with LocalServer() as server:
        text = "These terms are long enough to be a real document of terms and conditions, as any reader of " \
               "such documents would expect them to be"
        server.add_page("/legal/terms.pdf", minimal_pdf(text), content_type="application/pdf")
        server.add_page("/legal/fake.pdf", page(f"<main><p>{TERMS_TEXT}</p></main>"))
        (directory / "Papers.json").write_text(json.dumps({"name": "Papers", "terms": {
            "Terms of Service": {"fetch": server.url("/legal/terms.pdf"), "select": "Whole PDF (all pages)."},
            "Privacy Policy": {"fetch": server.url("/legal/fake.pdf"), "select": "Whole PDF (all pages)."}}}))
        result = run(preview_command, "Papers", "Terms of Service", "--declarations", str(directory), "--once")
        assert result.exit_code == 0, result.output
        assert text in section(result.output, "Markdown of")
        assert " warn  selectors-match [select]:" in result.output and "(ignored on a PDF)" in result.output
        # Served as HTML after all: the selector matters, and it is not CSS.
        result = run(preview_command, "Papers", "Privacy Policy", "--declarations", str(directory), "--once")
        assert result.exit_code == 1, result.output
        assert " FAIL  selectors-match" in result.output
