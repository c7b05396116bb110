"""Selecting and removing content in an lxml tree with OTA's `select`/`remove` semantics.

A declaration's `select` and `remove` fields hold a CSS selector string, a range object
(`startBefore`/`startAfter` + `endBefore`/`endAfter`) or a list mixing both
(reference §1.4). OTA evaluates them with jsdom's `querySelectorAll` and DOM Ranges; this
module gives the same results on lxml trees:

- string selectors are compiled once to XPath (`termshift.selectors.css`, browser semantics)
  and cached;
- a range only uses the *first* match of its start and end selectors;
- a range's content follows DOM Range rules: partially covered ancestors are copied as
  shallow shells holding only the covered part.

lxml has no text nodes: text lives in `.text` and `.tail`. To work on DOM positions, a range
is materialised by inserting two empty marker elements at its boundaries; everything
between the markers, in document order, is the range's content. Markers also make ranges
"live" during `remove`, as DOM ranges are: a node removed before the range is deleted
leaves its markers at its own place.
"""

from __future__ import annotations

import copy
import functools
import json
from collections.abc import Iterable, Sequence
from typing import Any, TypeAlias

from lxml import etree

from termshift.errors import ExtractError
from termshift.selectors.css import SelectorSyntaxError, compile_xpath

# A declared selector: a CSS string or a range object; `select`/`remove` may hold a list of them.
Selector: TypeAlias = str | dict[str, str]
Selectors: TypeAlias = Selector | Sequence[Selector]
# What `select` returns: cloned elements, and the bare text a range covers outside any element.
SelectedNode: TypeAlias = etree._Element | str

_MARKER_TAG = "termshift-range-boundary"


def selector_to_json(selector: Any) -> str:
    """A selector as OTA's messages show objects: compact JSON (JavaScript's JSON.stringify)."""
    return json.dumps(selector, separators=(",", ":"), ensure_ascii=False)


def as_list(selectors: Selectors | None) -> list[Selector]:
    """`[].concat(selectors)`: one selector or a list of them, as a list."""
    if selectors is None:
        return []
    if isinstance(selectors, (str, dict)):
        return [selectors]
    return list(selectors)


# --- CSS selectors -----------------------------------------------------------------------


@functools.lru_cache(maxsize=2048)
def compile_selector(css: str) -> etree.XPath:
    """The compiled XPath equivalent of a CSS selector (`termshift.selectors.css`: what
    Chromium's querySelectorAll accepts and matches); cached, since declarations repeat.

    Raises ExtractError naming the selector, the reason and the position where a browser
    rejects it.
    """
    if not isinstance(css, str):
        raise ExtractError(f"'{css}' is not a valid selector")
    try:
        return compile_xpath(css)
    except SelectorSyntaxError as error:
        raise ExtractError(f"'{css}' is not a valid selector: {error}") from error


def query_all(root: etree._Element, css: str) -> list[etree._Element]:
    """querySelectorAll: every element matching `css`, in document order, `root` included."""
    return compile_selector(css)(root)


def query_first(root: etree._Element, css: str) -> etree._Element | None:
    """querySelector: the first element matching `css` in document order, or None."""
    matches = query_all(root, css)
    return matches[0] if matches else None


# --- Public operations -------------------------------------------------------------------


def select(
    root: etree._Element, selectors: Selectors, *, keep_document: bool = True
) -> list[SelectedNode]:
    """Copies of the selected content, in the order of the declared selectors.

    Each string selector contributes deep copies (without tail text) of all its matches in
    document order; each range contributes the cloned content of the range, in which bare
    text outside any element appears as `str` items and the text that follows an element
    inside the range is that copy's `.tail`. Overlapping selectors duplicate content.
    Raises ExtractError for a range whose start or end selector matches nothing, and for
    invalid CSS.

    The document is left unchanged, unless `keep_document` is False: then, when a single CSS
    selector matches elements none of which contains another, those elements are taken out
    of the document rather than copied; the result is the same, only faster for a caller
    that discards the document.
    """
    items = as_list(selectors)
    if not keep_document and len(items) == 1 and isinstance(items[0], str):
        matches = query_all(root, items[0])
        if _none_nested(matches):
            for element in matches:
                remove_node(element)  # the text after it stays in the document
            return list(matches)
    selected: list[SelectedNode] = []
    for selector in items:
        if isinstance(selector, dict):
            selected.extend(_clone_range(root, selector))
        else:
            selected.extend(_clone_without_tail(element) for element in query_all(root, selector))
    return selected


def _none_nested(elements: list[etree._Element]) -> bool:
    """True when no element of the list is inside another one of the list."""
    if len(elements) < 2:
        return True
    members = set(elements)
    return not any(ancestor in members for element in elements for ancestor in element.iterancestors())


