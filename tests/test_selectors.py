"""CSS and range selection with OTA's `select`/`remove` semantics (reference §1.4, §4.4)."""

from __future__ import annotations

import lxml.html
import pytest
from lxml import etree

from termshift.errors import ExtractError
from termshift.selectors.selection import (
    build_fragment,
    compile_selector,
    query_all,
    query_first,
    remove,
    select,
)

PAGE = """<!DOCTYPE html><html><head><title>T</title></head><body>
<h1>Title</h1>
<p id="p1">one <a id="link1" href="/a">link 1</a> after one</p>
<p id="p2">two <a id="link2" href="#b">link 2</a> after two</p>
<p id="p3">three <a id="link3" href="http://c/">link 3</a></p>
<footer><p id="p4">footer</p></footer>
</body></html>"""


def page() -> lxml.html.HtmlElement:
    return lxml.html.document_fromstring(PAGE)


def html(node) -> str:
    return etree.tostring(node, encoding=str, method="html", with_tail=False)


def fragment(nodes) -> str:
    """The selection as DocumentFragment markup: the container's inner HTML."""
    container = build_fragment(etree.Element("div"), nodes)
    return html(container)[len("<div>") : -len("</div>")]


def body(root) -> str:
    return html(root.find("body"))


# --- CSS ------------------------------------------------------------------------------------


def test_query_all_returns_document_order_for_comma_lists():
    root = page()
    assert [e.get("id") for e in query_all(root, "#link3, h1, #p1")] == [None, "p1", "link3"]
    assert query_first(root, "p").get("id") == "p1"
    assert query_first(root, "table") is None


def test_string_selector_yields_clones_of_every_match_without_tail_text():
    root = page()
    selected = select(root, "p")
    assert [e.get("id") for e in selected] == ["p1", "p2", "p3", "p4"]  # footer paragraph too
    assert all(e.tail is None for e in selected)
    selected[0].text = "changed"
    assert query_first(root, "#p1").text == "one "


def test_array_items_are_taken_in_array_order_and_overlaps_duplicate():
    selected = select(page(), ["#p3", "#p1", "p:first-of-type"])
    assert [e.get("id") for e in selected] == ["p3", "p1", "p1", "p4"]


def test_an_item_matching_nothing_is_skipped():
    assert [e.get("id") for e in select(page(), ["#missing", "#p2"])] == ["p2"]
    assert select(page(), "#missing") == []


@pytest.mark.parametrize("selector", ["p", "#p1, #p3", "footer, #p4", "body", ["#p2"], "#missing"])
def test_taking_the_selection_out_of_the_document_gives_the_same_fragment(selector):
    # footer contains #p4: nested matches are copied, as they must appear twice.
    expected = fragment(select(page(), selector))
    assert fragment(select(page(), selector, keep_document=False)) == expected


def test_taken_selection_leaves_the_document_and_its_text():
    root = page()
    taken = select(root, "#link1, #link3", keep_document=False)
    assert [e.get("id") for e in taken] == ["link1", "link3"]
    assert query_all(root, "#link1, #link3") == []
    assert html(query_first(root, "#p1")) == '<p id="p1">one <!----> after one</p>'


def test_compiled_selectors_are_cached():
    assert compile_selector("main .content > p") is compile_selector("main .content > p")


@pytest.mark.parametrize("selector", ["p[", "##x", "", "a:nth-child(", "p:no-such-pseudo-class"])
def test_invalid_css_is_an_extract_error_naming_the_selector(selector):
    with pytest.raises(ExtractError, match="is not a valid selector") as error:
        select(page(), selector)
    assert f"'{selector}'" in str(error.value)


def test_invalid_css_in_a_range_or_in_remove_is_an_extract_error():
    with pytest.raises(ExtractError, match=r"'p\[' is not a valid selector"):
        select(page(), {"startBefore": "p[", "endAfter": "h1"})
    with pytest.raises(ExtractError, match=r"'p\[' is not a valid selector"):
        remove(page(), ["h1", "p["])


# --- Ranges in select ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("selector", "expected"),
    [
        ({"startBefore": "#link1", "endBefore": "#link2"},
         '<p id="p1"><a id="link1" href="/a">link 1</a> after one</p>\n<p id="p2">two </p>'),
        ({"startBefore": "#link2", "endAfter": "#link2"}, '<a id="link2" href="#b">link 2</a>'),
        ({"startAfter": "#link1", "endBefore": "#link3"},
         '<p id="p1"> after one</p>\n<p id="p2">two <a id="link2" href="#b">link 2</a> after two</p>\n'
         '<p id="p3">three </p>'),
        ({"startAfter": "#link2", "endAfter": "#link3"},
         '<p id="p2"> after two</p>\n<p id="p3">three <a id="link3" href="http://c/">link 3</a></p>'),
        # The end inside the start element: the start element is a partial shell.
        ({"startBefore": "#p2", "endBefore": "#link2"}, '<p id="p2">two </p>'),
        # Across nesting levels: footer is cut open, its paragraph kept whole.
        # and the start's paragraph is an empty shell.
        ({"startAfter": "#link3", "endAfter": "#p4"},
         '<p id="p3"></p>\n<footer><p id="p4">footer</p></footer>'),
    ],
)
def test_range_content_follows_dom_range_rules(selector, expected):
    assert fragment(select(page(), selector)) == expected


def test_range_ending_after_the_shell_it_starts_in():
    selected = select(page(), {"startAfter": "#link2", "endAfter": "#p2"})
    assert fragment(selected) == '<p id="p2"> after two</p>'


