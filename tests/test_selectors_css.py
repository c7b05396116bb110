"""CSS selectors with browser semantics (termshift.selectors.css), without a browser.

tests/test_selectors_browser.py compares the engine with Chromium on real pages; these
tests pin the behaviours one by one: error recovery at the end of input, the rejections
with their position and reason, HTML's case rules for attribute values, the families the
previous engine (cssselect) could not translate, and range selectors built on them.
"""

from __future__ import annotations

import pytest
from lxml import etree

from termshift.errors import ExtractError
from termshift.schema import selector_problems
from termshift.selectors.css import SelectorSyntaxError, parse, to_xpath
from termshift.selectors.selection import build_fragment, compile_selector, query_all, select

PAGE = """<!DOCTYPE html><html><head><title>t</title></head><body>
<main id="main">
  <div class="container-fluid" id="c1"><p id="p1">one</p><p id="p2" class="note">two</p></div>
  <div class="container-fluid" id="c2"><span id="s1">x</span><p id="p3">three</p></div>
  <section class="wrapper" id="w1"><h2 id="h1">A</h2></section>
  <article class="wrapper" id="w2"><h2 id="h2">B</h2><p id="p4" class="note">four</p></article>
  <section class="wrapper" id="w3"><h3 id="h3">C</h3><p id="p5" class="note">five</p><p id="p6">six</p></section>
</main>
<form id="f"><input id="i1" type="TEXT" lang="EN-gb" data-kind="Big"><input id="i2" type="checkbox" checked></form>
<img id="img1" src="data:image/svg+xml;base64,AAAA"><img id="img2" src="https://example.org/a.png">
<div id="empty"><!-- only a comment --></div>
</body></html>"""


def page() -> etree._Element:
    return etree.fromstring(PAGE, etree.HTMLParser())


def ids(css: str) -> list[str]:
    return [element.get("id") for element in query_all(page(), css)]


# --- What cssselect refused ----------------------------------------------------------------


@pytest.mark.parametrize(("css", "expected"), [
    # The selectors: -of-type without a type counts the siblings of each element's own type.
    (".wrapper:nth-of-type(2)", ["w3"]),  # the second <section>; the <article> is the first of its type
    ("main>.container-fluid:first-of-type", ["c1"]),
    (".container-fluid:last-of-type", ["c2"]),  # the last <div> among main's children
    ("main > :only-of-type", ["w2"]),
    ("#w3 > :nth-last-of-type(1)", ["h3", "p6"]),
    ("*:nth-of-type(2)", ["p2", "c2", "w3", "p6", "i2", "img2"]),
    # :nth-child(An+B of S) counts only the siblings matching S.
    ("p:nth-child(2 of .note, #p6)", ["p6"]),
    ("#main p:nth-last-child(1 of .note)", ["p2", "p4", "p5"]),
    # Selector lists and combinators inside :is(), :where(), :not(); :has() with relative selectors.
    (":is(#c1, #w2) > p", ["p1", "p2", "p4"]),
    (":where(main > section) h2", ["h1"]),
    ("#main p:not(.note, div > :first-child)", ["p3", "p6"]),
    ("main > :not(div p, :has(h2))", ["c1", "c2", "w3"]),
    ("main > :has(> h2 + p, > span)", ["c2", "w2"]),
    ("section:has(~ article)", ["w1"]),
    ("h2:has(+ p)", ["h2"]),
    # Forgiving :is(): what is not valid is dropped, the rest still matches.
    (":is(#p1, ::before, %%, #p4)", ["p1", "p4"]),
    (":is()", []),
    # Pseudo-elements are accepted and match no element, as in querySelectorAll.
    ("p::before", []),
    ("p:first-line, #p1", ["p1"]),
    ("#empty:empty, main:empty", ["empty"]),
])
def test_browser_selectors_match_like_a_browser(css, expected):
    assert ids(css) == expected


# --- Error recovery at the end of input --------------------------------------------------------


@pytest.mark.parametrize(("css", "expected"), [
    ("img[src^='data:image/svg+xml'", ["img1"]),  # an unclosed string and bracket are closed
    ('img[src^="data:image/svg+xml', ["img1"]),
    ("img[src", ["img1", "img2"]),
    ("main p:not(.note", ["p1", "p3", "p6"]),
    ("section:has(> p:nth-child(2", ["w3"]),
    ("#main /* a comment left open", ["main"]),
])
def test_selectors_left_open_at_the_end_are_closed_as_browsers_do(css, expected):
    assert ids(css) == expected


# --- Rejections: position and reason -------------------------------------------------------------


