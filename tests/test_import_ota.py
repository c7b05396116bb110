"""`termshift import-ota`: copying an OTA collection, and the JavaScript filters to port."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner

from termshift.contrib.import_ota import import_ota_command, javascript_exports, strip_js_comments
from termshift.declarations import load_collection

FILTERS_JS = """\
import fetch from 'node-fetch';
// export function commentedOut() {}
/* export const alsoCommentedOut = 1; */

export function removeSessionIds(document) {
  const marker = "https://example.com//not-a-comment";
  document.querySelectorAll('a').forEach(a => a.href = a.href.split('?')[0]);
}

export async function inlineImages(document, { fetch: location }) {}

export const removeDates = (document, selector) => {
  document.querySelectorAll(selector).forEach(element => element.remove());
};

function helper() {}
function cleanTables() {}
export { helper as unusedHelper, cleanTables };
export { sharedCleanup } from './Other Service.filters.js';
export * from './Common.filters.js';
export default function () {}
"""


def test_javascript_exports_reads_every_form_of_export():
    module = javascript_exports(FILTERS_JS)
    assert module.names == ["removeSessionIds", "inlineImages", "removeDates", "unusedHelper", "cleanTables",
                            "sharedCleanup"]
    assert [export.source for export in module.exports if export.source] == ["./Other Service.filters.js"]
    assert module.star_sources == ["./Common.filters.js"]


def test_comment_stripping_leaves_strings_alone():
    code = strip_js_comments('const a = "x // y"; // gone\nconst b = \'/* z */\'; /* gone */ const c = `//`;')
    assert code == 'const a = "x // y"; \nconst b = \'/* z */\';   const c = `//`;'


@pytest.fixture
def ota_collection(tmp_path: Path) -> Path:
    """An OTA collection root: a service with JavaScript filters, and one with a history file."""
    root = tmp_path / "ota-collection"
    declarations = root / "declarations"
    declarations.mkdir(parents=True)
    (root / "metadata.yml").write_text("id: tiny\nname: Tiny\ntagline: A tiny collection\nlanguages: [en]\n"
                                       "jurisdictions: [EU]\n")
    (declarations / "Shop.json").write_text(json.dumps({"name": "Shop", "terms": {
        "Terms of Service": {"fetch": "https://shop.example/tos", "select": "main",
                             "filter": ["removeSessionIds", {"removeDates": ".date"},
                                        {"removeQueryParams": ["utm_source"]}]},
        "Privacy Policy": {"fetch": "https://shop.example/privacy", "select": "main",
                           "filter": ["sharedCleanup", "notExportedAnywhere"]},
    }}, indent=2) + "\n")
    (declarations / "Shop.history.json").write_text(json.dumps({"Terms of Service": [
        {"fetch": "https://shop.example/tos", "select": "#old", "filter": ["inlineImages"],
         "validUntil": "2024-01-01T00:00:00Z"}]}, indent=2) + "\n")
    (declarations / "Shop.filters.js").write_text(FILTERS_JS)
    (declarations / "Plain.json").write_text(json.dumps({"name": "Plain", "terms": {
        "Imprint": {"fetch": "https://plain.example/imprint", "select": "main"}}}, indent=2) + "\n")
    return root


def run(source: Path, destination: Path, *options: str):
    return CliRunner().invoke(import_ota_command, [str(source), "--declarations", str(destination), *options])


def test_import_copies_validates_and_lists_the_filters_to_port(ota_collection: Path, tmp_path: Path):
    destination = tmp_path / "termshift" / "declarations"
    result = run(ota_collection, destination)
    assert result.exit_code == 0, result.output
    assert sorted(path.name for path in destination.iterdir()) == [
        "Plain.json", "Shop.filters.js", "Shop.history.json", "Shop.json"]
    assert "5 file(s) copied, 0 already identical, 0 kept." in result.output
    # The collection's metadata.yml goes beside the declarations folder, as in OTA.
    assert (tmp_path / "termshift" / "metadata.yml").read_text() == (ota_collection / "metadata.yml").read_text()
    assert "Schema check of 2 service(s): no errors" in result.output
    port = result.output[result.output.index("Shop.filters.js -> write Shop.filters.py with:"):]
    # Each export with the signature its callers need, and where it is used.
    assert 'def removeDates(document, params, context)\n        used by Shop.json $.terms["Terms of Service"].filter[1]' \
        in port
    assert 'def removeSessionIds(document, context)\n        used by Shop.json $.terms["Terms of Service"].filter[0]' \
        in port
    assert 'def inlineImages(document, context)\n        used by Shop.history.json $["Terms of Service"][0].filter[0]' \
        in port
    assert "def unusedHelper(document, context)\n        not used by any declaration" in port
    assert "def sharedCleanup(document, context) (re-exported from ./Other Service.filters.js)" in port
    assert "everything exported by ./Common.filters.js" in port
    assert "def notExportedAnywhere(document, context): called by the declarations but not found" in port
    assert "removeQueryParams" not in port  # a built-in: nothing to port
    # Until the port exists, the service does not load, and says why.
    collection = load_collection(destination)
    assert sorted(collection.services) == ["Plain"]
    assert any("JavaScript filters must be ported" in str(error) for error in collection.errors)


def test_import_again_keeps_local_changes_unless_overwrite(ota_collection: Path, tmp_path: Path):
    destination = tmp_path / "declarations"
    assert run(ota_collection / "declarations", destination).exit_code == 0  # the declarations folder itself
    (destination / "Plain.json").write_text((destination / "Plain.json").read_text().replace("main", "#local"))
    again = run(ota_collection, destination)
    assert "0 file(s) copied, 4 already identical, 1 kept." in again.output
    assert "kept Plain.json: it exists with other content (--overwrite replaces it)" in again.output
    assert "#local" in (destination / "Plain.json").read_text()
    overwritten = run(ota_collection, destination, "--overwrite")
    assert "1 file(s) copied" in overwritten.output and "#local" not in (destination / "Plain.json").read_text()


def test_schema_errors_fail_the_import(ota_collection: Path, tmp_path: Path):
    (ota_collection / "declarations" / "Broken.json").write_text(
        '{"name": "Broken", "terms": {"Imprnt": {"fetch": "https://b.example/i", "select": "main"}}}')
    result = run(ota_collection, tmp_path / "declarations")
    assert result.exit_code == 1
    assert "Broken.json: $.terms.Imprnt: unknown terms type 'Imprnt' (did you mean 'Imprint'?)" in result.output
    assert "Schema check of 3 service(s): 1 error(s)" in result.output


def test_a_folder_that_is_no_collection(tmp_path: Path):
    empty = tmp_path / "empty"
    empty.mkdir()
    result = run(empty, tmp_path / "declarations")
    assert result.exit_code == 2 and "neither a collection" in result.output


def test_import_the_ota_demo_collection(corpus_dir: Path, tmp_path: Path):
    destination = tmp_path / "declarations"
    result = run(corpus_dir / "declarations", destination)
    assert result.exit_code == 0, result.output
    assert "Schema check of 7 service(s): no errors" in result.output
    assert "No JavaScript filter to port." in result.output
    collection = load_collection(destination)
    assert collection.errors == [] and len(collection.services) == 7
    assert collection.services["Open Terms Archive"].history["Privacy Policy"][0].documents[0].select == \
        ".TextContent_textContent__ToW2S"
