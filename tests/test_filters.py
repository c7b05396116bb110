"""Filters: calling conventions, running them, loading `<id>.filters.py`, and the built-ins."""

from __future__ import annotations

import asyncio
import sys
import textwrap
from pathlib import Path

import pytest
from lxml import html

from termshift.declarations import SourceDocument
from termshift.errors import ExtractError
from termshift.filters import (
    BUILTIN_FILTERS,
    MAX_FILTERS_FILE_BYTES,
    FilterCall,
    FiltersFileError,
    apply_filters,
    builtin_names_redefined,
    call_problem,
    inspect_filters_file,
    js_truthy,
    load_filters_file,
    parse_query,
    removeElementsByText,
    removeQueryParams,
    replaceText,
    serialize_query,
)

LOCATION = "https://example.com/main"


def page(body: str, location: str | None = LOCATION) -> html.HtmlElement:
    return html.document_fromstring(f"<!DOCTYPE html><html><head></head><body>{body}</body></html>",
                                    base_url=location)


def document(filters: list, select="body", remove=None) -> SourceDocument:
    return SourceDocument(LOCATION, select=select, remove=remove, filters=filters)


# ------------------------------------------------------------ calling conventions


@pytest.mark.parametrize(("value", "truthy"), [
    ("", False), (0, False), (0.0, False), (False, False), (None, False), (float("nan"), False),
    ("x", True), (1, True), (-1, True), (True, True), ([], True), ({}, True), ([0], True), ({"a": 1}, True),
])
def test_params_follow_javascript_truthiness(value, truthy):
    assert js_truthy(value) is truthy
    assert FilterCall.from_declaration({"f": value}).passes_params is truthy


def test_a_string_item_never_passes_params():
    call = FilterCall.from_declaration("f")
    assert (call.name, call.declared_with_params, call.passes_params) == ("f", False, False)
    assert call.to_declaration() == "f"
    assert FilterCall.from_declaration({"f": 0}).to_declaration() == {"f": 0}


def _recorder(calls: list):
    def without_params(document, context):
        calls.append(("without", context))

    def with_params(document, params, context):
        calls.append(("with", params, context))

    return {"without": without_params, "with": with_params}


def test_filters_receive_document_params_and_context_as_declared():
    calls: list = []
    filters = ["without", {"with": {"label": "x"}}, {"with": ["a", "b"]}, {"with": []},
               {"without": ""}, {"without": 0}, {"without": False}, {"without": None}]
    source = document(filters, select=["main", {"startBefore": "#a", "endAfter": "#b"}], remove=".ads")
    root = page("<main>text</main>")

    assert apply_filters(root, source, _recorder(calls)) is root

    context = {"fetch": LOCATION, "select": ["main", {"startBefore": "#a", "endAfter": "#b"}], "remove": ".ads",
               "filter": ["without", "with", "with", "with", "without", "without", "without", "without"]}
    assert calls == [
        ("without", context),
        ("with", {"label": "x"}, context),
        ("with", ["a", "b"], context),
        ("with", [], context),  # [] is truthy in JavaScript, so OTA passes it
        *[("without", context)] * 4,  # OTA's quirk: falsy params are not passed at all
    ]


def test_filters_run_in_order_on_the_same_document():
    def first(document, context):
        document.find("body").append(html.fragment_fromstring("<p id='first'>1</p>"))

    def second(document, context):
        assert document.get_element_by_id("first") is not None
        document.get_element_by_id("first").text = "changed by second"

    root = page("")
    apply_filters(root, document(["first", "second"]), {"first": first, "second": second})
    assert root.get_element_by_id("first").text == "changed by second"


def test_async_filters_are_awaited_before_the_next_one():
    async def slow(document, context):
        await asyncio.sleep(0.05)
        for link in document.iter("a"):
            link.drop_tree()

    def check(document, context):
        assert not list(document.iter("a"))
        document.find("body").set("checked", "yes")

    root = page("<h1>Title</h1><p><a href='/x'>link</a></p>")
    apply_filters(root, document(["slow", "check"]), {"slow": slow, "check": check})
    assert root.find("body").get("checked") == "yes"


