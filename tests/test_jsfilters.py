"""OTA's JavaScript filters run unchanged (termshift.jsfilters): shapes, history, errors and the sandbox.

Every test runs the real runner: Node.js with jsdom, installed by scripts/test.sh.
"""

from __future__ import annotations

import contextlib
import json
import socket
import threading
from datetime import UTC, datetime
from pathlib import Path

import pytest

from termshift import jsfilters
from termshift.declarations import load_collection, load_service
from termshift.errors import ExtractError
from termshift.jsfilters import filters_at
from termshift.trackers.extract import extract

PAGE = """<!DOCTYPE html><html><head><title>T</title><script>var x = 1;</script></head><body>
<main>
  <h1>Terms</h1>
  <p class="intro">Updated <span class="date">3 minutes ago</span>.</p>
  <p><a id="rel" href="/legal/privacy?session=abc&amp;lang=en">Privacy</a></p>
  <ul><li>one</li><li>two</li></ul>
  <div class="ad">Buy now</div>
</main>
<footer>footer</footer>
</body></html>"""

LOCATION = "https://shop.example/legal/terms"


def write(directory: Path, service_id: str, filters_js: str | None, terms: dict, *,
          history_js: str | None = None, history: dict | None = None) -> Path:
    (directory / f"{service_id}.json").write_text(json.dumps({"name": service_id, "terms": terms}), encoding="utf-8")
    if filters_js is not None:
        (directory / f"{service_id}.filters.js").write_text(filters_js, encoding="utf-8")
    if history_js is not None:
        (directory / f"{service_id}.filters.history.js").write_text(history_js, encoding="utf-8")
    if history is not None:
        (directory / f"{service_id}.history.json").write_text(json.dumps(history), encoding="utf-8")
    return directory


def run(tmp_path: Path, filters_js: str, filters: list, *, select="main", remove=None, page: str = PAGE,
        date: datetime | None = None, history_js: str | None = None) -> str:
    terms = {"fetch": LOCATION, "select": select, "filter": filters}
    if remove is not None:
        terms["remove"] = remove
    write(tmp_path, "Shop", filters_js, {"Terms of Service": terms}, history_js=history_js)
    service = load_service(tmp_path, "Shop")
    document = service.terms["Terms of Service"].documents[0]
    return extract(page, "text/html", document, filters_at(service.filters, date))


# ------------------------------------------------------------------ shapes


def test_a_function_declaration_filter(tmp_path):
    js = "export function removeAds(document) { document.querySelectorAll('.ad').forEach(e => e.remove()); }\n"
    assert "Buy now" not in run(tmp_path, js, ["removeAds"])
    assert "Buy now" in run(tmp_path, js, [])


def test_an_arrow_function_with_a_helper_that_is_not_exported(tmp_path):
    js = """
const TEXT = 'stable date';
function replaceText(element, text) { element.textContent = text; }
export const stabiliseDates = document => {
  document.querySelectorAll('.date').forEach(element => replaceText(element, TEXT));
};
"""
    assert "Updated stable date." in run(tmp_path, js, ["stabiliseDates"])


def test_an_async_filter_is_awaited_before_the_next_one(tmp_path):
    js = """
export async function later(document) {
  await new Promise(resolve => setTimeout(resolve, 200));
  document.querySelector('h1').textContent = 'Awaited';
}
export function after(document) {
  document.querySelector('h1').textContent += ' then after';
}
"""
    assert run(tmp_path, js, ["later", "after"]).startswith("Awaited then after\n")


def test_parameters_and_context_are_passed_as_ota_passes_them(tmp_path):
    js = """
export function removeBySelector(document, selector, context) {
  document.querySelectorAll(selector).forEach(e => e.remove());
  const p = document.createElement('p');
  p.textContent = `context ${JSON.stringify(context)}`;
  document.querySelector('main').append(p);
}
export function withoutParams(document, context) {
  const p = document.createElement('p');
  p.textContent = `second argument ${JSON.stringify(context)}`;
  document.querySelector('main').append(p);
}
"""
    markdown = run(tmp_path, js, [{"removeBySelector": ".ad"}, {"withoutParams": ""}], remove="footer")
    assert "Buy now" not in markdown
    context = ('{"fetch":"https://shop.example/legal/terms","select":"main","remove":"footer",'
               '"filter":\\["removeBySelector","withoutParams"\\]}')
    assert f"context {context}" in markdown
    # Falsy parameters: OTA calls the function without them (document, context).
    assert f"second argument {context}" in markdown