def remove(root: etree._Element, selectors: Selectors | None) -> None:
    """Delete the insignificant content in place, in OTA's order.

    All selectors are evaluated first (ranges anchored, string selectors matched), then the
    string selectors' nodes are removed, then the range contents are deleted. A range keeps
    working when one of its anchor nodes was removed in between (DOM live ranges).
    """
    ranges: list[tuple[etree._Element, etree._Element]] = []
    nodes: list[etree._Element] = []
    anchors: list[tuple[etree._Element, bool, etree._Element, bool]] = []
    for selector in as_list(selectors):
        if isinstance(selector, dict):
            anchors.append(_find_range_anchors(root, selector))
        else:
            nodes.extend(query_all(root, selector))
    # Markers go in only once every selector has matched, so they cannot change a match.
    for start_node, start_after, end_node, end_after in anchors:
        ranges.append(_insert_markers(start_node, start_after, end_node, end_after))
    for node in nodes:
        remove_node(node)
    for start, end in ranges:
        _delete_between(start, end)
    for start, end in ranges:
        remove_node(start)
        remove_node(end)


def build_fragment(container: etree._Element, nodes: Iterable[SelectedNode]) -> etree._Element:
    """Append selected nodes (elements and bare text) to `container`, like a DocumentFragment."""
    for node in nodes:
        if isinstance(node, str):
            _append_text(container, node)
        else:
            container.append(node)
    return container


# --- Ranges --------------------------------------------------------------------------------


def _find_range_anchors(
    root: etree._Element, selector: dict[str, str]
) -> tuple[etree._Element, bool, etree._Element, bool]:
    """The first matches of a range's start and end selectors, and on which side of each."""
    start_css = selector.get("startBefore") or selector.get("startAfter")
    end_css = selector.get("endBefore") or selector.get("endAfter")
    start_node = query_first(root, start_css) if start_css else None
    end_node = query_first(root, end_css) if end_css else None
    if start_node is None:
        raise ExtractError(
            f'The "start" selector has no match in document in: {selector_to_json(selector)}'
        )
    if end_node is None:
        raise ExtractError(
            f'The "end" selector has no match in document in: {selector_to_json(selector)}'
        )
    for node in (start_node, end_node):
        if node.getparent() is None:
            raise ExtractError(
                f"A range cannot start or end at the root element: {selector_to_json(selector)}"
            )
    return start_node, not selector.get("startBefore"), end_node, not selector.get("endBefore")


def _insert_markers(
    start_node: etree._Element, start_after: bool, end_node: etree._Element, end_after: bool
) -> tuple[etree._Element, etree._Element]:
    return _insert_marker(start_node, start_after), _insert_marker(end_node, end_after)


def _insert_marker(node: etree._Element, after: bool) -> etree._Element:
    """An empty element at the DOM position just before or just after `node`.

    "After" lies between the node and its tail text, so the marker takes over that tail.
    """
    marker = node.makeelement(_MARKER_TAG, {})
    if after:
        marker.tail, node.tail = node.tail, None
        node.addnext(marker)
    else:
        node.addprevious(marker)
    return marker


def _clone_range(root: etree._Element, selector: dict[str, str]) -> list[SelectedNode]:
    """Range.cloneContents() of a range selector; the document is restored afterwards."""
    start, end = _insert_markers(*_find_range_anchors(root, selector))
    try:
        return _clone_between(start, end)
    finally:
        remove_node(start)
        remove_node(end)


def _chains(start: etree._Element, end: etree._Element):
    """Paths from the common ancestor down to each marker, and that ancestor."""
    start_path = [*reversed(list(start.iterancestors())), start]
    end_path = [*reversed(list(end.iterancestors())), end]
    depth = 0
    while start_path[depth] is end_path[depth]:
        depth += 1
    return start_path[depth - 1], start_path[depth:], end_path[depth:]


def _is_collapsed(common: etree._Element, start_chain: list, end_chain: list) -> bool:
    """True when the end lies before the start: DOM then collapses the range to nothing."""
    return common.index(start_chain[0]) > common.index(end_chain[0])


def _clone_between(start: etree._Element, end: etree._Element) -> list[SelectedNode]:
    common, start_chain, end_chain = _chains(start, end)
    if _is_collapsed(common, start_chain, end_chain):
        return []
    pieces: list[SelectedNode] = []
    first, last = start_chain[0], end_chain[0]
    if first is start:
        if start.tail:
            pieces.append(start.tail)
    else:
        shell = _clone_after(first, start_chain[1:])
        shell.tail = first.tail
        pieces.append(shell)
    for sibling in first.itersiblings():
        if sibling is last:
            break
        pieces.append(_clone_with_tail(sibling))
    if last is not end:
        pieces.append(_clone_before(last, end_chain[1:]))
    return pieces