@pytest.mark.parametrize(("css", "reason", "position"), [
    ("div[[", "expected an attribute name, got '['", 4),
    ("#1a", "an ID selector must be an identifier, and '#1a' is not (write it '#\\31 a')", 0),
    ("main >", "expected a selector after the combinator '>'", 6),
    ("a, , b", "expected a selector, got ','", 3),
    ("p:no-such-thing", "unknown pseudo-class ':no-such-thing'", 2),
    ("p::nonsense", "unknown pseudo-element '::nonsense'", 3),
    ("a:contains('x')", "unknown pseudo-class ':contains()'", 2),
    ("a[x!=y]", "expected an attribute operator or ']', got '!'", 3),
    ("[a=b x]", "expected the flag 'i' or 's', got 'x'", 5),
    ("ns|a", "the namespace prefix 'ns' is not declared", 0),
    (":not()", "expected a selector, got end of input", 5),
    ("li:nth-child(+ 2n)", "':nth-child()' needs an An+B expression, not '+ 2n'", 3),
    ("li:nth-of-type(2 of .a)", "':nth-of-type()' takes no 'of S'", 17),
    ("a:has(b:has(c))", "':has()' cannot be nested in ':has()'", 8),
    ("a:not(::before)", "a pseudo-element cannot be used inside a pseudo-class", 6),
    ("p::before.x", "nothing but a pseudo-class can follow a pseudo-element", 9),
    ("a[title='two\nlines']", "a string cannot hold an unescaped line break", 8),
    ("a{", "unexpected '{'", 1),
    ("> p", "expected a selector, got '>'", 0),
    # Chromium accepts it; Termshift does not run form validation, and says so rather than match wrongly.
    ("input:invalid", "':invalid' depends on form validation, which Termshift does not evaluate", 6),
])
def test_what_browsers_reject_is_rejected_with_the_position_and_the_reason(css, reason, position):
    with pytest.raises(SelectorSyntaxError) as error:
        parse(css)
    assert (error.value.reason, error.value.position) == (reason, position)
    with pytest.raises(ExtractError) as extract_error:
        compile_selector(css)
    assert str(extract_error.value) == f"'{css}' is not a valid selector: {reason} at character {position + 1}"


def test_an_empty_selector_is_rejected():
    with pytest.raises(SelectorSyntaxError, match="the selector is empty"):
        parse("  /* nothing */ ")


# --- Attribute values: HTML's case rules and the i/s flags ------------------------------------------


@pytest.mark.parametrize(("css", "expected"), [
    ('input[type="text"]', ["i1"]),  # `type` is on HTML's list of case-insensitive attributes
    ('input[type="text" s]', []),  # …unless the selector says `s`
    ('input[type="TEXT" s]', ["i1"]),
    ('input[data-kind="big"]', []),  # other attributes compare case-sensitively
    ('input[data-kind="big" i]', ["i1"]),
    ('input[data-kind="BIG" I]', ["i1"]),
    ("input[lang|=en]", ["i1"]),
    ('input[data-kind^=""]', []),  # ^=, $=, *= with an empty value match nothing
    ('input[data-kind=""i]', []),  # an attribute that is absent is not an empty one
    ("[src$='.PNG' i]", ["img2"]),
    ("[src*=svg][src~=nope]", []),
    ("INPUT[TYPE=checkbox]:checked", ["i2"]),
])
def test_attribute_values_follow_html_case_rules_and_flags(css, expected):
    assert ids(css) == expected


# --- The engine's output --------------------------------------------------------------------------


def test_simple_selectors_compile_to_plain_xpath_without_extension_functions():
    assert to_xpath("main > .content p") == (
        "descendant-or-self::main/*[@class and contains(@class, 'content') "
        "and contains(concat(' ', normalize-space(@class), ' '), ' content ')]/descendant::p"
    )
    assert "ts:" in to_xpath(".wrapper:first-of-type")  # only where XPath 1.0 cannot say it


def test_matches_are_in_document_order_without_duplicates():
    assert ids("#p6, main p, .note, #p1") == ["p1", "p2", "p3", "p4", "p5", "p6"]


# --- Range selectors on the new selectors -----------------------------------------------------------


def test_range_selectors_use_the_new_families():
    root = page()
    content = build_fragment(etree.Element("div"), select(root, {
        "startAfter": "article.wrapper:first-of-type > h2", "endBefore": "#w3 > p:nth-child(2 of :not(h3))"}))
    assert etree.tostring(content, encoding="unicode") == (
        '<div><article class="wrapper" id="w2"><p id="p4" class="note">four</p></article>\n  '
        '<section class="wrapper" id="w3"><h3 id="h3">C</h3><p id="p5" class="note">five</p></section></div>'
    )


# --- validate: the same engine offline --------------------------------------------------------------


def test_validate_accepts_what_browsers_accept_and_rejects_the_rest_at_the_exact_item():
    declaration = {"name": "Shop", "terms": {"Terms of Service": {
        "fetch": "https://shop.example/tos",
        "select": [".wrapper:nth-of-type(2)", "main>.container-fluid:first-of-type",
                   {"startAfter": "img[src^='data:image/svg+xml'", "endBefore": "h2:has(+ p"}],
        "remove": ["#1a", ":is(.ad, ::before)"],
    }}}
    problems = selector_problems(declaration)
    assert [(problem.path, problem.reason) for problem in problems] == [
        (("terms", "Terms of Service", "remove", 0),
         "'#1a' is not a valid selector: an ID selector must be an identifier, and '#1a' is not "
         "(write it '#\\31 a') at character 1"),
    ]
