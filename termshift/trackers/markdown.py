"""HTML to Markdown, byte for byte as Open Terms Archive converts it.

OTA turns the selected nodes into Markdown with turndown 7.2 (default options),
the joplin-turndown-plugin-gfm 1.0.12 plugin and one custom rule that trims a
link's content (reference §2.4, step 8). A versions history recorded by OTA can
only continue without a formatting-only change if we reproduce that output
exactly, quirks included, so this module is a faithful port of turndown's
algorithm onto lxml trees rather than a "nicer" converter.

How it works, in turndown's order:

1. `_TreeBuilder` copies the container's children into a small DOM-like tree
   (`_Element`s and strings), running turndown's `collapseWhitespace` pass on the
   way. Text nodes are kept as a browser DOM has them: lxml's `.text`/`.tail`
   strings become separate text nodes, and a comment still separates the text
   on either side after it is dropped (turndown escapes each text node on its
   own, and empty text nodes still count as siblings in some rules).
2. `_process` walks that tree, picks a rule per element (`_rule_for`) and
   joins the replacements with turndown's newline arithmetic (`_join`).
3. `to_markdown` trims the result like turndown's `postProcess`.

JavaScript semantics that matter for byte identity are reproduced: `\\s` and
`trim()` use ECMAScript's whitespace set, `String.length` counts UTF-16 code
units (setext underlines, table-cell padding) and `Number()` parses the `start`
and `colspan` attributes.

Everything is local to one call, so `to_markdown` is pure and thread-safe.
"""

from __future__ import annotations

import math
import re
import sys
from collections.abc import Callable
from typing import TypeAlias

from lxml import etree

from termshift.errors import ExtractError

__all__ = ["to_markdown"]

# ---------------------------------------------------------------------------
# JavaScript string semantics
# ---------------------------------------------------------------------------

# ECMAScript WhiteSpace + LineTerminator: what `\s` matches and `trim()` strips.
# Python's `str.strip()` and `\s` differ (\x1c-\x1f, \x85 in; \ufeff out).
_JS_WS = "\t\n\v\f\r \u00a0\u1680\u2000\u2001\u2002\u2003\u2004\u2005\u2006\u2007\u2008\u2009\u200a\u2028\u2029\u202f\u205f\u3000\ufeff"
_ASCII_WS = " \t\r\n"  # turndown's "ASCII whitespace" in edgeWhitespace
_LINE_TERMINATORS = "\n\r\u2028\u2029"  # where JS `^` matches with the m flag


def _js_trim(string: str) -> str:
    return string.strip(_JS_WS)


def _is_js_blank(string: str) -> bool:
    """`/^\\s*$/.test(string)`."""
    return not string.strip(_JS_WS)


def _utf16_len(string: str) -> int:
    """JavaScript's `String.length`: astral characters count twice."""
    if string.isascii():
        return len(string)
    return len(string.encode("utf-16-le", "surrogatepass")) // 2


_JS_DECIMAL = re.compile(r"[+-]?(?:Infinity|(?:[0-9]+\.?[0-9]*|\.[0-9]+)(?:[eE][+-]?[0-9]+)?)\Z")
_JS_RADIX = re.compile(r"0([xXoObB])([0-9a-fA-F]+)\Z")


def _js_number(value: str) -> float:
    """JavaScript's `Number(string)` (NaN when the string is not a number)."""
    text = _js_trim(value)
    if not text:
        return 0.0
    if _JS_DECIMAL.match(text):
        return float(text.replace("Infinity", "inf"))
    radix = _JS_RADIX.match(text)
    if radix:
        base = {"x": 16, "o": 8, "b": 2}[radix.group(1).lower()]
        try:
            return float(int(radix.group(2), base))
        except ValueError:
            return math.nan
    return math.nan


def _js_number_to_string(number: float) -> str:
    """JavaScript's `String(number)` for the values list numbering can produce."""
    if math.isnan(number):
        return "NaN"
    if math.isinf(number):
        return "Infinity" if number > 0 else "-Infinity"
    if number.is_integer() and abs(number) < 1e21:
        return str(int(number))
    text = repr(number)
    if "e" in text:  # JS writes 1e+21 and 1e-7; Python writes 1e+21 and 1e-07
        mantissa, exponent = text.split("e")
        sign = "-" if exponent.startswith("-") else "+"
        text = f"{mantissa}e{sign}{exponent.lstrip('+-').lstrip('0')}"
    return text