def test_async_filters_work_from_inside_a_running_event_loop():
    async def slow(document, context):
        await asyncio.sleep(0.01)
        document.find("body").set("done", "yes")

    async def main():
        root = page("")
        apply_filters(root, document(["slow"]), {"slow": slow})
        return root

    assert asyncio.run(main()).find("body").get("done") == "yes"


def test_a_failing_filter_becomes_an_extract_error_naming_it():
    def failingFilter(document, context):  # noqa: N802 - the name OTA's test uses
        raise ValueError("Filter failed")

    with pytest.raises(ExtractError) as raised:
        apply_filters(page(""), document(["failingFilter"]), {"failingFilter": failingFilter})
    assert str(raised.value) == 'The filter function "failingFilter" failed: ValueError: Filter failed'
    assert isinstance(raised.value.__cause__, ValueError)


def test_an_unknown_filter_name_is_an_error_unlike_ota():
    with pytest.raises(ExtractError, match=r'"doesNotExist" cannot run: unknown filter \'doesNotExist\''):
        apply_filters(page(""), document(["doesNotExist"]), {})


def test_a_filter_that_cannot_take_the_declared_arguments_is_reported():
    def takes_two(document, context):
        pass

    with pytest.raises(ExtractError, match=r"declared with parameters, so it is called as "
                                           r"takes_two\(document, params, context\)"):
        apply_filters(page(""), document([{"takes_two": "x"}]), {"takes_two": takes_two})


def test_builtins_take_precedence_over_service_filters():
    called = []
    root = page('<a href="https://example.com/p?sid=1&keep=2">x</a>')
    apply_filters(root, document([{"removeQueryParams": "sid"}]),
                  {"removeQueryParams": lambda *arguments: called.append(arguments)})
    assert called == []
    assert root.find(".//a").get("href") == "https://example.com/p?keep=2"
    assert builtin_names_redefined({"removeQueryParams": len, "mine": len}) == ["removeQueryParams"]


def test_call_problem_explains_what_is_wrong():
    def mine(document, context):
        pass

    assert call_problem(FilterCall("mine"), {"mine": mine}) is None
    assert call_problem(FilterCall("mine", "", declared_with_params=True), {"mine": mine}) is None
    assert call_problem(FilterCall("mine", 0, declared_with_params=True), {"mine": mine}) is None
    assert "declared with parameters" in call_problem(FilterCall("mine", 1, declared_with_params=True),
                                                      {"mine": mine})
    assert "needs parameters, such as" in call_problem(FilterCall("removeQueryParams"), None)
    assert "expected a query parameter name or a list of names" in call_problem(
        FilterCall("removeQueryParams", {"a": 1}, declared_with_params=True), None)
    assert "missing parameter 'selector'" in call_problem(
        FilterCall("removeElementsByText", {"text": "x"}, declared_with_params=True), None)
    assert call_problem(FilterCall("removeElementsByText", {"selector": "p", "text": "x"}, True), None) is None


def test_a_function_without_context_argument_is_reported_with_the_falsy_quirk_explained():
    def needs_params(document, params, context):
        pass

    problem = call_problem(FilterCall("needs_params", "", declared_with_params=True), {"needs_params": needs_params})
    assert "its parameters '' are empty, so (as in OTA) it is called as needs_params(document, context)" in problem


# ------------------------------------------------------------ filters files


def write(path: Path, source: str) -> Path:
    path.write_text(textwrap.dedent(source), encoding="utf-8")
    return path


def test_filters_files_of_two_services_do_not_collide(tmp_path):
    one = write(tmp_path / "One.filters.py", "def clean(document, context):\n    return 'one'\n")
    two = write(tmp_path / "Two.filters.py", "def clean(document, context):\n    return 'two'\n")
    first, second = load_filters_file(one)["clean"], load_filters_file(two)["clean"]
    assert (first(None, None), second(None, None)) == ("one", "two")
    assert first.__module__ != second.__module__
    assert first.__module__.startswith("termshift_service_filters_") and first.__module__ in sys.modules


