"""`termshift import-ota`: copying an OTA collection, JavaScript filters included, as it is."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner

from termshift.commands.import_ota import import_ota_command
from termshift.declarations import load_collection

FILTERS_JS = """\
import fetch from 'node-fetch';

export function removeSessionIds(document) {
  document.querySelectorAll('a').forEach(a => { a.href = a.href.split('?')[0]; });
}

export async function inlineImages(document, { fetch: location }) {}

export const removeDates = (document, selector) => {
  document.querySelectorAll(selector).forEach(element => element.remove());
};

export { sharedCleanup } from './Other Service.filters.js';
"""

OTHER_FILTERS_JS = "export function sharedCleanup(document) {}\n"


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
                           "filter": ["sharedCleanup"]},
    }}, indent=2) + "\n")
    (declarations / "Shop.history.json").write_text(json.dumps({"Terms of Service": [
        {"fetch": "https://shop.example/tos", "select": "#old", "filter": ["inlineImages"],
         "validUntil": "2024-01-01T00:00:00Z"}]}, indent=2) + "\n")
    (declarations / "Shop.filters.js").write_text(FILTERS_JS)
    (declarations / "Other Service.filters.js").write_text(OTHER_FILTERS_JS)
    (declarations / "Plain.json").write_text(json.dumps({"name": "Plain", "terms": {
        "Imprint": {"fetch": "https://plain.example/imprint", "select": "main"}}}, indent=2) + "\n")
    return root


def run(source: Path, destination: Path, *options: str):
    return CliRunner().invoke(import_ota_command, [str(source), "--declarations", str(destination), *options])


def test_import_copies_validates_and_reports_nothing_to_port(ota_collection: Path, tmp_path: Path):
    destination = tmp_path / "termshift" / "declarations"
    result = run(ota_collection, destination)
    assert result.exit_code == 0, result.output
    assert sorted(path.name for path in destination.iterdir()) == [
        "Other Service.filters.js", "Plain.json", "Shop.filters.js", "Shop.history.json", "Shop.json"]
    assert "6 file(s) copied, 0 already identical, 0 kept." in result.output
    # The collection's metadata.yml goes beside the declarations folder, as in OTA.
    assert (tmp_path / "termshift" / "metadata.yml").read_text() == (ota_collection / "metadata.yml").read_text()
    assert "Schema check of 2 service(s): no errors" in result.output
    assert "JavaScript filters: 1 file(s), run as they are (nothing to port" in result.output
    assert "  Shop.filters.js\n" in result.output
    assert "port to Python" not in result.output
    # The service loads with its JavaScript filters, the re-exported one included.
    collection = load_collection(destination)
    assert sorted(collection.services) == ["Plain", "Shop"] and not collection.errors
    assert sorted(collection.services["Shop"].filters) == [
        "inlineImages", "removeDates", "removeSessionIds", "sharedCleanup"]


def test_a_filter_the_declarations_call_but_nobody_exports_fails_the_import(ota_collection: Path, tmp_path: Path):
    shop = ota_collection / "declarations" / "Shop.json"
    shop.write_text(shop.read_text().replace('"sharedCleanup"', '"sharedCleanup", "notExportedAnywhere"'))
    result = run(ota_collection, tmp_path / "declarations")
    assert result.exit_code == 1
    assert ("""Shop.json: $.terms["Privacy Policy"].filter[1]: unknown filter 'notExportedAnywhere'"""
            in result.output)


def test_import_again_keeps_local_changes_unless_overwrite(ota_collection: Path, tmp_path: Path):
    destination = tmp_path / "declarations"
    assert run(ota_collection / "declarations", destination).exit_code == 0  # the declarations folder itself
    (destination / "Plain.json").write_text((destination / "Plain.json").read_text().replace("main", "#local"))
    again = run(ota_collection, destination)
    assert "0 file(s) copied, 5 already identical, 1 kept." in again.output
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
    assert "No JavaScript filters." in result.output
    collection = load_collection(destination)
    assert collection.errors == [] and len(collection.services) == 7
    assert collection.services["Open Terms Archive"].history["Privacy Policy"][0].documents[0].select == \
        ".TextContent_textContent__ToW2S"