# ---------------------------------------------------------------------------
# Turndown's element classes
# ---------------------------------------------------------------------------


def _names(words: str) -> frozenset[str]:
    return frozenset(words.split())


_BLOCK = _names(
    "ADDRESS ARTICLE ASIDE AUDIO BLOCKQUOTE BODY CANVAS CENTER DD DIR DIV DL DT FIELDSET FIGCAPTION "
    "FIGURE FOOTER FORM FRAMESET H1 H2 H3 H4 H5 H6 HEADER HGROUP HR HTML ISINDEX LI MAIN MENU NAV "
    "NOFRAMES NOSCRIPT OL OUTPUT P PRE SECTION TABLE TBODY TD TFOOT TH THEAD TR UL"
)
_VOID = _names("AREA BASE BR COL COMMAND EMBED HR IMG INPUT KEYGEN LINK META PARAM SOURCE TRACK WBR")
_MEANINGFUL_WHEN_BLANK = _names("A TABLE THEAD TBODY TFOOT TH TD IFRAME SCRIPT AUDIO VIDEO")

# Inside <svg>/<math> a browser keeps the source case of element names
# ("a", "title"), so turndown's upper-case tests never match them. These HTML
# start tags make the HTML parser leave foreign content, so they stay HTML.
_FOREIGN_ROOTS = frozenset({"svg", "math"})
_BREAKS_OUT_OF_FOREIGN = _names(
    "b big blockquote body br center code dd div dl dt em embed h1 h2 h3 h4 h5 h6 head hr i img li "
    "listing menu meta nobr ol p pre ruby s small span strong strike sub sup table tt u ul var"
)
_HTML_INTEGRATION_POINTS = frozenset({"foreignobject", "desc", "title"})

# Elements whose `type` IDL attribute reflects the content attribute verbatim
# (the task-list rule tests `node.type === 'checkbox'`).
_TYPE_REFLECTING = _names("A OL UL LI EMBED OBJECT SOURCE LINK SCRIPT STYLE")


# ---------------------------------------------------------------------------
# The DOM-like tree
# ---------------------------------------------------------------------------
#
# A node is an `_Element`, a `str` (a DOM text node) or `_COMMENT` (a comment,
# kept only inside <pre>, where turndown's whitespace pass does not go).
# Text nodes are plain strings to keep the per-node cost low: they are
# replaced in their parent's `children` list when the whitespace pass trims them.


class _CommentNode:
    """A DOM comment: no output, no text content, but a sibling all the same."""

    __slots__ = ()


_COMMENT = _CommentNode()
_Node: TypeAlias = "_Element | str | _CommentNode"

# How an element affects the whitespace pass (turndown's collapseWhitespace).
_INLINE = 0
_RESETS_LINE = 1  # blocks and <br>: trim the previous text's trailing space
_KEEPS_NEXT_SPACE = 2  # other void elements: the next text keeps its leading space


class _Element:
    """A DOM element with what turndown computes about it, cached."""

    __slots__ = (
        "name",
        "source",
        "foreign",
        "whitespace_effect",
        "parent",
        "index",
        "element_index",
        "element_count",
        "children",
        "is_block",
        "has_special_descendant",
        "has_text",
        "_text_content",
        "_table_skipped",
    )

    def __init__(self, name: str, source: etree._Element | None, parent: _Element | None) -> None:
        self.name = name  # DOM nodeName: upper case for HTML elements
        self.source = source  # the lxml element, for attributes
        self.foreign = False  # in SVG or MathML
        self.parent = parent
        self.index = 0  # among the parent's child nodes
        self.element_index = 0  # among the parent's element children
        self.element_count = 0
        self.children: list[_Node] = []
        self.is_block = name in _BLOCK
        if self.is_block or name == "BR":
            self.whitespace_effect = _RESETS_LINE
        elif name in _VOID:
            self.whitespace_effect = _KEEPS_NEXT_SPACE
        else:
            self.whitespace_effect = _INLINE
        self.has_special_descendant = False  # a void or meaningful-when-blank element below
        # Some text other than whitespace below. Known while building: the whitespace pass
        # only ever drops spaces, which never changes whether a text is blank.
        self.has_text = False
        self._text_content: str | None = None
        self._table_skipped: bool | None = None

    def get(self, name: str) -> str | None:
        return self.source.get(name) if self.source is not None else None

    def text_content(self) -> str:
        if self._text_content is None:
            # A plain loop, not join(generator): deep trees then recurse in
            # Python frames only, never on the C stack (see `to_markdown`).
            parts = []
            for child in self.children:
                if type(child) is str:
                    parts.append(child)
                elif type(child) is _Element:
                    parts.append(child.text_content())
            self._text_content = "".join(parts)
        return self._text_content

    def previous_sibling(self) -> _Node | None:
        return self.parent.children[self.index - 1] if self.parent is not None and self.index else None

    def next_sibling(self) -> _Node | None:
        if self.parent is None or self.index + 1 >= len(self.parent.children):
            return None
        return self.parent.children[self.index + 1]

    def element_children(self) -> list[_Element]:
        return [child for child in self.children if type(child) is _Element]

    def is_last_element_child(self) -> bool:
        return self.parent is not None and self.element_index == self.parent.element_count - 1