def test_only_public_functions_of_the_file_are_filters(tmp_path):
    path = write(tmp_path / "S.filters.py", """
        from re import sub

        LIMIT = 3

        def _helper(document):
            pass

        def clean(document, context):
            _helper(document)

        async def later(document, context):
            pass
    """)
    assert sorted(load_filters_file(path)) == ["clean", "later"]


def test_all_lists_reexported_filters(tmp_path):
    write(tmp_path / "shared_filters.py", "def shared(document, context):\n    return 'shared'\n")
    path = write(tmp_path / "S.filters.py", f"""
        import importlib.util
        _spec = importlib.util.spec_from_file_location("shared_for_test", {str(tmp_path / "shared_filters.py")!r})
        _module = importlib.util.module_from_spec(_spec)
        _spec.loader.exec_module(_module)
        shared = _module.shared

        __all__ = ["shared"]
    """)
    assert load_filters_file(path)["shared"](None, None) == "shared"


def test_a_syntax_error_names_the_line(tmp_path):
    path = write(tmp_path / "S.filters.py", "def ok(document, context):\n    pass\n\ndef broken(:\n")
    with pytest.raises(FiltersFileError) as raised:
        load_filters_file(path)
    assert raised.value.line == 4
    assert raised.value.reason.startswith("cannot load the filters: SyntaxError")


def test_an_error_while_importing_names_the_line(tmp_path):
    path = write(tmp_path / "S.filters.py", "import json\n\nVALUE = json.loads('{')\n")
    with pytest.raises(FiltersFileError) as raised:
        load_filters_file(path)
    assert raised.value.line == 3
    assert "JSONDecodeError" in raised.value.reason


def test_a_non_function_in_all_is_reported(tmp_path):
    path = write(tmp_path / "S.filters.py", "LIMIT = 3\n__all__ = ['LIMIT']\n")
    with pytest.raises(FiltersFileError, match="'LIMIT' is listed in __all__ but is not a function"):
        load_filters_file(path)


# ------------------------------------------------ reading a filters file without running it


def test_reading_a_filters_file_runs_none_of_it_and_finds_what_importing_finds(tmp_path):
    marker = tmp_path / "imported"
    path = write(tmp_path / "S.filters.py", f"""
        import pathlib
        import sys
        from re import sub

        pathlib.Path({str(marker)!r}).write_text("ran")
        LIMIT = 3

        def _helper(document):
            pass

        def clean(document, context):
            _helper(document)

        async def later(document, params, context=None, *rest):
            pass

        strip = lambda document, context: None
        tidy = clean

        if sys.version_info >= (3,):
            def conditional(document, context):
                pass
    """)
    filters = inspect_filters_file(path)
    assert not marker.exists() and not filters.loaded
    assert sorted(filters) == sorted(load_filters_file(path)) == ["clean", "conditional", "later", "strip", "tidy"]
    marker.unlink()
    assert "clean" in filters and len(filters) == 5 and not marker.exists()  # still not run
    # Arity comes from the text.
    assert call_problem(FilterCall("later", ["x"], True), filters) is None
    assert "cannot be called" in call_problem(FilterCall("tidy", ["x"], True), filters)
    assert "cannot be called" in call_problem(FilterCall("strip", {"a": 1}, True), filters)
    assert call_problem(FilterCall("missing"), filters).startswith("unknown filter 'missing'")
    assert filters == inspect_filters_file(path) and repr(filters).startswith("PythonFilters(")
    assert not marker.exists()
    # Only running a filter imports the file, once.
    apply_filters(page("<p>x</p>"), document(["clean", "tidy"]), filters)
    assert marker.read_text() == "ran" and filters.loaded


