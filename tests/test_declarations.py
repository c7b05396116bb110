"""Loading declarations: discovery, the three terms shapes, combine inheritance, history, ids."""

from __future__ import annotations

import json
import shutil
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path

import pytest
from lxml import html

from termshift.declarations import (
    DeclarationError,
    FilterCall,
    Service,
    ServiceLoadError,
    SourceDocument,
    Terms,
    list_service_ids,
    load_collection,
    load_service,
    source_document_id,
)
from termshift.errors import ExtractError
from termshift.filters import apply_filters

FIXTURES = Path(__file__).parent / "fixtures" / "declarations"
COLLECTION = FIXTURES / "collection"
BROKEN = FIXTURES / "broken"


@pytest.fixture(scope="module")
def collection():
    return load_collection(COLLECTION)


def write_service(directory: Path, service_id: str, declaration, history=None) -> None:
    (directory / f"{service_id}.json").write_text(json.dumps(declaration), encoding="utf-8")
    if history is not None:
        (directory / f"{service_id}.history.json").write_text(json.dumps(history), encoding="utf-8")


def utc(text: str) -> datetime:
    return datetime.fromisoformat(text.replace("Z", "+00:00"))


# ------------------------------------------------------------ discovery


def test_service_ids_are_json_file_names_except_history_files():
    assert list_service_ids(COLLECTION) == ["Filtered", "Service B!", "service_with_history", "service·A"]


def test_an_empty_folder_has_no_services_and_a_missing_one_raises(tmp_path):
    assert list_service_ids(tmp_path) == []
    with pytest.raises(OSError):
        list_service_ids(tmp_path / "missing")


def test_the_fixture_collection_loads_without_errors(collection):
    assert collection.errors == []
    assert sorted(collection.services) == list_service_ids(COLLECTION)
    assert all(isinstance(service, Service) for service in collection.services.values())


# ------------------------------------------------------------ the three shapes


def test_single_source_document(collection):
    service = collection.services["service·A"]
    assert (service.id, service.name, service.path) == ("service·A", "Service A", COLLECTION / "service·A.json")
    terms = service.terms["Terms of Service"]
    assert terms == Terms("service·A", "Terms of Service", [SourceDocument("https://www.servicea.example/tos", "body")])
    assert (terms.combined, terms.valid_until, terms.documents[0].id) == (False, None, "tos")


def test_pdf_shorthand_has_no_selectors(collection):
    document = collection.services["Service B!"].terms["Privacy Policy"].documents[0]
    assert (document.location, document.select, document.remove, document.filters) == (
        "https://b.example/privacy.pdf", None, None, [])
    assert document.id == "privacy"


def test_combined_terms_inherit_wholesale_without_merging(collection):
    service = collection.services["Service B!"]
    assert service.imported_from == "https://example.org/rules/service-b.xml"
    terms = service.terms["Community Guidelines"]
    assert terms.combined
    inheriting, overriding = terms.documents
    shared_filter = [FilterCall("removeQueryParams", ["utm_source"], declared_with_params=True)]
    assert (inheriting.select, inheriting.remove, inheriting.filters, inheriting.execute_client_scripts) == (
        "article", ".base-ads", shared_filter, True)
    # Its own values replace the shared ones: ".doc2-ads" only, not ".base-ads" too.
    assert (overriding.select, overriding.remove, overriding.filters, overriding.execute_client_scripts) == (
        "#violence", ".doc2-ads", [FilterCall("markDocument")], False)
    assert [document.id for document in terms.documents] == ["community-hate-speech", "community-violence"]


def test_to_declaration_round_trips_the_demo_collection(repo_declarations):
    for path in sorted(repo_declarations.glob("*.json")):
        if path.name.endswith(".history.json"):
            continue
        service = load_service(repo_declarations, path.stem)
        declared = json.loads(path.read_text(encoding="utf-8"))["terms"]
        assert {name: terms.to_declaration() for name, terms in service.terms.items()} == declared


def test_combined_to_declaration_expands_inherited_values(collection):
    declaration = collection.services["Service B!"].terms["Community Guidelines"].to_declaration()
    assert declaration["combine"][0] == {
        "fetch": "https://b.example/community/hate-speech.html", "select": "article", "remove": ".base-ads",
        "filter": [{"removeQueryParams": ["utm_source"]}], "executeClientScripts": True}