# Runs of HTML whitespace other than a lone space (those need no rewriting).
_WHITESPACE_RUN = re.compile(r"[ \r\n\t]{2,}|[\r\n\t]")


def _needs_collapsing(text: str) -> bool:
    return "\n" in text or "  " in text or "\t" in text or "\r" in text


class _TreeBuilder:
    """Copies an lxml subtree, collapsing whitespace as turndown's collapseWhitespace does.

    turndown walks the DOM in document order and visits every element when it
    enters it and, if the element had child nodes, again when it leaves it.
    Blocks and <br> trim the trailing space of the previous text node; void
    elements protect the next leading space. Text inside <pre> is left alone.
    This runs once per node of every snapshot, so the steps are inlined.
    """

    def __init__(self) -> None:
        # The previous text node, as its parent and its index there (None: none).
        self.previous_parent: _Element | None = None
        self.previous_index = 0
        self.keep_leading_whitespace = False

    def build(self, container: etree._Element) -> _Element:
        root = _Element("#root", None, None)  # like turndown's root: matches no rule
        self._add_children(container, root, foreign=False)
        if self.previous_parent is not None:
            self._trim_previous_text()
            siblings = self.previous_parent.children
            if not siblings[self.previous_index]:  # turndown removes it if that emptied it
                del siblings[self.previous_index]
                for index in range(self.previous_index, len(siblings)):
                    child = siblings[index]
                    if type(child) is _Element:
                        child.index = index
        return root

    def _add_children(self, source: etree._Element, parent: _Element, foreign: bool) -> None:
        if source.text:
            self._add_text(source.text, parent)
        for child in source:
            tag = child.tag
            if isinstance(tag, str):
                element = self._new_element(child, tag, parent, foreign)
                self._visit(element)
                name = element.name
                if name == "PRE":
                    self._copy_raw(child, element, element.foreign)
                elif name != "TEMPLATE":  # a template's content is not in the DOM tree
                    had_children = bool(child.text) or len(child) > 0
                    self._add_children(
                        child, element, element.foreign and tag not in _HTML_INTEGRATION_POINTS
                    )
                    if had_children:
                        self._visit(element)
                _propagate_flags(element, parent)
            # comments and processing instructions are dropped, but the text
            # after them stays a separate text node
            if child.tail:
                self._add_text(child.tail, parent)

    @staticmethod
    def _new_element(source: etree._Element, tag: str, parent: _Element, foreign: bool) -> _Element:
        if tag[0] == "{":
            tag = _local_name(tag)
        foreign = _is_foreign(tag, foreign)
        element = _Element(tag if foreign else tag.upper(), source, parent)
        element.foreign = foreign
        element.index = len(parent.children)
        element.element_index = parent.element_count
        parent.element_count += 1
        parent.children.append(element)
        return element

    def _visit(self, element: _Element) -> None:
        effect = element.whitespace_effect
        if effect == _RESETS_LINE:
            if self.previous_parent is not None:
                self._trim_previous_text()
            self.previous_parent = None
            self.keep_leading_whitespace = False
        elif effect == _KEEPS_NEXT_SPACE:
            self.previous_parent = None
            self.keep_leading_whitespace = True
        elif self.previous_parent is not None:
            self.keep_leading_whitespace = False

    def _trim_previous_text(self) -> None:
        siblings = self.previous_parent.children
        text = siblings[self.previous_index]
        if text.endswith(" "):
            siblings[self.previous_index] = text[:-1]

    def _add_text(self, data: str, parent: _Element) -> None:
        text = _WHITESPACE_RUN.sub(" ", data) if _needs_collapsing(data) else data
        if (
            text[0] == " "
            and not self.keep_leading_whitespace
            and (
                self.previous_parent is None
                or self.previous_parent.children[self.previous_index].endswith(" ")
            )
        ):
            text = text[1:]
        if text:
            self.previous_index = _add_text_node(parent, text)
            self.previous_parent = parent

    def _copy_raw(self, source: etree._Element, parent: _Element, foreign: bool) -> None:
        """Copy <pre> content untouched: text as is, comments kept as nodes."""
        if source.text:
            _add_text_node(parent, source.text)
        for child in source:
            tag = child.tag
            if isinstance(tag, str):
                element = self._new_element(child, tag, parent, foreign)
                if element.name != "TEMPLATE":
                    self._copy_raw(child, element, element.foreign)
                _propagate_flags(element, parent)
            elif tag is etree.Comment:
                parent.children.append(_COMMENT)
            if child.tail:
                _add_text_node(parent, child.tail)