def test_names_listed_in_all_are_read_from_the_text(tmp_path):
    path = write(tmp_path / "S.filters.py", """
        from shared_module import shared

        def own(document, context):
            pass

        __all__ = ["shared", "own"]
    """)
    filters = inspect_filters_file(path)
    assert list(filters) == ["shared", "own"]
    assert filters.definition("shared").signature is None  # imported: the call will tell
    assert call_problem(FilterCall("shared", [1], True), filters) is None
    write(tmp_path / "T.filters.py", "__all__ = ['ghost']\n")
    with pytest.raises(FiltersFileError, match="'ghost' is listed in __all__ but is not defined"):
        inspect_filters_file(tmp_path / "T.filters.py")
    write(tmp_path / "U.filters.py", "NAMES = ['a']\n__all__ = NAMES\n")
    with pytest.raises(FiltersFileError, match="__all__ must be a list of names written out") as raised:
        inspect_filters_file(tmp_path / "U.filters.py")
    assert raised.value.line == 2


def test_unreadable_filters_files_are_reported_without_running_anything(tmp_path):
    (tmp_path / "Latin.filters.py").write_bytes(b"# caf\xe9\n")
    with pytest.raises(FiltersFileError, match="not UTF-8 text"):
        inspect_filters_file(tmp_path / "Latin.filters.py")
    (tmp_path / "Huge.filters.py").write_text("#" * (MAX_FILTERS_FILE_BYTES + 1))
    with pytest.raises(FiltersFileError, match="too large to be a filters file"):
        inspect_filters_file(tmp_path / "Huge.filters.py")
    write(tmp_path / "Deep.filters.py", "x = " + "(" * 100_000 + ")" * 100_000 + "\n")
    with pytest.raises(FiltersFileError, match="cannot load the filters"):
        inspect_filters_file(tmp_path / "Deep.filters.py")
    write(tmp_path / "Syntax.filters.py", "def broken(:\n")
    with pytest.raises(FiltersFileError) as raised:
        inspect_filters_file(tmp_path / "Syntax.filters.py")
    assert raised.value.line == 1


@pytest.mark.parametrize("statement", ["import sys\nsys.exit(0)", "raise SystemExit('bye')", "raise BaseException('x')",
                                       "import os\nraise GeneratorExit"])
def test_a_filters_file_that_exits_at_import_fails_its_document_not_the_process(tmp_path, statement):
    path = write(tmp_path / "S.filters.py", "def clean(document, context):\n    pass\n")
    path.write_text(path.read_text() + statement + "\n")
    filters = inspect_filters_file(path)
    with pytest.raises(ExtractError, match='"clean" cannot run: the filters file "S.filters.py" cannot be loaded'):
        apply_filters(page("<p>x</p>"), document(["clean"]), filters)


def test_a_filter_that_calls_sys_exit_fails_its_document_not_the_process(tmp_path):
    path = write(tmp_path / "S.filters.py", "import sys\n\ndef clean(document, context):\n    sys.exit(4)\n")
    with pytest.raises(ExtractError, match='The filter function "clean" failed: SystemExit: 4'):
        apply_filters(page("<p>x</p>"), document(["clean"]), inspect_filters_file(path))


# ------------------------------------------------------------ removeQueryParams (reference §4.4)


def links(body: str, params, location: str | None = LOCATION) -> list[str]:
    root = page(body, location)
    removeQueryParams(root, params, {})
    return [element.get("href") or element.get("src") for element in root.xpath("//a | //img")]


def test_removes_the_given_params_from_links_and_images():
    assert links('<a href="https://example.com/page?utm_source=test&keep=value">x</a>'
                 '<img src="https://example.com/image.jpg?width=100&keep=value">',
                 ["utm_source", "width"]) == ["https://example.com/page?keep=value",
                                              "https://example.com/image.jpg?keep=value"]


def test_a_single_param_may_be_a_string():
    assert links('<a href="https://example.com/page?utm_source=test&keep=value">x</a>', "utm_source") == [
        "https://example.com/page?keep=value"]