def test_the_dom_offers_what_jsdom_offers(tmp_path):
    js = """
export function useTheDom(document) {
  const link = document.querySelector('#rel');
  const url = new URL(link.href);                    // href resolved against the document location
  url.searchParams.delete('session');
  link.href = url.href;
  const walker = document.createTreeWalker(document.querySelector('ul'), NodeFilter.SHOW_TEXT);
  const texts = [];
  while (walker.nextNode()) texts.push(walker.currentNode.nodeValue.toUpperCase());
  document.querySelector('ul').innerHTML = texts.map(t => `<li>${t}</li>`).join('');
  const intro = document.querySelector('.intro');
  intro.outerHTML = `<p class="intro">${document.location.hostname} ${document.title} ${btoa('ok')}</p>`;
}
"""
    markdown = run(tmp_path, js, ["useTheDom"])
    assert "[Privacy](https://shop.example/legal/privacy?lang=en)" in markdown
    assert "*   ONE\n*   TWO" in markdown
    assert "shop.example T b2s=" in markdown


def test_filters_see_the_page_before_scripts_and_relative_links_are_cleaned(tmp_path):
    js = """
export function report(document) {
  const p = document.createElement('p');
  p.textContent = `${document.querySelectorAll('script').length} script, raw ${document.querySelector('#rel').getAttribute('href')}`;
  document.querySelector('main').append(p);
}
"""
    assert "1 script, raw /legal/privacy?session=abc&lang=en" in run(tmp_path, js, ["report"])


def test_javascript_and_python_filters_in_one_list_run_in_order(tmp_path):
    js = "export function shout(document) { document.querySelector('h1').textContent += '!'; }\n"
    markdown = run(tmp_path, js, [{"removeQueryParams": ["session"]}, "shout",
                                  {"replaceText": {"pattern": "Terms!", "replacement": "Conditions!"}}, "shout"])
    assert markdown.startswith("Conditions!!\n")
    assert "[Privacy](https://shop.example/legal/privacy?lang=en)" in markdown


def test_a_filter_may_reexport_one_from_another_filters_file(tmp_path):
    (tmp_path / "Common.filters.js").write_text(
        "export function removeAds(document) { document.querySelectorAll('.ad').forEach(e => e.remove()); }\n")
    js = "export { removeAds } from './Common.filters.js';\n"
    assert "Buy now" not in run(tmp_path, js, ["removeAds"])


# ----------------------------------------------------------------- history


HISTORY_JS = """export const label = [
  { validUntil: '2022-03-15T10:17:27Z', filter(document) { document.querySelector('h1').textContent = 'first'; } },
  { validUntil: '2021-01-01T00:00:00Z', filter: document => { document.querySelector('h1').textContent = 'zeroth'; } },
];
"""
CURRENT_JS = "export function label(document) { document.querySelector('h1').textContent = 'current'; }\n"


@pytest.mark.parametrize(("date", "expected"), [
    (datetime(2020, 6, 1, tzinfo=UTC), "zeroth"),
    (datetime(2021, 1, 1, tzinfo=UTC), "zeroth"),  # validUntil is inclusive
    (datetime(2021, 1, 1, 0, 0, 1, tzinfo=UTC), "first"),
    (datetime(2022, 3, 15, 10, 17, 27, tzinfo=UTC), "first"),
    (datetime(2022, 3, 15, 10, 17, 28, tzinfo=UTC), "current"),
    (None, "current"),
])
def test_the_filter_in_force_at_the_snapshot_date_runs(tmp_path, date, expected):
    assert run(tmp_path, CURRENT_JS, ["label"], date=date, history_js=HISTORY_JS).startswith(f"{expected}\n")


def test_rebuild_picks_filter_versions_by_snapshot_date(tmp_path):
    from termshift.archive_repo import RecordRepository, Snapshot
    from termshift.trackers.replay import rebuild

    declarations = tmp_path / "declarations"
    declarations.mkdir()
    write(declarations, "Shop", CURRENT_JS, {"Terms of Service": {
        "fetch": LOCATION, "select": "h1", "filter": ["label"]}}, history_js=HISTORY_JS)
    snapshots = RecordRepository(tmp_path / "snapshots", "snapshots")
    for day in ("2020-06-01", "2021-06-01", "2023-06-01"):
        snapshots.record(Snapshot(service_id="Shop", terms_type="Terms of Service", document_id=None,
                                  fetch_date=datetime.fromisoformat(f"{day}T00:00:00+00:00"),
                                  content=PAGE.replace("Terms", f"Terms {day}"), mime_type="text/html"))
    snapshots.close()
    seen = []
    rebuild(declarations, tmp_path / "snapshots", tmp_path / "versions",
            on_snapshot=lambda snapshot, markdown, error, version: seen.append(markdown or str(error)))
    assert [markdown.split("\n")[0] for markdown in seen] == ["zeroth", "first", "current"]