def _add_text_node(parent: _Element, data: str) -> int:
    """Append a text node; its index in the parent."""
    parent.children.append(data)
    if not parent.has_text and data.strip(_JS_WS):
        parent.has_text = True
    return len(parent.children) - 1


def _is_foreign(tag: str, parent_foreign: bool) -> bool:
    """Whether a browser would put this element in the SVG or MathML namespace."""
    if parent_foreign:
        return tag not in _BREAKS_OUT_OF_FOREIGN
    return tag in _FOREIGN_ROOTS


def _propagate_flags(element: _Element, parent: _Element) -> None:
    """Pass `has_text` and turndown's hasVoid / hasMeaningfulWhenBlank up one level."""
    if element.has_special_descendant or element.name in _VOID or element.name in _MEANINGFUL_WHEN_BLANK:
        parent.has_special_descendant = True
    if element.has_text:
        parent.has_text = True


def _local_name(tag: str) -> str:
    """lxml's `{namespace}name` (XHTML input) to the DOM's local name."""
    return tag.rpartition("}")[2]


# ---------------------------------------------------------------------------
# Escaping
# ---------------------------------------------------------------------------

# turndown's escape list, applied in order to each text node. The characters
# escaped anywhere never start an anchored pattern, so they can be escaped in
# one pass; then at most one anchored (string-start) pattern applies.
_ESCAPE_EVERYWHERE = ("\\", "*", "`", "[", "]", "_")  # backslash first: later escapes add backslashes
_ESCAPE_AT_START: tuple[tuple[re.Pattern[str], str], ...] = (
    (re.compile(r"\A-"), r"\\-"),
    (re.compile(r"\A\+ "), r"\\+ "),
    (re.compile(r"\A(=+)"), r"\\\1"),
    (re.compile(r"\A(#{1,6}) "), r"\\\1 "),
    (re.compile(r"\A~~~"), r"\\~~~"),
    (re.compile(r"\A>"), r"\\>"),
    (re.compile(r"\A([0-9]+)\. "), r"\1\\. "),
)
_STARTS_ANCHORED = frozenset("-+=#~>0123456789")


def _escape(text: str) -> str:
    for char in _ESCAPE_EVERYWHERE:
        if char in text:
            text = text.replace(char, "\\" + char)
    if text and text[0] in _STARTS_ANCHORED:
        for pattern, replacement in _ESCAPE_AT_START:
            escaped, count = pattern.subn(replacement, text, count=1)
            if count:
                return escaped
    return text


# ---------------------------------------------------------------------------
# Joining replacements
# ---------------------------------------------------------------------------


def _join(parts: list[str], replacement: str) -> None:
    """turndown's `join`: at most two newlines between the previous output and the next.

    `parts` is an accumulator whose last element alone may end with newlines,
    so joining stays linear (turndown 7.2.5 does the same).
    """
    if not parts:
        tail = ""
    elif parts[-1].endswith("\n") or replacement.startswith("\n"):
        tail = parts.pop()
    else:  # the common case, no newlines to merge
        if replacement:
            parts.append(replacement)
        return
    before = tail.rstrip("\n")
    after = replacement.lstrip("\n")
    newlines = max(len(tail) - len(before), len(replacement) - len(after))
    if before:
        parts.append(before)
    if newlines:
        parts.append("\n\n"[:newlines])
    if after:
        parts.append(after)