def test_an_empty_list_changes_nothing():
    assert links('<a href="https://example.com/page?utm_source=test&keep=value">x</a>', []) == [
        "https://example.com/page?utm_source=test&keep=value"]


def test_invalid_urls_are_ignored():
    invalid = "ht^THIS_IS_WRONG^tp://example.com?utm_source=test"
    assert links(f'<a href="{invalid}">x</a>', ["utm_source"], location=None) == [invalid]
    broken_host = "http://[INVALID_URL=http://www.example.org/?utm_source=x"
    assert links(f'<a href="{broken_host}">x</a>', ["utm_source"]) == [broken_host]


def test_several_params_and_every_duplicate_are_removed():
    assert links('<a href="https://example.com/page?utm_source=test&utm_medium=email&keep=value&remove=me">x</a>'
                 '<a href="https://example.com/test?utm_source=to_remove_1&keep=true&utm_source=to_remove_2">y</a>',
                 ["utm_source", "utm_medium", "remove"]) == [
        "https://example.com/page?keep=value", "https://example.com/test?keep=true"]


def test_urls_without_target_params_stay_byte_identical():
    untouched = ["https://example.com/page?existing=param&%7Eodd=a+b", "./relative/path?existing=param",
                 "#section1", "HTTPS://Example.COM:443/a/../b?x=%41"]
    body = "".join(f'<a href="{href}">x</a>' for href in untouched) + '<img src="/image.png?width=1">'
    assert links(body, ["utm_source"]) == [*untouched, "/image.png?width=1"]


def test_the_question_mark_goes_when_no_param_is_left_and_fragments_stay():
    assert links('<a href="/page?utm_source=x#part">x</a>', "utm_source") == ["https://example.com/page#part"]


def test_a_modified_url_is_resolved_and_reserialized_as_urlsearchparams_does():
    # Once a target parameter is found, OTA writes back url.toString(): absolute, host
    # lower-cased, default port dropped, and the query re-encoded as form data.
    assert links('<a href="HTTPS://Example.COM:443/p?utm_source=1&q=a%20b~c&flag">x</a>', "utm_source") == [
        "https://example.com/p?q=a+b%7Ec&flag="]


def test_links_resolve_against_the_base_element():
    assert links('<a href="page?sid=1&x=2">x</a>', "sid", location=LOCATION) == ["https://example.com/page?x=2"]
    root = html.document_fromstring('<html><head><base href="https://cdn.example/docs/"></head>'
                                    '<body><a href="page?sid=1">x</a></body></html>', base_url=LOCATION)
    removeQueryParams(root, "sid", {})
    assert root.find(".//a").get("href") == "https://cdn.example/docs/page"


def test_text_is_never_modified():
    text = "https://analytics.example.com?utm_source=website&session_id=abc123"
    root = page(f"<code>{text}</code><p>Links with utm_source=email: {text}.</p><pre>\nfetch('{text}');\n</pre>")
    before = [element.text_content() for element in root.iter("code", "p", "pre")]
    removeQueryParams(root, ["utm_source", "session_id"], {})
    assert [element.text_content() for element in root.iter("code", "p", "pre")] == before


def test_query_parsing_and_serialization_follow_urlsearchparams():
    assert parse_query("a=1&&b=x+y&c&d=%C3%A9&e=%zz") == [
        ("a", "1"), ("b", "x y"), ("c", ""), ("d", "é"), ("e", "%zz")]
    assert serialize_query([("a b", "é~*-._/")]) == "a+b=%C3%A9%7E*-._%2F"


# ------------------------------------------------------------ removeElementsByText, replaceText


def test_remove_elements_by_text_keeps_the_text_that_follows():
    root = page("<div><p>Intro</p><p>Last   updated\n 3 minutes ago</p>tail<p>Body</p></div>")
    removeElementsByText(root, {"selector": "p", "text": "Last updated"}, {})
    assert root.find("body").text_content() == "IntrotailBody"