# ------------------------------------------------------------------ errors


def test_a_filter_that_throws_gives_otas_message(tmp_path):
    js = "export function failingFilter() { throw new Error('Filter failed'); }\n"
    with pytest.raises(ExtractError) as raised:
        run(tmp_path, js, ["failingFilter"])
    assert str(raised.value) == 'The filter function "failingFilter" failed: Error: Filter failed'


def test_a_type_error_is_shown_as_javascript_shows_it(tmp_path):
    js = "export function broken(document) { document.querySelector('#nothing').remove(); }\n"
    with pytest.raises(ExtractError, match=r'^The filter function "broken" failed: TypeError: Cannot read '
                                           r"properties of null \(reading 'remove'\)$"):
        run(tmp_path, js, ["broken"])


@pytest.fixture
def short_time_limit(monkeypatch):
    monkeypatch.setattr(jsfilters, "TIME_LIMIT", 1.0)
    monkeypatch.setattr(jsfilters, "PARSE_ALLOWANCE", 4.0)


def test_a_filter_that_loops_forever_is_stopped_and_the_next_document_works(tmp_path, short_time_limit):
    js = ("export function forever(document) { while (true) {} }\n"
          "export function fine(document) { document.querySelector('h1').textContent = 'fine'; }\n")
    with pytest.raises(ExtractError, match=r'^The filter function "forever" failed: Error: it ran for more '
                                           r"than 1 s, the time limit of a filter, and was stopped$"):
        run(tmp_path, js, ["forever"])
    assert run(tmp_path, js, ["fine"]).startswith("fine\n")


def test_an_async_filter_that_never_returns_control_is_killed_and_the_runner_restarts(tmp_path, short_time_limit):
    js = ("export async function hang(document) { await null; while (true) {} }\n"
          "export function fine(document) { document.querySelector('h1').textContent = 'fine'; }\n")
    engine = jsfilters.engine()
    with pytest.raises(ExtractError, match=r'^The filter function "hang" failed: Error: no answer after \d+ s '
                                           r"\(the time limit of a filter is 1 s\): the filter was stopped$"):
        run(tmp_path, js, ["hang"])
    starts = engine.starts
    assert run(tmp_path, js, ["fine"]).startswith("fine\n")
    assert engine.starts == starts + 1


def test_a_filter_that_never_settles_fails_after_the_time_limit(tmp_path, short_time_limit):
    js = "export async function pending(document) { await new Promise(() => {}); }\n"
    with pytest.raises(ExtractError, match="time limit of a filter, and was stopped"):
        run(tmp_path, js, ["pending"])


# ----------------------------------------------------------------- sandbox


def _report_js(body: str) -> str:
    """A filter that writes what `body` (which may throw) gave into the h1."""
    return ("export async function probe(document) {\n  let result;\n"
            f"  try {{ result = 'DONE ' + (await (async () => {{ {body} }})()); }}\n"
            "  catch (error) { result = 'REFUSED ' + (error.code || error.message); }\n"
            "  document.querySelector('h1').textContent = result;\n}\n")


def probe(tmp_path: Path, js: str) -> str:
    """The first line the probe filter wrote, Markdown escapes undone."""
    return run(tmp_path, js, ["probe"]).split("\n")[0].replace("\\", "")


def _escape(expression: str) -> str:
    """Reach Node's own globals from the filter's realm through a jsdom object (a vm is no sandbox)."""
    return f"const process = document.constructor.constructor('return process')(); return {expression};"


def test_a_filter_cannot_import_node_modules(tmp_path):
    js = "import { readFileSync } from 'node:fs';\n" + _report_js("return readFileSync('/etc/passwd', 'utf8');")
    heading = probe(tmp_path, js)
    assert heading.startswith('REFUSED "node:fs" is not available: filters cannot import modules')


def test_a_filter_has_no_process_require_or_fetch(tmp_path):
    """OTA's filters run in Node, where fetch is global: here it refuses with a clear message."""
    for expression in ("process.pid", "require('fs')"):
        js = _report_js(f"return {expression};")
        heading = probe(tmp_path, js)
        assert heading.startswith("REFUSED") and "is not defined" in heading, heading
    heading = probe(tmp_path, _report_js("return await fetch('http://127.0.0.1/');"))
    assert heading == "REFUSED fetch is not available: filters run without network access (see docs/filters.md)"