def _trim_newlines(text: str) -> str:
    return text.strip("\n")


# ---------------------------------------------------------------------------
# Conversion
# ---------------------------------------------------------------------------

_Rule = Callable[[str, _Element], str]


def _process(parent: _Element, in_code: bool) -> str:
    """turndown's `process`: the Markdown of a node's children, joined."""
    parts: list[str] = []
    for child in parent.children:
        if type(child) is str:
            replacement = child if in_code else _escape(child)
        elif type(child) is _Element:
            replacement = _replacement_for(child, in_code or child.name == "CODE")
        else:
            continue  # a comment inside <pre>: no output
        _join(parts, replacement)
    return "".join(parts)


def _replacement_for(element: _Element, in_code: bool) -> str:
    """turndown's `replacementForNode`: the element's rule, with its flanking whitespace outside."""
    if _is_blank(element):
        content = ""
        rule: _Rule = _blank_replacement
    else:
        content = _process(element, in_code)
        rule = _rule_for(element)
    if element.is_block:
        return rule(content, element)
    leading, trailing = _flanking_whitespace(element)
    if leading or trailing:
        content = _js_trim(content)
    return leading + rule(content, element) + trailing


def _rule_for(element: _Element) -> _Rule:
    """The first matching rule, in the order turndown tries OTA's rules."""
    name = element.name
    if name == "A" and element.get("href"):
        return _link
    if (name == "INPUT" or name in _TYPE_REFLECTING) and _is_task_checkbox(element):
        return _task_list_item
    rule = _RULES_BY_NAME.get(name)
    if rule is not None:
        return rule
    if name == "DIV" and _is_highlighted_code_block(element):
        return _highlighted_code_block
    if name == "PRE" and _first_child_is(element, "CODE"):
        return _indented_code_block
    if name == "CODE" and not _is_code_block(element):
        return _inline_code
    return _default_replacement


def _is_blank(element: _Element) -> bool:
    return (
        element.name not in _VOID
        and element.name not in _MEANINGFUL_WHEN_BLANK
        and not element.has_special_descendant
        and not element.has_text
    )


def _flanking_whitespace(element: _Element) -> tuple[str, str]:
    """turndown's flankingWhitespace for an inline element (7.2 edge-whitespace logic)."""
    text = element.text_content()
    if not text or (text[0] not in _JS_WS and text[-1] not in _JS_WS):
        return "", ""  # the common case: nothing to move out
    stripped_start = text.lstrip(_JS_WS)
    if not stripped_start:  # whitespace only: all of it is "leading"
        leading, trailing = text, ""
        leading_ascii = len(text) - len(text.lstrip(_ASCII_WS))
        if leading_ascii and _is_flanked(element.previous_sibling(), left=True):
            leading = text[leading_ascii:]
        return leading, trailing
    leading = text[: len(text) - len(stripped_start)]
    trailing = text[len(text.rstrip(_JS_WS)) :]
    if leading and leading[0] in _ASCII_WS and _is_flanked(element.previous_sibling(), left=True):
        leading = leading.lstrip(_ASCII_WS)
    if trailing and trailing[-1] in _ASCII_WS and _is_flanked(element.next_sibling(), left=False):
        trailing = trailing.rstrip(_ASCII_WS)
    return leading, trailing


def _is_flanked(sibling: _Node | None, left: bool) -> bool:
    if type(sibling) is str:
        text = sibling
    elif type(sibling) is _Element and not sibling.is_block:
        text = sibling.text_content()
    else:
        return False
    return text.endswith(" ") if left else text.startswith(" ")


def _first_child_is(element: _Element, name: str) -> bool:
    return (
        bool(element.children) and type(element.children[0]) is _Element and element.children[0].name == name
    )


def _is_task_checkbox(element: _Element) -> bool:
    """The task-list rule's `node.type === 'checkbox' && node.parentNode.nodeName === 'LI'`."""
    if element.parent is None or element.parent.name != "LI":
        return False
    if element.name == "INPUT":
        return (element.get("type") or "").lower() == "checkbox"
    return element.get("type") == "checkbox"


def _is_code_block(code: _Element) -> bool:
    parent = code.parent
    has_siblings = code.previous_sibling() is not None or code.next_sibling() is not None
    return parent is not None and parent.name == "PRE" and not has_siblings