def test_bare_text_between_two_sibling_anchors_is_a_str_item():
    root = lxml.html.document_fromstring("<div><b id=s>S</b> middle <i>it</i> end <b id=e>E</b></div>")
    selected = select(root, {"startAfter": "#s", "endBefore": "#e"})
    assert selected[0] == " middle "
    assert fragment(selected) == " middle <i>it</i> end "


def test_range_uses_only_the_first_match_of_each_selector():
    assert fragment(select(page(), {"startBefore": "a", "endAfter": "p"})) == (
        '<p id="p1"><a id="link1" href="/a">link 1</a> after one</p>'
    )


def test_range_ending_before_its_start_is_empty():
    assert select(page(), {"startAfter": "#link3", "endBefore": "#link1"}) == []
    assert select(page(), {"startAfter": "#link2", "endBefore": "#link2"}) == []


def test_select_leaves_the_document_unchanged():
    root = page()
    before = etree.tostring(root)
    select(root, [{"startAfter": "#link1", "endBefore": "#link3"}, {"startBefore": "h1", "endAfter": "#p4"}])
    assert etree.tostring(root) == before


def test_ranges_and_strings_mix_in_array_order():
    selected = select(page(), ["h1", {"startAfter": "#link2", "endAfter": "#link3"}])
    assert fragment(selected) == (
        '<h1>Title</h1><p id="p2"> after two</p>\n<p id="p3">three <a id="link3" href="http://c/">link 3</a></p>'
    )


@pytest.mark.parametrize(
    ("selector", "message"),
    [
        ({"startBefore": "#nope", "endBefore": "#link2"},
         'The "start" selector has no match in document in: {"startBefore":"#nope","endBefore":"#link2"}'),
        ({"startAfter": "#link1", "endAfter": "#nope"},
         'The "end" selector has no match in document in: {"startAfter":"#link1","endAfter":"#nope"}'),
        ({"startAfter": "#été", "endAfter": "#nope"},
         'The "start" selector has no match in document in: {"startAfter":"#été","endAfter":"#nope"}'),
    ],
)
def test_range_without_a_match_is_an_error_with_the_range_as_json(selector, message):
    with pytest.raises(ExtractError) as select_error:
        select(page(), ["h1", selector])
    assert str(select_error.value) == message
    with pytest.raises(ExtractError) as remove_error:
        remove(page(), selector)
    assert str(remove_error.value) == message


# --- remove ----------------------------------------------------------------------------------


def test_remove_string_keeps_the_text_that_followed_the_node():
    root = page()
    remove(root, "#link1")
    assert html(query_first(root, "#p1")) == '<p id="p1">one <!----> after one</p>'


def test_remove_array_and_nested_matches():
    root = page()
    remove(root, ["footer", "#p4", "h1, #link2"])
    assert query_all(root, "footer, #p4, h1, #link2") == []
    assert html(query_first(root, "#p2")) == '<p id="p2">two <!----> after two</p>'


def test_remove_range_deletes_covered_content_and_keeps_partial_shells():
    root = page()
    remove(root, {"startAfter": "#link1", "endBefore": "#link3"})
    assert body(root) == (
        '<body>\n<h1>Title</h1>\n<p id="p1">one <a id="link1" href="/a">link 1</a></p>'
        '<p id="p3"><a id="link3" href="http://c/">link 3</a></p>\n'
        '<footer><p id="p4">footer</p></footer>\n</body>'
    )


def test_remove_ranges_are_computed_before_nodes_are_removed():
    # The range starts after h1, which the string selector removes first (OTA's X23).
    root = page()
    remove(root, ["h1", {"startAfter": "h1", "endBefore": "#link2"}])
    # The text before h1 stays; from h1's place to #link2 everything goes.
    assert body(root).startswith('<body>\n<p id="p2"><a id="link2" href="#b">link 2</a> after two</p>')


def test_remove_range_anchored_inside_a_removed_node():
    root = page()
    remove(root, ["#p2", {"startAfter": "#link2", "endAfter": "#link3"}])
    # The start moved to where #p2 was; #p3 holds the end, so it stays as an empty shell.
    assert body(root) == (
        '<body>\n<h1>Title</h1>\n<p id="p1">one <a id="link1" href="/a">link 1</a> after one</p>\n'
        '<p id="p3"></p>\n<footer><p id="p4">footer</p></footer>\n</body>'
    )


def test_remove_overlapping_ranges():
    root = page()
    remove(root, [{"startBefore": "#link1", "endAfter": "#link2"}, {"startBefore": "#p2", "endBefore": "#p4"}])
    assert body(root) == (
        '<body>\n<h1>Title</h1>\n<p id="p1">one </p><footer><p id="p4">footer</p></footer>\n</body>'
    )


def test_remove_nothing():
    root = page()
    before = etree.tostring(root)
    remove(root, None)
    remove(root, [])
    remove(root, "#does-not-exist")
    assert etree.tostring(root) == before


def test_the_selector_engine_sits_below_tracking() -> None:
    # termshift.selectors belongs to the declarations layer: loading it loads no tracker.
    import subprocess
    import sys

    code = ("import sys, termshift.selectors.selection, termshift.selectors.css; "
            "print(sorted(name for name in sys.modules if name.startswith('termshift.')))")
    loaded = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert "termshift.trackers" not in loaded and "termshift.selectors.css" in loaded