def test_a_filter_that_escapes_the_vm_still_cannot_read_files(tmp_path):
    secret = tmp_path / "secret.txt"
    secret.write_text("top secret")
    js = _report_js(_escape(f"process.getBuiltinModule('node:fs').readFileSync({json.dumps(str(secret))}, 'utf8')"))
    heading = probe(tmp_path, js)
    assert heading == "REFUSED ERR_ACCESS_DENIED"


def test_a_filter_that_escapes_the_vm_cannot_start_a_process(tmp_path):
    js = _report_js(_escape("process.getBuiltinModule('node:child_process').execSync('id').toString()"))
    assert probe(tmp_path, js) == "REFUSED ERR_ACCESS_DENIED"


@pytest.mark.skipif(not jsfilters._network_isolation(), reason="no network namespace on this system (unshare -rn)")
def test_a_filter_that_escapes_the_vm_cannot_open_a_socket(tmp_path):
    server = socket.create_server(("127.0.0.1", 0))
    server.settimeout(5)
    port = server.getsockname()[1]
    connections = []

    def accept():
        with contextlib.suppress(OSError):  # the timeout: nobody connected
            connections.append(server.accept())

    thread = threading.Thread(target=accept)
    thread.start()
    connect = (f"new Promise((resolve, reject) => {{ const socket = process.getBuiltinModule('node:net')"
               f".connect({port}, '127.0.0.1', () => resolve('connected')); socket.on('error', reject); }})")
    fetched = f"process.getBuiltinModule('node:http') && globalThis.fetch('http://127.0.0.1:{port}/')"
    try:
        assert probe(tmp_path, _report_js(_escape(connect))) == "REFUSED ENETUNREACH"
        heading = probe(tmp_path, _report_js(_escape(fetched)))
        assert heading.startswith("REFUSED"), heading
    finally:
        thread.join()
        server.close()
    assert connections == []


def test_isomorphic_fetch_is_refused_with_a_clear_message(tmp_path):
    js = """import fetch from 'isomorphic-fetch';
export async function downloadImages(document, { fetch: baseUrl }) {
  await fetch(new URL('/logo.png', baseUrl).href);
}
"""
    with pytest.raises(ExtractError) as raised:
        run(tmp_path, js, ["downloadImages"])
    assert str(raised.value) == (
        'The filter function "downloadImages" failed: Error: "isomorphic-fetch" is not available: filters '
        "cannot import modules other than the filters files of their collection (they run without network "
        "and file access; see docs/filters.md)")


# --------------------------------------------------------------- loading


def test_loading_parses_without_running_the_code(tmp_path):
    marker = tmp_path / "ran"
    js = (f"import {{ writeFileSync }} from 'node:fs';\nwriteFileSync({json.dumps(str(marker))}, 'x');\n"
          "while (true) {}\nexport function clean(document, params, context) {}\n")
    write(tmp_path, "Shop", js, {"Terms of Service": {"fetch": LOCATION, "select": "main", "filter": ["clean"]}})
    service = load_service(tmp_path, "Shop")
    assert service.filters["clean"].info["params"] == 3
    assert not marker.exists()


def test_a_filters_file_with_a_syntax_error_is_one_services_error(tmp_path):
    write(tmp_path, "Shop", "export function clean(document) {\n  document.querySelector('a'.remove();\n}\n",
          {"Terms of Service": {"fetch": LOCATION, "select": "main", "filter": ["clean"]}})
    write(tmp_path, "Other", None, {"Terms of Service": {"fetch": LOCATION, "select": "main"}})
    collection = load_collection(tmp_path)
    assert list(collection.services) == ["Other"]
    [error] = collection.errors
    assert (error.file.name, error.json_path) == ("Shop.filters.js", "line 2")
    assert error.reason.startswith("cannot be parsed: SyntaxError: Unexpected token (2:")


def test_a_name_the_declaration_calls_must_be_exported(tmp_path):
    write(tmp_path, "Shop", "function clean(document) {}\nexport function other(document) {}\n",
          {"Terms of Service": {"fetch": LOCATION, "select": "main", "filter": ["clean"]}})
    [error] = load_collection(tmp_path).errors
    assert error.json_path == '$.terms["Terms of Service"].filter[0]'
    assert error.reason.startswith("unknown filter 'clean'")


def test_a_malformed_history_entry_is_reported_with_its_line(tmp_path):
    history = "export const clean = [\n  { validUntil: new Date(), filter(document) {} },\n];\n"
    write(tmp_path, "Shop", "export function clean(document) {}\n",
          {"Terms of Service": {"fetch": LOCATION, "select": "main", "filter": ["clean"]}}, history_js=history)
    [error] = load_collection(tmp_path).errors
    assert (error.file.name, error.json_path) == ("Shop.filters.history.js", "line 2")
    assert "validUntil must be a date written as a string" in error.reason