_HIGHLIGHT = re.compile(r"highlight-(?:text|source)-([a-z0-9]+)")


def _is_highlighted_code_block(div: _Element) -> bool:
    return bool(_HIGHLIGHT.search(div.get("class") or "")) and _first_child_is(div, "PRE")


# --- CommonMark rules (turndown defaults) ----------------------------------


def _blank_replacement(content: str, element: _Element) -> str:
    return "\n\n" if element.is_block else ""


def _default_replacement(content: str, element: _Element) -> str:
    return "\n\n" + content + "\n\n" if element.is_block else content


def _paragraph(content: str, element: _Element) -> str:
    return "\n\n" + content + "\n\n"


def _line_break(content: str, element: _Element) -> str:
    return "  \n"


def _heading(content: str, element: _Element) -> str:
    level = int(element.name[1])
    if level < 3:  # setext
        underline = ("=" if level == 1 else "-") * _utf16_len(content)
        return "\n\n" + content + "\n" + underline + "\n\n"
    return "\n\n" + "#" * level + " " + content + "\n\n"


_LINE_START = re.compile(f"(?:^|(?<=[{_LINE_TERMINATORS}]))")


def _blockquote(content: str, element: _Element) -> str:
    return "\n\n" + _LINE_START.sub("> ", _trim_newlines(content)) + "\n\n"


def _list(content: str, element: _Element) -> str:
    parent = element.parent
    if parent is not None and parent.name == "LI" and element.is_last_element_child():
        return "\n" + content
    return "\n\n" + content + "\n\n"


def _list_item(content: str, element: _Element) -> str:
    prefix = "*   "
    parent = element.parent
    if parent is not None and parent.name == "OL":
        start = parent.get("start")
        index = element.element_index
        number = _js_number(start) + index if start else float(index + 1)
        prefix = _js_number_to_string(number) + ".  "
    ends_paragraph = content.endswith("\n")
    content = _trim_newlines(content) + ("\n" if ends_paragraph else "")
    content = content.replace("\n", "\n" + " " * len(prefix))
    return prefix + content + ("\n" if element.next_sibling() is not None else "")


def _indented_code_block(content: str, element: _Element) -> str:
    code = element.children[0]
    return "\n\n    " + code.text_content().replace("\n", "\n    ") + "\n\n"


def _horizontal_rule(content: str, element: _Element) -> str:
    return "\n\n* * *\n\n"


def _link(content: str, element: _Element) -> str:
    # OTA's "fix-anchors-containing-block-elements" rule: trimmed content.
    href = _escape_link_destination(element.get("href") or "")
    title = _escape_link_title(_clean_attribute(element.get("title")))
    title_part = ' "' + title + '"' if title else ""
    return "[" + _js_trim(content) + "](" + href + title_part + ")"


def _emphasis(content: str, element: _Element) -> str:
    return "_" + content + "_" if _js_trim(content) else ""


def _strong(content: str, element: _Element) -> str:
    return "**" + content + "**" if _js_trim(content) else ""


_NEWLINE_IN_CODE = re.compile(r"\r?\n|\r")
_NEEDS_CODE_PADDING = re.compile(r"^`|^ [^\n\r\u2028\u2029]*?[^ ][^\n\r\u2028\u2029]* $|`$")
_BACKTICK_RUN = re.compile(r"`+")


def _inline_code(content: str, element: _Element) -> str:
    if not content:
        return ""
    content = _NEWLINE_IN_CODE.sub(" ", content)
    padding = " " if _NEEDS_CODE_PADDING.search(content) else ""
    runs = set(_BACKTICK_RUN.findall(content))
    delimiter = "`"
    while delimiter in runs:
        delimiter += "`"
    return delimiter + padding + content + padding + delimiter


def _image(content: str, element: _Element) -> str:
    alt = _escape(_clean_attribute(element.get("alt")))
    src = _escape_link_destination(element.get("src") or "")
    title = _clean_attribute(element.get("title"))
    title_part = ' "' + _escape_link_title(title) + '"' if title else ""
    return "![" + alt + "](" + src + title_part + ")" if src else ""


_ATTRIBUTE_NEWLINES = re.compile(f"(?:\n+[{_JS_WS}]*)+")
_LINK_DESTINATION_SPECIALS = ("<", ">", "(", ")")