def test_css_selectors_flatten_select_then_remove_with_range_bounds():
    document = SourceDocument(
        "https://example.com/",
        select=[{"startBefore": "#startBefore", "endBefore": "#endBefore"}, "body"],
        remove=[{"startAfter": "#startAfter", "endAfter": "#endAfter"}, ".ads"],
    )
    assert document.css_selectors == ["#startBefore", "#endBefore", "body", "#startAfter", "#endAfter", ".ads"]
    assert SourceDocument("https://example.com/x.pdf").css_selectors == []


def test_duplicate_locations_in_combine():
    documents = [SourceDocument(f"https://example.com/{name}") for name in ("a", "b", "a", "a", "c")]
    assert Terms("S", "Imprint", documents, combined=True).duplicate_locations == ["https://example.com/a"]


def test_source_document_accepts_raw_filter_items():
    document = SourceDocument("https://example.com/terms.html", filters=["a", {"b": 1}])
    assert document.filters == [FilterCall("a"), FilterCall("b", 1, declared_with_params=True)]
    assert document.id == "terms"


# ------------------------------------------------------------ ids (reference §2.6 and §4.6)


@pytest.mark.parametrize(("url", "expected"), [
    ("https://example.com/legal/terms", "legal-terms"),
    ("https://example.com/", ""),
    ("https://example.com", ""),
    ("https://example.com/terms%20of%20service", "terms of service"),
    ("https://example.com/en.html", "en"),
    ("https://example.com/terms.backup.html", "terms.backup"),
    ("https://example.com/terms.of.service", "terms.of.service"),
    ("https://example.com/terms%3Aof%3Aservice", "terms_of_service"),
    ("https://example.com/before:after", "before_after"),
    ('https://example.com/before"after', "before_after"),
    ("https://example.com/before<after", "before_after"),
    ("https://example.com/before>after", "before_after"),
    ("https://example.com/before|after", "before_after"),
    ("https://example.com/before*after", "before_after"),
    ("https://example.com/before%5Cafter", "before_after"),
    ("https://example.com/before%3Fafter", "before_after"),
    ("https://example.com/community-standards/hate-speech/", "community-standards-hate-speech"),
    ("https://example.com/legal/terms?lang=fr#top", "legal-terms"),
    # The cases below were checked against OTA's algorithm run with the npm `mime` package 4.1.2.
    ("https://example.com/foo.html/", "foo."),
    ("https://example.com/a/./b/../c.PDF", "a-c"),
    ("https://example.com/a\\b.html", "a-b"),
    ("https://example.com/.htaccess", ".htaccess"),
    ("https://example.com/terms.", "terms."),
    ("https://example.com/a.b/c", "a.b-c"),
    ("https://example.com/privacy.tr", "privacy"),  # "tr" is a MIME extension (troff)
    ("https://example.com/terms.php", "terms"),
    ("https://example.com/terms.aspx", "terms.aspx"),
    ("https://example.com/conditions-générales.html?x=1", "conditions-générales"),
    ("https://example.com/a%2Fb", "a-b"),
    ("https://example.com/x%2e%2e/y", "x..-y"),
    ("https://example.com/a/%2e%2e/b", "b"),
    ("https://example.com//double//slash/", "double-slash"),
    ("https://example.com/Terms.HTM", "Terms"),
    ("https://example.com/a.html.html", "a.html"),
])
def test_source_document_id(url, expected):
    assert source_document_id(url) == expected


# ------------------------------------------------------------ history


def test_history_is_sorted_by_date_whatever_the_file_order(collection):
    history = collection.services["service_with_history"].history["Terms of Service"]
    assert [terms.valid_until for terms in history] == [utc("2022-02-14T06:32:37Z"), utc("2024-03-18T18:30:09Z")]
    assert [terms.documents[0].select for terms in history] == [".v1", ".v2"]