def test_remove_elements_by_pattern():
    root = page("<ul><li>Rule</li><li>12 hours ago</li><li>5 minutes ago</li></ul>")
    removeElementsByText(root, {"selector": "li", "pattern": r"^\d+ (minutes|hours) ago$"}, {})
    assert [item.text for item in root.iter("li")] == ["Rule"]


@pytest.mark.parametrize(("params", "message"), [
    ({"selector": "p"}, "give exactly one of 'text' and 'pattern'"),
    ({"selector": "p", "text": "a", "pattern": "b"}, "give exactly one of 'text' and 'pattern'"),
    ({"selector": "p[", "text": "a"}, "invalid CSS selector 'p['"),
    ({"selector": "p", "pattern": "("}, "invalid regular expression '('"),
    ({"selector": "p", "text": "a", "colour": "red"}, "unknown parameter 'colour'"),
    ("p", "expected an object of parameters"),
])
def test_remove_elements_by_text_rejects_bad_params(params, message):
    with pytest.raises(ValueError, match=message.replace("(", r"\(").replace("[", r"\[")):
        removeElementsByText(page(""), params, {})


def test_replace_text_within_the_selected_elements_only():
    root = page("<div class='meta'>Updated 3 days ago <b>by Ann</b> Updated 4 days ago</div>"
                "<p>Updated 5 days ago</p>")
    params = {"pattern": r"Updated \d+ days ago", "replacement": "Updated", "selector": ".meta"}
    replaceText(root, params, {})
    assert root.find_class("meta")[0].text_content() == "Updated by Ann Updated"
    assert root.find(".//p").text == "Updated 5 days ago"
    replaceText(root, params, {})  # idempotent
    assert root.find_class("meta")[0].text_content() == "Updated by Ann Updated"


def test_replace_text_everywhere_with_groups_and_leaves_attributes():
    root = page('<p title="v1.2">version 1.2</p><!-- version 9.9 -->')
    replaceText(root, {"pattern": r"version (\d+)\.\d+", "replacement": r"version \1"}, {})
    assert root.find(".//p").text == "version 1"
    assert root.find(".//p").get("title") == "v1.2"
    assert "version 9.9" in html.tostring(root, encoding="unicode")


def test_every_builtin_is_documented_with_an_example():
    for name, function in BUILTIN_FILTERS.items():
        assert function.__doc__ and f'{{"{name}"' in function.__doc__, name


def test_imports_that_cannot_work_are_found_without_running_the_file(tmp_path):
    path = write(tmp_path / "S.filters.py", """
        from __future__ import annotations

        import re
        import termshift_no_such_module_anywhere
        from lxml import html
        from . import sibling

        def clean(document, context):
            pass
    """)
    filters = inspect_filters_file(path)
    assert filters.import_problems() == [
        (5, "imports 'termshift_no_such_module_anywhere', which is not installed here: the filters cannot load"),
        (7, "a relative import cannot work in a filters file (it is not in a package): import modules by their "
            "full name"),
    ]
    assert not filters.loaded


def test_built_in_filters_take_selectors_as_browsers_do():
    """The built-ins use extraction's selector engine: `*:nth-of-type()` (which cssselect
    cannot translate) and an unclosed attribute selector (closed, as browsers do) work."""
    document = html.fromstring("<html><body><div><p>keep</p><p>drop me</p></div>"
                               "<a href='data:image/svg+xml,x'>old</a><a href='/'>old</a></body></html>")
    removeElementsByText(document, {"selector": ".x, div > :nth-of-type(2)", "text": "drop"}, {})
    assert [p.text for p in document.iter("p")] == ["keep"]
    replaceText(document, {"selector": "a[href^='data:image/svg+xml'", "pattern": "old", "replacement": "new"}, {})
    assert [a.text for a in document.iter("a")] == ["new", "old"]
    with pytest.raises(ValueError, match="invalid CSS selector"):
        removeElementsByText(document, {"selector": "p[[broken", "text": "x"}, {})