def _clean_attribute(value: str | None) -> str:
    return _ATTRIBUTE_NEWLINES.sub("\n", value) if value else ""


def _escape_link_destination(destination: str) -> str:
    escaped = destination
    for char in _LINK_DESTINATION_SPECIALS:
        if char in escaped:
            escaped = escaped.replace(char, "\\" + char)
    return "<" + escaped + ">" if " " in escaped else escaped


def _escape_link_title(title: str) -> str:
    return title.replace('"', '\\"')


# --- joplin-turndown-plugin-gfm 1.0.12 --------------------------------------


def _strikethrough(content: str, element: _Element) -> str:
    return "~" + content + "~"  # sic: the plugin uses a single tilde


def _task_list_item(content: str, element: _Element) -> str:
    checked = element.name == "INPUT" and element.get("checked") is not None
    return ("[x]" if checked else "[ ]") + " "


def _highlighted_code_block(content: str, element: _Element) -> str:
    match = _HIGHLIGHT.search(element.get("class") or "")
    language = match.group(1) if match else ""
    return "\n\n```" + language + "\n" + element.children[0].text_content() + "\n```\n\n"


def _table_section(content: str, element: _Element) -> str:
    return content


def _table(content: str, table: _Element) -> str:
    if _table_skipped(table):
        return content
    content = _NEWLINES.sub("\n", content)
    lines = _js_trim(content).split("\n")
    second_line_is_divider = lines[1].startswith("| ---") if len(lines) >= 2 else lines[0] == "| ---"
    column_count = _column_count(table)
    empty_header = ""
    if column_count and not second_line_is_divider:
        empty_header = "|" + "     |" * column_count + "\n" + "|" + " --- |" * column_count
    return "\n\n" + empty_header + content + "\n\n"


_NEWLINES = re.compile(r"\n+")


def _table_row(content: str, row: _Element) -> str:
    table = _parent_table(row)
    if _table_skipped(table):
        return content
    border_cells = ""
    if _is_heading_row(row):
        column_count = _column_count(table)
        for index in range(column_count):
            # sic: the plugin only reads the cell when the row has more child
            # nodes than the table has columns, so alignment is never used
            child = None if column_count >= len(row.children) else row.children[index]
            border = "---"
            if type(child) is _Element:
                align = (child.get("align") or "").lower()
                border = (
                    {"left": ":--", "right": "--:", "center": ":-:"}.get(align, border) if align else border
                )
                border_cells += _cell(border, child)
            else:
                border_cells += _cell(border, None, index)
    return "\n" + content + ("\n" + border_cells if border_cells else "")


def _table_cell(content: str, cell: _Element) -> str:
    if _table_skipped(_parent_table(cell)):
        return content
    return _cell(content, cell)


_PIPES = re.compile(r"\|+")


def _cell(content: str, cell: _Element | None, index: int | None = None) -> str:
    if index is None:
        index = cell.index
    prefix = "| " if index == 0 else " "
    text = _js_trim(content).replace("\n\r", "<br>").replace("\n", "<br>")
    text = _PIPES.sub(r"\\|", text)
    padding = 3 - _utf16_len(text)
    if padding > 0:
        text += " " * padding
    if cell is not None:
        text += " |    " * _extra_columns(cell.get("colspan") or "1")
    return prefix + text + " |"


# The plugin pads `for (i = 1; i < colspan; i++)` with no limit; an absurd colspan
# would hang or exhaust memory, so we stop at HTML's own limit.
_MAX_COLSPAN = 1000


def _extra_columns(colspan_attribute: str) -> int:
    colspan = _js_number(colspan_attribute)
    if math.isnan(colspan) or colspan <= 1:
        return 0
    return math.ceil(min(colspan, _MAX_COLSPAN)) - 1


def _parent_table(node: _Element) -> _Element | None:
    parent = node.parent
    while parent is not None and parent.name != "TABLE":
        parent = parent.parent
    return parent


def _table_rows(table: _Element) -> list[_Element]:
    """HTMLTableElement.rows: thead rows, then body rows, then tfoot rows."""
    head: list[_Element] = []
    body: list[_Element] = []
    foot: list[_Element] = []
    for child in table.element_children():
        if child.name == "TR":
            body.append(child)
        elif child.name in ("THEAD", "TBODY", "TFOOT"):
            rows = [row for row in child.element_children() if row.name == "TR"]
            {"THEAD": head, "TBODY": body, "TFOOT": foot}[child.name].extend(rows)
    return head + body + foot