def test_terms_at_picks_the_declaration_in_force_with_an_inclusive_valid_until(collection):
    service = collection.services["service_with_history"]

    def selected(date):
        return service.terms_at("Terms of Service", date).documents[0].select

    first_end, second_end = utc("2022-02-14T06:32:37Z"), utc("2024-03-18T18:30:09Z")
    assert selected(datetime(2000, 1, 1, tzinfo=UTC)) == ".v1"
    assert selected(first_end) == ".v1"  # equal to validUntil: still that entry
    assert selected(first_end + timedelta(seconds=1)) == ".v2"
    assert selected(datetime(2022, 2, 14, 7, 32, 37, tzinfo=timezone(timedelta(hours=1)))) == ".v1"
    assert selected(second_end) == ".v2"
    assert selected(second_end + timedelta(microseconds=1)) == ".v3"
    assert selected(None) == ".v3"
    assert selected(datetime(2022, 2, 14, 6, 32, 37)) == ".v1"  # naive dates are UTC


def test_history_entries_may_be_combined(collection):
    service = collection.services["service_with_history"]
    old = service.terms_at("Privacy Policy", utc("2023-01-01T00:00:00Z"))
    assert old.combined and old.valid_until == utc("2023-06-01T00:00:00Z")
    assert [document.id for document in old.documents] == ["privacy-part-1", "privacy-part-2"]
    assert [document.select for document in old.documents] == ["main", "main"]
    assert not service.terms_at("Privacy Policy", utc("2023-06-01T00:00:01Z")).combined


def test_types_may_live_only_in_the_history(collection):
    service = collection.services["service_with_history"]
    assert "Imprint" not in service.terms
    assert service.all_terms_types == ["Terms of Service", "Privacy Policy", "Imprint"]
    imprint = service.terms_at("Imprint", utc("2022-12-31T00:00:00Z"))
    assert imprint.documents[0].location == "https://history.example/imprint.pdf"
    assert service.terms_at("Imprint", utc("2023-01-01T00:00:01Z")) is None
    assert service.terms_at("Imprint") is None


def test_the_demo_history_resolves(repo_declarations):
    service = load_service(repo_declarations, "npm Public Registry")
    at_boundary = service.terms_at("Terms of Service", utc("2023-10-23T12:30:05Z"))
    assert at_boundary.documents[0].location == "https://docs.npmjs.com/policies/privacy"
    later = service.terms_at("Terms of Service", utc("2023-10-23T12:30:06Z"))
    assert later.documents[0].location == "https://docs.npmjs.com/policies/open-source-terms"
    assert service.terms_at("Terms of Service", utc("2026-01-15T00:30:16Z")).documents[0].select == ['[as="main"]']


# ------------------------------------------------------------ filters through a loaded service


def test_loaded_filters_follow_both_calling_conventions(collection):
    service = collection.services["Filtered"]
    assert sorted(service.filters) == ["record", "recordParams"]
    source = service.terms["Terms of Service"].documents[0]
    root = html.document_fromstring("<html><body><main>Terms</main></body></html>", base_url=source.location)
    apply_filters(root, source, service.filters)
    calls = [json.loads(paragraph.text) for paragraph in root.find_class("call")]
    assert [(call["name"], call.get("params")) for call in calls] == [
        ("record", None), ("recordParams", {"label": "object"}), ("recordParams", ["a", "b"]),
        ("recordParams", []), ("record", None), ("record", None), ("record", None), ("record", None)]
    assert calls[0]["context"] == {
        "fetch": "https://filtered.example/terms", "select": "main",
        "remove": {"startBefore": "#ads-start", "endAfter": "#ads-end"},
        "filter": ["record", "recordParams", "recordParams", "recordParams", "record", "record", "record", "record"]}


def test_per_document_filters_in_combine(collection):
    service = collection.services["Service B!"]
    first, second = service.terms["Community Guidelines"].documents
    root = html.document_fromstring('<html><body><a href="/x?utm_source=1&id=2">x</a></body></html>',
                                    base_url=second.location)
    apply_filters(root, second, service.filters)
    assert root.get("data-marked") == "https://b.example/community/violence"
    assert root.find(".//a").get("href") == "/x?utm_source=1&id=2"  # the shared filter was replaced
    apply_filters(root, first, service.filters)
    assert root.find(".//a").get("href") == "https://b.example/x?id=2"


# ------------------------------------------------------------ errors