def test_an_import_outside_the_collection_folder_is_refused(tmp_path):
    write(tmp_path, "Shop", "export { clean } from '../elsewhere/Other.filters.js';\n",
          {"Terms of Service": {"fetch": LOCATION, "select": "main", "filter": ["clean"]}})
    [error] = load_collection(tmp_path).errors
    assert error.reason == ("imports '../elsewhere/Other.filters.js', which is not a filters file of this "
                            "collection folder")


def test_services_without_javascript_filters_never_start_node(tmp_path, monkeypatch):
    fresh = jsfilters.Engine()
    monkeypatch.setattr(jsfilters, "_ENGINE", fresh)
    (tmp_path / "Plain.filters.py").write_text("def mark(document, context):\n    document.set('class', 'x')\n")
    write(tmp_path, "Plain", None, {"Terms of Service": {"fetch": LOCATION, "select": "main",
                                                          "filter": ["mark", {"removeQueryParams": "a"}]}})
    service = load_collection(tmp_path).services["Plain"]
    assert extract(PAGE, "text/html", service.terms["Terms of Service"].documents[0], service.filters)
    assert fresh.starts == 0


# ---------------------------------------------------------------- validate


def test_validate_reports_both_kinds_of_filters_file_and_parameters_never_read(tmp_path):
    from termshift.validate import validate_collection

    js = "export function clean(document) {}\nexport function withParams(document, params) {}\n"
    write(tmp_path, "Shop", js, {"Terms of Service": {
        "fetch": LOCATION, "select": "main", "filter": [{"clean": ["a"]}, {"withParams": ["b"]}, "clean"]}})
    write(tmp_path, "Both", js, {"Terms of Service": {"fetch": LOCATION, "select": "main", "filter": ["clean"]}})
    (tmp_path / "Both.filters.py").write_text("def clean(document, context):\n    pass\n")
    report = validate_collection(tmp_path, schema_only=True)
    assert [(error.file.name, error.json_path, error.reason) for error in report.errors["Shop"]] == [
        ("Shop.json", '$.terms["Terms of Service"].filter[0]',
         "filter 'clean' is declared with parameters [\"a\"], but the function takes only 1 argument, so it "
         "never reads them: it is called as clean(document, params, context)")]
    assert [error.reason for error in report.errors["Both"]] == [
        "a service has one filters file, found 'Both.filters.py' and 'Both.filters.js'"]
    # A service uses one kind: with both, it is skipped (and reported) rather than guessed.
    assert "Both" not in load_collection(tmp_path).services


def test_timers_a_filter_leaves_behind_are_cleared(tmp_path):
    js = """
export function leaveAnInterval(document) {
  globalThis.ticks = 0;
  setInterval(() => { globalThis.ticks += 1; }, 1);
  setTimeout(() => { globalThis.late = true; }, 50);
}
export async function count(document) {
  const before = globalThis.ticks;
  await new Promise(resolve => setTimeout(resolve, 100));
  document.querySelector('h1').textContent = `ticks ${globalThis.ticks - before} late ${globalThis.late}`;
}
"""
    run(tmp_path, js, ["leaveAnInterval"])
    assert run(tmp_path, js, ["count"]).startswith("ticks 0 late undefined\n")


def test_without_node_a_javascript_filter_fails_its_document_with_what_to_install(tmp_path, monkeypatch):
    js = "export function clean(document) {}\n"
    write(tmp_path, "Shop", js, {"Terms of Service": {"fetch": LOCATION, "select": "main", "filter": ["clean"]}})
    service = load_service(tmp_path, "Shop")  # analysed while Node is there
    monkeypatch.setattr(jsfilters, "_ENGINE", jsfilters.Engine())
    monkeypatch.setattr(jsfilters.shutil, "which", lambda name: None)
    with pytest.raises(ExtractError) as raised:
        extract(PAGE, "text/html", service.terms["Terms of Service"].documents[0], service.filters)
    assert str(raised.value) == ('The filter function "clean" failed: JavaScript filters need Node.js 20 or '
                                 "later (no 'node' on the PATH)")
    # Loading another service then reports its filters file as one service's error.
    (tmp_path / "Shop.filters.js").write_text(js + "export function other(document) {}\n")
    [error] = load_collection(tmp_path).errors
    assert error.reason == "cannot be checked: JavaScript filters need Node.js 20 or later (no 'node' on the PATH)"