def _column_count(table: _Element) -> int:
    return max((len(row.children) for row in _table_rows(table)), default=0)


def _table_skipped(table: _Element | None) -> bool:
    """Single-cell tables and tables holding tables are rendered cell by cell, as plain content."""
    if table is None:
        return True
    if table._table_skipped is None:
        rows = _table_rows(table)
        single_cell = len(rows) == 1 and len(rows[0].children) <= 1
        table._table_skipped = single_cell or _contains_table(table)
    return table._table_skipped


def _contains_table(element: _Element) -> bool:
    for child in element.children:
        if type(child) is _Element and (child.name == "TABLE" or _contains_table(child)):
            return True
    return False


def _is_heading_row(row: _Element) -> bool:
    parent = row.parent
    if parent is None:
        return False
    if parent.name == "THEAD":
        return True
    return (
        parent.children[0] is row
        and (parent.name == "TABLE" or _is_first_tbody(parent))
        and all(type(child) is _Element and child.name == "TH" for child in row.children)
    )


def _is_first_tbody(element: _Element) -> bool:
    if element.name != "TBODY":
        return False
    previous = element.previous_sibling()
    return previous is None or (
        type(previous) is _Element and previous.name == "THEAD" and _is_js_blank(previous.text_content())
    )


_RULES_BY_NAME: dict[str, _Rule] = {
    "THEAD": _table_section,
    "TBODY": _table_section,
    "TFOOT": _table_section,
    "TABLE": _table,
    "TR": _table_row,
    "TH": _table_cell,
    "TD": _table_cell,
    "DEL": _strikethrough,
    "S": _strikethrough,
    "STRIKE": _strikethrough,
    "P": _paragraph,
    "BR": _line_break,
    "H1": _heading,
    "H2": _heading,
    "H3": _heading,
    "H4": _heading,
    "H5": _heading,
    "H6": _heading,
    "BLOCKQUOTE": _blockquote,
    "UL": _list,
    "OL": _list,
    "LI": _list_item,
    "HR": _horizontal_rule,
    "EM": _emphasis,
    "I": _emphasis,
    "STRONG": _strong,
    "B": _strong,
    "IMG": _image,
}


# ---------------------------------------------------------------------------
# Public entry point
# ---------------------------------------------------------------------------

_LEADING_NEWLINES = "\t\r\n"


def to_markdown(container: etree._Element) -> str:
    """Markdown of `container`'s children, exactly as OTA's turndown set-up writes it.

    `container` (an lxml.html or plain lxml element) plays the part of
    turndown's root node, to which OTA passes a DocumentFragment of the
    selected clones: its own tag and attributes are ignored, and it is not
    modified. The result is trimmed, with no trailing newline; an empty string
    means the selection has no content. Raises ExtractError only for markup
    nested beyond what even OTA's recursive converter could handle.
    """
    try:
        return _convert(container)
    except RecursionError:
        pass
    # Deeply nested markup (a few hundred levels) needs more Python frames than
    # the default limit allows. The recursion only uses Python frames, which
    # live on the heap, so a higher limit is safe; it is restored afterwards.
    previous_limit = sys.getrecursionlimit()
    sys.setrecursionlimit(max(previous_limit, _DEEP_RECURSION_LIMIT))
    try:
        return _convert(container)
    except RecursionError as error:
        raise ExtractError(
            "The selected content is nested too deeply (some 10,000 levels) to be converted to Markdown"
        ) from error
    finally:
        sys.setrecursionlimit(previous_limit)


# About 4 frames per level of nesting: enough for some 10,000 levels.
_DEEP_RECURSION_LIMIT = 40_000


def _convert(container: etree._Element) -> str:
    root = _TreeBuilder().build(container)
    try:
        output = _process(root, in_code=False)
    finally:
        _release(root)
    return output.lstrip(_LEADING_NEWLINES).rstrip(_JS_WS)


def _release(root: _Element) -> None:
    """Break the parent/child reference cycles so the tree is freed at once.

    Left to Python's cycle collector, thousands of nodes per snapshot made the
    collector run often and walk them all: a third of the conversion time.
    """
    stack = [root]
    while stack:
        element = stack.pop()
        stack.extend(child for child in element.children if type(child) is _Element)
        element.children = []
