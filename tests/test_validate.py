"""The schemas (fixtures named as OTA's, reference §1.9) and `termshift validate`."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner
from jsonschema import Draft202012Validator

from termshift import schema, validate
from termshift.commands.validate import validate_command
from termshift.declarations import (
    DeclarationError,
    check_declaration_file,
    check_history_file,
    list_service_ids,
)
from termshift.validate import validate_collection

REPO_ROOT = Path(__file__).resolve().parent.parent
FIXTURES = Path(__file__).parent / "fixtures" / "declarations"
SCHEMA_FIXTURES = FIXTURES / "schema"

@pytest.fixture
def offline(monkeypatch):
    """Without the network checks: these declarations point at hosts that are not local."""
    monkeypatch.setattr(validate, "CHECK_MODULES", ())
    monkeypatch.setattr(validate, "CHECKS", [check for check in validate.CHECKS if not check.network])



def names(folder: str) -> list[str]:
    return sorted(path.stem for path in (SCHEMA_FIXTURES / folder).glob("*.json"))


# ------------------------------------------------------------ schema fixtures


@pytest.mark.parametrize("name", names("valid"))
def test_valid_service_fixtures(name):
    assert check_declaration_file(SCHEMA_FIXTURES / "valid" / f"{name}.json") == []


@pytest.mark.parametrize("name", names("valid-history"))
def test_valid_history_fixtures(name):
    assert check_history_file(SCHEMA_FIXTURES / "valid-history" / f"{name}.json") == []


INVALID = {
    "additional-properties": [("$.website", "unknown field 'website'")],
    "invalid-filter-object": [('$.terms["Terms of Service"].filter[0]',
                               "a filter with parameters must be an object with exactly one key, the filter name, "
                               "such as {\"removeQueryParams\": [\"utm_source\"]}; "
                               "got keys: 'removeQueryParams', 'removeTrackers'")],
    "invalid-terms-type": [('$.terms["Privacy Polcy"]',
                            "unknown terms type 'Privacy Polcy' (did you mean 'Privacy Policy'?)")],
    "invalid-url": [('$.terms["Terms of Service"].fetch',
                     "not a valid URL: 'not-a-valid-url' (expected an absolute http:// or https:// address)")],
    "missing-fetch": [('$.terms["Terms of Service"]', "missing required field 'fetch'")],
    "missing-name": [("$", "missing required field 'name'")],
    "missing-select": [('$.terms["Terms of Service"]',
                        "missing required field 'select' (only a PDF URL, ending in .pdf, may omit it)")],
    "missing-terms": [("$", "missing required field 'terms'")],
    "non-pdf-url-for-pdf": [('$.terms["Privacy Policy"]',
                             "missing required field 'select' (only a PDF URL, ending in .pdf, may omit it)")],
}

INVALID_HISTORY = {
    "invalid-date": [('$["Terms of Service"][0].validUntil',
                      "not a valid date-time: '2023-12-31' (expected RFC 3339 with a time and a time zone, "
                      "such as 2024-03-18T18:30:09Z)")],
    "missing-valid-until": [('$["Terms of Service"][0]', "missing required field 'validUntil'")],
    # OTA's schema lets this one through; Termshift requires validUntil on combined entries too.
    "combined-missing-valid-until": [('$["Community Guidelines"][0]', "missing required field 'validUntil'")],
    "object-instead-of-array": [('$["Terms of Service"]',
                                 "expected an array but got an object. Please use [] instead of {}.")],
}


def test_every_invalid_fixture_has_an_expectation():
    assert sorted(INVALID) == names("invalid")
    assert sorted(INVALID_HISTORY) == names("invalid-history")


@pytest.mark.parametrize("name", sorted(INVALID))
def test_invalid_service_fixtures(name):
    path = SCHEMA_FIXTURES / "invalid" / f"{name}.json"
    errors = check_declaration_file(path)
    assert [(error.json_path, error.reason) for error in errors] == INVALID[name]
    assert all(error.file == path for error in errors)


@pytest.mark.parametrize("name", sorted(INVALID_HISTORY))
def test_invalid_history_fixtures(name):
    errors = check_history_file(SCHEMA_FIXTURES / "invalid-history" / f"{name}.json")
    assert [(error.json_path, error.reason) for error in errors] == INVALID_HISTORY[name]


@pytest.mark.parametrize(("terms", "expected"), [
    ({"fetch": "https://x.example/a", "select": ""},
     [(".select", "a CSS selector must be a non-empty string on one line, got ''")]),
    ({"fetch": "https://x.example/a", "select": ["main", 3]},
     [(".select[1]", "expected a CSS selector or a range object, but got a number")]),
    ({"fetch": "https://x.example/a", "select": 3},
     [(".select", "expected a CSS selector, a range object or an array of them, but got a number")]),
    ({"fetch": "https://x.example/a", "select": {"startBefore": "a", "startAfter": "b", "endBefore": "c"}},
     [(".select", "a range selector needs exactly one start ('startBefore' or 'startAfter') and exactly one end "
                  "('endBefore' or 'endAfter'); got keys: 'startBefore', 'startAfter', 'endBefore'")]),
    ({"fetch": "https://x.example/a", "select": [{"startBefore": "a"}]},
     [(".select[0]", "a range selector needs exactly one start ('startBefore' or 'startAfter') and exactly one "
                     "end ('endBefore' or 'endAfter'); got keys: 'startBefore'")]),
    ({"fetch": "https://x.example/a", "selct": "main"},
     [("", "missing required field 'select' (only a PDF URL, ending in .pdf, may omit it)"),
      (".selct", "unknown field 'selct' (did you mean 'select'?)")]),
    ({"fetch": "https://x.example/a.pdf", "executeClientScripts": True},
     [("", "missing required field 'select' (a PDF may omit it only when 'fetch' is its one field)")]),
    ({"fetch": "https://x.example/a", "select": "a", "executeClientScripts": "yes"},
     [(".executeClientScripts", "expected a boolean but got a string")]),
    ({"fetch": "https://x.example/a", "select": "a", "filter": [""]},
     [(".filter[0]", "a filter name must be a non-empty string on one line, got ''")]),
    ({"fetch": "https://x.example/a", "select": "a", "filter": "removeQueryParams"},
     [(".filter", "expected an array but got a string")]),
    ({"combine": [{"fetch": "ftp://x.example/a"}], "fetch": "https://x.example/a"},
     [(".combine[0].fetch", "not a valid URL: 'ftp://x.example/a' (expected an absolute http:// or https:// "
                            "address)"),
      (".fetch", "unknown field 'fetch'; in combined terms each item of 'combine' has its own 'fetch'")]),
    ("https://x.example/a", [("", "expected an object (a terms declaration) but got a string")]),
])
def test_one_of_failures_explain_the_intended_shape(terms, expected):
    problems = schema.service_problems({"name": "S", "terms": {"Imprint": terms}})
    assert [(problem.json_path, problem.reason) for problem in problems] == [
        ("$.terms.Imprint" + suffix, reason) for suffix, reason in expected]


def test_problems_come_in_file_order():
    problems = schema.service_problems({"nme": "S", "terms": {
        "Imprint": {"fetch": "x", "select": "a"}, "Privacy Polcy": {"fetch": "https://x.example/", "select": "a"}}})
    assert [problem.json_path for problem in problems] == [
        "$", "$.nme", "$.terms.Imprint.fetch", '$.terms["Privacy Polcy"]']


def test_the_terms_type_enum_comes_from_the_ontology_file():
    ontology = json.loads((REPO_ROOT / "termshift" / "data" / "terms-types.json").read_text(encoding="utf-8"))
    assert len(ontology) == 44
    assert schema.load_schema("service")["$defs"]["termsType"]["enum"] == list(ontology)
    raw = json.loads((REPO_ROOT / "termshift" / "schema" / "service.schema.json").read_text(encoding="utf-8"))
    assert "enum" not in raw["$defs"]["termsType"]  # no second copy to drift


def test_the_schema_files_are_valid_json_schemas():
    for name in ("service", "history"):
        Draft202012Validator.check_schema(schema.load_schema(name))


@pytest.mark.parametrize(("value", "valid"), [
    ("2024-03-18T18:30:09Z", True), ("2022-02-14T07:32:37+01:00", True), ("2024-03-18t18:30:09.123z", True),
    ("2024-03-18 18:30:09Z", True), ("2023-12-31", False), ("2024-03-18T18:30:09", False),
    ("2024-02-30T00:00:00Z", False), ("yesterday", False),
])
def test_date_time_format(value, valid):
    history = {"Imprint": [{"fetch": "https://x.example/a", "select": "a", "validUntil": value}]}
    assert (schema.history_problems(history) == []) is valid


@pytest.mark.parametrize(("value", "valid"), [
    ("https://example.com/terms", True), ("http://127.0.0.1:8080/a?b#c", True), ("https://example.com", True),
    ("not-a-valid-url", False), ("/relative/path", False), ("https://", False), ("mailto:a@example.com", False),
    ("https://exa mple.com/", False), ("https://example.com:99999/", False),
])
def test_uri_format(value, valid):
    assert schema.is_http_url(value) is valid


def test_json_paths():
    assert schema.json_path(["terms", "Privacy Policy", "select", 1]) == '$.terms["Privacy Policy"].select[1]'
    assert schema.json_path([]) == "$"
    assert schema.json_path(["a-b", 'q"uote']) == '$["a-b"]["q\\"uote"]'


# ------------------------------------------------------------ the command


def invoke(*arguments: str):
    return CliRunner().invoke(validate_command, list(arguments), catch_exceptions=False)


def test_a_clean_collection_exits_0(repo_declarations):
    result = invoke("--declarations", str(repo_declarations), "--schema-only")
    assert result.exit_code == 0, result.output
    count = len(list_service_ids(repo_declarations))
    assert result.output.strip().splitlines()[-1] == f"{count} services checked (schema only): no errors"


def test_the_fixture_collection_is_clean():
    result = invoke("--declarations", str(FIXTURES / "collection"), "--schema-only")
    assert (result.exit_code, result.output) == (0, "4 services checked (schema only): no errors\n")


def test_a_broken_collection_exits_1_with_one_line_per_error():
    broken = FIXTURES / "broken"
    result = invoke("--declarations", str(broken), "--schema-only")
    assert result.exit_code == 1
    lines = result.output.strip().splitlines()
    assert lines[-1] == "6 services checked (schema only): 5 errors in 5 services"
    assert f"{broken / 'Malformed.json'}: $: malformed JSON, it cannot be parsed: " \
           "Expecting ',' delimiter at line 4, column 61" in lines
    assert f"{broken / 'JavaScript.filters.js'}: line 3: cannot be parsed: SyntaxError: " \
           "Unexpected token (3:0)" in lines
    assert f'{broken / "Bad History.history.json"}: $["Terms of Service"]: expected an array but got an object. ' \
           "Please use [] instead of {}." in lines
    assert any(line.startswith(f"{broken / 'Redefines.filters.py'}: removeQueryParams: ") for line in lines)
    assert any(line.startswith(f'{broken / "Unknown Filter.json"}: $.terms["Privacy Policy"].filter[1]: '
                               "unknown filter 'doesNotExist'") for line in lines)


def test_services_restrict_the_run():
    result = invoke("--declarations", str(FIXTURES / "broken"), "--schema-only", "-s", "Valid", "-s", "Malformed")
    assert result.exit_code == 1
    assert result.output.strip().splitlines()[-1] == "2 services checked (schema only): 1 error in 1 service"
    assert invoke("--declarations", str(FIXTURES / "broken"), "--schema-only", "-s", "Valid").exit_code == 0


def test_an_unknown_service_is_an_error_with_a_suggestion():
    result = invoke("--declarations", str(FIXTURES / "broken"), "--schema-only", "-s", "valid")
    assert result.exit_code == 1
    assert "no declaration of service 'valid' (did you mean 'Valid'?)" in result.output


def test_an_unknown_terms_type_option_is_a_usage_error():
    result = invoke("--declarations", str(FIXTURES / "collection"), "-t", "Privacy Polcy")
    assert result.exit_code == 2
    assert "unknown terms type 'Privacy Polcy' (did you mean 'Privacy Policy'?)" in result.output


def test_an_empty_or_missing_folder_fails(tmp_path):
    result = invoke("--declarations", str(tmp_path), "--schema-only")
    assert (result.exit_code, result.output) == (1, "0 services checked (schema only): nothing to validate\n")
    missing = invoke("--declarations", str(tmp_path / "missing"))
    assert missing.exit_code == 1 and "declarations folder not found" in missing.output


def test_without_schema_only_the_offline_checks_run_too(offline, tmp_path):
    (tmp_path / "Dup.json").write_text(json.dumps({"name": "Dup", "terms": {"Imprint": {
        "combine": [{"fetch": "https://d.example/a"}, {"fetch": "https://d.example/a"}], "select": "main"}}}))
    assert invoke("--declarations", str(tmp_path), "--schema-only").exit_code == 0
    result = invoke("--declarations", str(tmp_path))
    assert result.exit_code == 1
    assert "Network checks (fetching pages, matching selectors) are not implemented yet" in result.stderr
    assert f"{tmp_path / 'Dup.json'}: $.terms.Imprint.combine: the location 'https://d.example/a' appears more " \
           "than once" in result.stdout
    assert result.stdout.strip().splitlines()[-1] == "1 service checked (offline checks only): 1 error in 1 service"


@pytest.fixture
def restore_checks():
    saved = list(validate.CHECKS)
    yield
    validate.CHECKS[:] = saved


def test_checks_can_be_registered_and_a_crashing_check_is_reported(offline, restore_checks, tmp_path):
    shutil.copy(FIXTURES / "broken" / "Valid.json", tmp_path)
    seen = []

    @validate.register_check("network-probe", network=True)
    def probe(run, service_id):
        seen.append((service_id, run.types, run.service(service_id).name))
        return [DeclarationError(run.files(service_id).declaration, "$.terms", "probe says no")]

    @validate.register_check("crashes", schema_only=True)
    def crashes(run, service_id):
        raise RuntimeError("bug")

    result = invoke("--declarations", str(tmp_path), "-t", "Imprint")
    assert seen == [("Valid", ("Imprint",), "Valid")]
    assert "not implemented yet" not in result.stderr
    assert f"{tmp_path / 'Valid.json'}: $.terms: probe says no" in result.stdout
    assert f"{tmp_path / 'Valid.json'}: -: the check 'crashes' crashed: RuntimeError: bug" in result.stdout
    assert result.stdout.strip().splitlines()[-1] == "1 service checked (all checks): 2 errors in 1 service"
    schema_only = validate_collection(tmp_path, schema_only=True)
    assert "network-probe" not in schema_only.checks and "crashes" in schema_only.checks


def test_a_real_subprocess(tmp_path):
    shutil.copytree(FIXTURES / "broken", tmp_path / "declarations")
    (tmp_path / "declarations" / "Syntax.json").write_text(json.dumps({"name": "Syntax", "terms": {}}))
    (tmp_path / "declarations" / "Syntax.filters.py").write_text("def broken(:\n    pass\n")
    environment = {**os.environ, "PYTHONPATH": str(REPO_ROOT)}
    environment = {key: value for key, value in environment.items() if not key.startswith("TERMSHIFT_")}
    completed = subprocess.run(
        [sys.executable, "-m", "termshift.cli", "validate", "--schema-only"],
        cwd=tmp_path, env=environment, capture_output=True, text=True, timeout=60, check=False,
    )
    assert completed.returncode == 1, completed.stderr
    lines = completed.stdout.strip().splitlines()
    assert "declarations/Syntax.filters.py: line 1: cannot load the filters: SyntaxError: invalid syntax" in lines
    assert lines[-1] == "7 services checked (schema only): 6 errors in 6 services"
    clean = subprocess.run(
        [sys.executable, "-m", "termshift.cli", "validate", "--schema-only", "--declarations",
         str(REPO_ROOT / "declarations")],
        cwd=tmp_path, env=environment, capture_output=True, text=True, timeout=60, check=False,
    )
    assert clean.returncode == 0, clean.stdout + clean.stderr


@pytest.mark.corpus
def test_the_corpus_declarations_validate(corpus_dir):
    result = invoke("--declarations", str(corpus_dir / "declarations"), "--schema-only")
    assert result.exit_code == 0, result.output


# ------------------------------------------------------------ CSS selectors


def test_selectors_that_are_not_css_are_found_offline_at_the_exact_item(tmp_path):
    (tmp_path / "Shop.json").write_text(json.dumps({"name": "Shop", "terms": {
        "Terms of Service": {"fetch": "https://shop.example/tos", "select": "main", "remove": "div[["},
        "Privacy Policy": {"fetch": "https://shop.example/privacy", "select": "main >",
                           "remove": [".ok", "a::nonsense", {"startAfter": "#a", "endBefore": "p["}]},
        "Imprint": {"select": ["h1", "h2"],
                    "combine": [{"fetch": "https://shop.example/a"},
                                {"fetch": "https://shop.example/b", "remove": {"startBefore": "#x[", "endAfter": "p"}}]},
        "Trackers Policy": {"fetch": "https://shop.example/cookies", "select": ""},  # the schema's to report
    }}, indent=2))
    (tmp_path / "Shop.history.json").write_text(json.dumps({"Terms of Service": [
        {"fetch": "https://shop.example/tos", "select": "#old((", "validUntil": "2024-01-01T00:00:00Z"}]}))
    result = invoke("--declarations", str(tmp_path), "--schema-only")
    assert result.exit_code == 1
    declaration, history = tmp_path / "Shop.json", tmp_path / "Shop.history.json"
    css_errors = [line for line in result.output.splitlines() if "is not a valid selector" in line]
    assert [line.split(": '")[0] for line in css_errors] == [
        f'{declaration}: $.terms["Terms of Service"].remove',
        f'{declaration}: $.terms["Privacy Policy"].select',
        f'{declaration}: $.terms["Privacy Policy"].remove[1]',
        f'{declaration}: $.terms["Privacy Policy"].remove[2].endBefore',
        f"{declaration}: $.terms.Imprint.combine[1].remove.startBefore",
        f'{history}: $["Terms of Service"][0].select',
    ]
    # The reason and the position, as a browser would find them.
    assert css_errors[0].endswith("'div[[' is not a valid selector: expected an attribute name, got '[' at character 5")
    assert css_errors[2].endswith("'a::nonsense' is not a valid selector: unknown pseudo-element '::nonsense' at character 4")
    empty = [line for line in result.output.splitlines() if '["Trackers Policy"].select' in line]
    assert len(empty) == 1 and "a CSS selector must be a non-empty string" in empty[0]
    assert result.output.strip().splitlines()[-1] == "1 service checked (schema only): 7 errors in 1 service"


@pytest.mark.parametrize("css", [
    "main > p:nth-of-type(2)", "a[href^='http']", "p:contains('x')", "input:checked", "#a, .b",
    "div[[", "p:hover(", "a::before", "main >", ":has(> p)",
])
def test_the_offline_check_agrees_with_extraction(css):
    from termshift.errors import ExtractError
    from termshift.selectors.selection import compile_selector

    try:
        compile_selector(css)
        extraction_accepts = True
    except ExtractError:
        extraction_accepts = False
    problems = schema.selector_problems({"Imprint": [{"remove": ["p", css]}]}, "history")
    assert [problem.json_path for problem in problems] == ([] if extraction_accepts else ["$.Imprint[0].remove[1]"])