def test_a_broken_service_is_reported_and_the_others_load():
    collection = load_collection(BROKEN)
    assert list(collection.services) == ["Valid"]
    by_file = {error.file.name: error for error in collection.errors}
    assert set(by_file) == {"Bad History.history.json", "JavaScript.filters.js", "Malformed.json",
                            "Redefines.filters.py", "Unknown Filter.json"}
    assert str(by_file["Malformed.json"]) == (
        f"{BROKEN / 'Malformed.json'}: $: malformed JSON, it cannot be parsed: "
        "Expecting ',' delimiter at line 4, column 61")
    assert (by_file["JavaScript.filters.js"].json_path, by_file["JavaScript.filters.js"].reason) == (
        "line 3", "cannot be parsed: SyntaxError: Unexpected token (3:0)")  # a function left unclosed
    assert by_file["Bad History.history.json"].json_path == '$["Terms of Service"]'
    assert by_file["Bad History.history.json"].reason == (
        "expected an array but got an object. Please use [] instead of {}.")
    assert by_file["Unknown Filter.json"].json_path == '$.terms["Privacy Policy"].filter[1]'
    assert by_file["Unknown Filter.json"].reason.startswith("unknown filter 'doesNotExist'")
    assert by_file["Redefines.filters.py"].json_path == "removeQueryParams"


def test_load_service_raises_with_every_error(tmp_path):
    write_service(tmp_path, "Two Problems", {"name": "x", "terms": {
        "Privacy Polcy": {"fetch": "https://x.example/p", "select": "main"},
        "Imprint": {"fetch": "not-a-valid-url", "select": "main"}}})
    with pytest.raises(ServiceLoadError) as raised:
        load_service(tmp_path, "Two Problems")
    assert [(error.json_path, error.reason) for error in raised.value.errors] == [
        ('$.terms["Privacy Polcy"]', "unknown terms type 'Privacy Polcy' (did you mean 'Privacy Policy'?)"),
        ("$.terms.Imprint.fetch",
         "not a valid URL: 'not-a-valid-url' (expected an absolute http:// or https:// address)"),
    ]


def test_a_service_with_both_python_and_javascript_filters_is_an_error(tmp_path):
    shutil.copy(BROKEN / "JavaScript.json", tmp_path)
    (tmp_path / "JavaScript.filters.js").write_text("export function cleanUrls(document) {}\n")
    (tmp_path / "JavaScript.filters.py").write_text("def cleanUrls(document, context):\n    pass\n")
    [error] = load_collection(tmp_path).errors
    assert error.reason == "a service has one filters file, found 'JavaScript.filters.py' and 'JavaScript.filters.js'"
    (tmp_path / "JavaScript.filters.py").unlink()
    assert load_service(tmp_path, "JavaScript").filters["cleanUrls"].__name__ == "cleanUrls"


def test_a_filters_file_failing_at_import_fails_extraction_once_not_loading(tmp_path):
    write_service(tmp_path, "S", {"name": "S", "terms": {"Imprint": {
        "fetch": "https://s.example/i", "select": "main", "filter": ["a", "b", {"removeQueryParams": 3}]}}})
    (tmp_path / "S.filters.py").write_text("def a(document, context):\n    pass\n\nraise RuntimeError('boom')\n")
    collection = load_collection(tmp_path)
    # Read, not run: only what the text shows is reported (b is unknown, bad built-in params).
    assert [(error.file.name, error.json_path) for error in collection.errors] == [
        ("S.json", "$.terms.Imprint.filter[1]"), ("S.json", "$.terms.Imprint.filter[2]")]
    write_service(tmp_path, "S", {"name": "S", "terms": {"Imprint": {
        "fetch": "https://s.example/i", "select": "main", "filter": ["a"]}}})
    service = load_service(tmp_path, "S")
    assert not service.filters.loaded
    document = service.terms["Imprint"].documents[0]
    for _attempt in range(2):  # the failure is kept: the file does not run again for each document
        with pytest.raises(ExtractError, match=r'"a" cannot run: the filters file "S.filters.py" cannot be loaded '
                                               r"\(line 4\): cannot load the filters: RuntimeError: boom"):
            apply_filters(html.fromstring("<html><body>x</body></html>"), document, service.filters)