def _clone_after(node: etree._Element, chain: list[etree._Element]) -> etree._Element:
    """A shell of `node` holding what follows the boundary at the end of `chain`."""
    shell = _shallow_copy(node)
    child = chain[0]
    if len(chain) == 1:  # the marker itself: its tail is the text after the boundary
        shell.text = child.tail
    else:
        inner = _clone_after(child, chain[1:])
        inner.tail = child.tail
        shell.append(inner)
    for sibling in child.itersiblings():
        shell.append(_clone_with_tail(sibling))
    return shell


def _clone_before(node: etree._Element, chain: list[etree._Element]) -> etree._Element:
    """A shell of `node` holding what precedes the boundary at the end of `chain`."""
    shell = _shallow_copy(node)
    shell.text = node.text
    child = chain[0]
    for sibling in node:
        if sibling is child:
            break
        shell.append(_clone_with_tail(sibling))
    if len(chain) > 1:
        shell.append(_clone_before(child, chain[1:]))
    return shell


def _delete_between(start: etree._Element, end: etree._Element) -> None:
    """Range.deleteContents(): delete what lies between the markers, keep partial ancestors."""
    if start.getparent() is None or end.getparent() is None:
        return
    common, start_chain, end_chain = _chains(start, end)
    if _is_collapsed(common, start_chain, end_chain):
        return
    # Start side, below the common ancestor: everything after the path in each shell.
    for node in start_chain[1:]:
        _delete_following(node)
    # At the common ancestor: the start branch's tail and the siblings up to the end branch.
    first, last = start_chain[0], end_chain[0]
    first.tail = None
    for sibling in list(first.itersiblings()):
        if sibling is last:
            break
        _delete_node(sibling)
    # End side, below the common ancestor: everything before the path in each shell.
    for node in end_chain[1:]:
        _delete_preceding(node)


def _delete_following(node: etree._Element) -> None:
    node.tail = None
    for sibling in list(node.itersiblings()):
        _delete_node(sibling)


def _delete_preceding(node: etree._Element) -> None:
    parent = node.getparent()
    parent.text = None
    for sibling in list(node.itersiblings(preceding=True)):
        _delete_node(sibling)


def _delete_node(node: etree._Element) -> None:
    """Delete a node and its tail text (both lie inside a range being deleted).

    Another range's marker is kept: a live range's boundary survives the deletion.
    """
    node.tail = None
    if node.tag != _MARKER_TAG:
        remove_node(node)


# --- Tree helpers ---------------------------------------------------------------------------


def remove_node(node: etree._Element) -> None:
    """node.remove() as in the DOM: the text that followed the node stays in place.

    Range markers inside the node move to where the node was, as live ranges' boundaries do.
    """
    parent = node.getparent()
    if parent is None:
        return
    if node.tag != _MARKER_TAG:
        for marker in list(node.iter(_MARKER_TAG)):
            _move_before(marker, node)
    if node.tail and node.tag != _MARKER_TAG:
        # In the DOM the text after the node stays a text node of its own, and turndown
        # escapes each text node on its own ("a " + "-b" gives "a \\-b"). lxml would merge
        # it into the previous text, so an empty comment keeps the boundary (the Markdown
        # conversion skips comments but keeps the text nodes around them apart).
        boundary = etree.Comment("")
        boundary.tail, node.tail = node.tail, None
        parent.replace(node, boundary)
        return
    if node.tail:  # a range marker: the text it split was one text node before
        previous = node.getprevious()
        if previous is None:
            parent.text = (parent.text or "") + node.tail
        else:
            previous.tail = (previous.tail or "") + node.tail
        node.tail = None  # lxml would take it along with the node
    parent.remove(node)


def _move_before(marker: etree._Element, node: etree._Element) -> None:
    tail, marker.tail = marker.tail, None
    if tail:
        _restore_text_at(marker, tail)
    marker.getparent().remove(marker)
    node.addprevious(marker)


def _restore_text_at(marker: etree._Element, text: str) -> None:
    """Give the text after `marker` back to whatever precedes it, before it is moved."""
    previous = marker.getprevious()
    if previous is None:
        parent = marker.getparent()
        parent.text = (parent.text or "") + text
    else:
        previous.tail = (previous.tail or "") + text


def _append_text(container: etree._Element, text: str) -> None:
    if len(container):
        last = container[-1]
        last.tail = (last.tail or "") + text
    else:
        container.text = (container.text or "") + text


def _shallow_copy(node: etree._Element) -> etree._Element:
    return node.makeelement(node.tag, node.attrib)


def _clone_without_tail(node: etree._Element) -> etree._Element:
    """cloneNode(true): the element and its descendants; DOM nodes have no tail text."""
    clone = copy.deepcopy(node)
    clone.tail = None
    return clone


def _clone_with_tail(node: etree._Element) -> etree._Element:
    clone = copy.deepcopy(node)
    clone.tail = node.tail
    return clone