def test_filters_named_in_history_must_exist_too(tmp_path):
    write_service(tmp_path, "S", {"name": "S", "terms": {}},
                  {"Imprint": [{"fetch": "https://s.example/i", "select": "main", "filter": ["gone"],
                                "validUntil": "2020-01-01T00:00:00Z"}]})
    [error] = load_collection(tmp_path).errors
    assert (error.file.name, error.json_path) == ("S.history.json", '$.Imprint[0].filter[0]')


def test_requested_services_that_do_not_exist_are_errors(tmp_path):
    write_service(tmp_path, "Here", {"name": "Here", "terms": {}})
    collection = load_collection(tmp_path, service_ids=["Here", "Missing"])
    assert list(collection.services) == ["Here"]
    assert [str(error) for error in collection.errors] == [
        f"{tmp_path / 'Missing.json'}: $: no declaration of service 'Missing'"]


def test_declaration_error_text_and_equality():
    error = DeclarationError(Path("declarations/X.json"), "$.terms", "bad")
    assert str(error) == "declarations/X.json: $.terms: bad"
    assert error == DeclarationError(Path("declarations/X.json"), "$.terms", "bad")
    assert len({error, DeclarationError(Path("declarations/X.json"), "$.terms", "bad")}) == 1


def test_non_utf8_and_bom(tmp_path):
    (tmp_path / "Latin.json").write_bytes('{"name": "Café", "terms": {}}'.encode("latin-1"))
    (tmp_path / "Bom.json").write_bytes(b'\xef\xbb\xbf{"name": "Bom", "terms": {}}')
    collection = load_collection(tmp_path)
    assert list(collection.services) == ["Bom"]
    assert collection.errors[0].reason.startswith("not UTF-8 text")


# ------------------------------------------------------------ the demo collections


def test_the_repo_collection_loads_clean(repo_declarations):
    collection = load_collection(repo_declarations)
    assert collection.errors == []
    assert len(collection.services) == len(list_service_ids(repo_declarations)) >= 7


@pytest.mark.corpus
def test_the_corpus_collection_loads_clean(corpus_dir):
    collection = load_collection(corpus_dir / "declarations")
    assert collection.errors == []
    assert sum(len(entries) for service in collection.services.values() for entries in service.history.values()) == 9


def test_a_service_id_with_a_backslash_is_refused(tmp_path):
    declaration = {"name": "Evil", "terms": {"Terms of Service": {"fetch": "https://example.org/tos",
                                                                  "select": "main"}}}
    (tmp_path / "Evil\\..\\Acme.json").write_text(json.dumps(declaration))
    (tmp_path / "Fine.json").write_text(json.dumps(declaration))
    collection = load_collection(tmp_path)
    assert list(collection.services) == ["Fine"]
    [error] = collection.errors
    assert "backslash" in error.reason and error.file.name == "Evil\\..\\Acme.json"


def test_a_file_too_large_nested_too_deeply_or_not_utf8_is_its_service_error(tmp_path):
    from termshift.declarations import MAX_DECLARATION_BYTES

    write_service(tmp_path, "Fine", {"name": "Fine", "terms": {}})
    (tmp_path / "Huge.json").write_text('{"name": "' + "x" * MAX_DECLARATION_BYTES + '", "terms": {}}')
    (tmp_path / "Deep.json").write_text("[" * 200_000 + "]" * 200_000)
    # Deep enough for the JSON parser, too deep for the schema check.
    select = "[" * 980 + '"main"' + "]" * 980
    (tmp_path / "Deepish.json").write_text(
        '{"name": "D", "terms": {"Imprint": {"fetch": "https://d.example/i", "select": ' + select + "}}}")
    write_service(tmp_path, "History", {"name": "History", "terms": {}})
    (tmp_path / "History.history.json").write_bytes(b'{"Imprint": [{"fetch": "https://h.example/\xff"}]}')
    collection = load_collection(tmp_path)
    assert list(collection.services) == ["Fine"]
    assert sorted(collection.skipped) == ["Deep", "Deepish", "History", "Huge"]
    assert collection.skipped["Huge"][0].reason.startswith("too large: ")
    assert collection.skipped["Deep"][0].reason == "malformed JSON, it cannot be parsed: nested too deeply"
    assert "nested too deeply" in collection.skipped["Deepish"][0].reason
    assert collection.skipped["History"][0].file.name == "History.history.json"
    assert collection.skipped["History"][0].reason.startswith("not UTF-8 text")
