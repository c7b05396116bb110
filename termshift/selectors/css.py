"""CSS selectors with browser semantics, compiled to XPath for lxml.

Declarations are written against a browser's `querySelectorAll` (OTA runs them in jsdom,
contributors try them in Chromium's console). This module accepts what Chromium accepts,
matches what it matches, and rejects what it rejects with the position and the reason:

- tokenizing follows CSS Syntax Level 3, including its error recovery at the end of the
  input: an unclosed string, bracket or parenthesis is closed (`img[src^='data:image`);
- the grammar is Selectors Level 4 as Chromium ships it: compound selectors, the four
  combinators, attribute operators with the `i`/`s` flags (and HTML's legacy list of
  attributes whose values compare case-insensitively), `:is()`/`:where()` (forgiving),
  `:not()` with selector lists, `:has()` with relative selectors, the `*-child` and
  `*-of-type` families, `:nth-child(An+B of S)`, `:root`, `:scope`, `:empty`,
  `:any-link`, `:lang()`, `:dir()`, the form states that markup decides (`:checked`,
  `:disabled`, `:read-only`, `:placeholder-shown`, `:default`, …), and pseudo-elements
  (accepted, they match no element, as in `querySelectorAll`);
- a selector compiles to one XPath 1.0 expression evaluated by libxml2, so matching runs
  at C speed and returns elements in document order. The only part XPath cannot express,
  counting the siblings of the same type as an element whose type the selector does not
  name (`.wrapper:nth-of-type(2)`), is a small extension function.

Namespaces aside: `*|E` is `E`, `|E` matches nothing (HTML elements have a namespace),
and any other prefix is rejected as undeclared, as in `querySelectorAll`.
Dynamic states (`:hover`, `:focus`, `:visited`, `:target`, …) are accepted and never match:
a fetched page has no pointer, focus, history or fragment.

Two deliberate differences from Chromium: the `s` attribute flag is accepted (Selectors 4;
Firefox, Safari and jsdom have it, Chromium not yet), and `:valid`, `:invalid`, `:in-range`,
`:out-of-range` and `:indeterminate` are rejected with that reason: they depend on form
validation, which is not run here, and a clear error is better than a wrong match.
Class and ID selectors are case-sensitive, as in a standards-mode page (browsers ignore
their case on quirks-mode pages). tests/test_selectors_browser.py holds the engine to
Chromium's results on real pages.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from lxml import etree

from termshift.errors import TermshiftError

__all__ = ["SelectorSyntaxError", "to_xpath", "compile_xpath"]


class SelectorSyntaxError(TermshiftError, ValueError):
    """A selector a browser rejects: `reason` at `position` (0-based index in the string)."""

    def __init__(self, reason: str, position: int) -> None:
        super().__init__(f"{reason} at character {position + 1}")
        self.reason = reason
        self.position = position


# --- Tokens (CSS Syntax Level 3, what selectors need) ------------------------------------

IDENT, FUNCTION, HASH, STRING, BAD_STRING, NUMBER, DIMENSION, PERCENTAGE = (
    "ident", "function", "hash", "string", "bad-string", "number", "dimension", "percentage")
WS, DELIM, COMMA, COLON, LPAREN, RPAREN, LBRACKET, RBRACKET, EOF = (
    "whitespace", "delim", ",", ":", "(", ")", "[", "]", "end of input")


@dataclass(slots=True)
class Token:
    type: str
    value: str
    start: int
    end: int
    is_id: bool = False  # a HASH whose name is an identifier (usable as an ID selector)

    def describe(self) -> str:
        if self.type == DELIM and not self.value.isprintable():
            return f"U+{ord(self.value):04X}"
        if self.type in (IDENT, FUNCTION, HASH, STRING, NUMBER, DIMENSION, PERCENTAGE, DELIM):
            return f"'{self.value}'" if self.type != FUNCTION else f"'{self.value}('"
        return self.type if self.type in (WS, EOF) else f"'{self.type}'"


_WHITESPACE = " \t\n\r\f"
_HEX = "0123456789abcdefABCDEF"


def _is_name_start(char: str) -> bool:
    return char.isascii() and (char.isalpha() or char == "_") or (char != "" and not char.isascii())


def _is_name(char: str) -> bool:
    return _is_name_start(char) or char.isdigit() and char.isascii() or char == "-"


class _Tokenizer:
    def __init__(self, css: str) -> None:
        self.css = css
        self.pos = 0

    def peek(self, offset: int = 0) -> str:
        index = self.pos + offset
        return self.css[index] if index < len(self.css) else ""

    def valid_escape(self, offset: int = 0) -> bool:
        return self.peek(offset) == "\\" and self.peek(offset + 1) not in ("\n", "\r", "\f")

    def starts_ident(self, offset: int = 0) -> bool:
        first = self.peek(offset)
        if first == "-":
            second = self.peek(offset + 1)
            return _is_name_start(second) or second == "-" or self.valid_escape(offset + 1)
        return _is_name_start(first) or self.valid_escape(offset)

    def starts_number(self) -> bool:
        first, second = self.peek(), self.peek(1)
        if first in "+-" and first:
            return second.isdigit() and second.isascii() or second == "." and self.peek(2).isdigit()
        if first == ".":
            return second.isdigit() and second.isascii()
        return first != "" and first.isdigit() and first.isascii()

    def escape(self) -> str:
        self.pos += 1  # the backslash
        char = self.peek()
        if char == "":
            return "\ufffd"
        if char in _HEX:
            digits = ""
            while len(digits) < 6 and self.peek() and self.peek() in _HEX:
                digits += self.peek()
                self.pos += 1
            if self.peek() and self.peek() in _WHITESPACE:
                self.pos += 2 if self.css.startswith("\r\n", self.pos) else 1
            code = int(digits, 16)
            return "\ufffd" if code == 0 or 0xD800 <= code <= 0xDFFF or code > 0x10FFFF else chr(code)
        self.pos += 1
        return char

    def name(self) -> str:
        result = []
        while True:
            char = self.peek()
            if char and _is_name(char):
                result.append(char)
                self.pos += 1
            elif self.valid_escape():
                result.append(self.escape())
            else:
                return "".join(result)

    def string(self, quote: str) -> Token:
        start = self.pos
        self.pos += 1
        result = []
        while True:
            char = self.peek()
            if char == "" or char == quote:  # an unclosed string is closed at the end of input
                self.pos += 1 if char else 0
                return Token(STRING, "".join(result), start, self.pos)
            if char in "\n\r\f":
                return Token(BAD_STRING, "".join(result), start, self.pos)
            if char == "\\":
                following = self.peek(1)
                if following == "":
                    self.pos += 1
                elif following in "\n\f":
                    self.pos += 2
                elif following == "\r":
                    self.pos += 3 if self.peek(2) == "\n" else 2
                else:
                    result.append(self.escape())
                continue
            result.append(char)
            self.pos += 1

    def numeric(self) -> Token:
        start = self.pos
        match = re.compile(r"[+-]?(?:\d+(?:\.\d+)?|\.\d+)(?:[eE][+-]?\d+)?").match(self.css, self.pos)
        assert match is not None
        self.pos = match.end()
        if self.starts_ident():
            return Token(DIMENSION, self.css[start:self.pos] + self.name(), start, self.pos)
        if self.peek() == "%":
            self.pos += 1
            return Token(PERCENTAGE, self.css[start:self.pos], start, self.pos)
        return Token(NUMBER, self.css[start:self.pos], start, self.pos)

    def tokens(self) -> list[Token]:
        tokens: list[Token] = []
        simple = {",": COMMA, ":": COLON, "(": LPAREN, ")": RPAREN, "[": LBRACKET, "]": RBRACKET}
        while self.pos < len(self.css):
            start, char = self.pos, self.peek()
            if self.css.startswith("/*", self.pos):
                end = self.css.find("*/", self.pos + 2)
                self.pos = len(self.css) if end < 0 else end + 2
            elif char in _WHITESPACE:
                while self.peek() and self.peek() in _WHITESPACE:
                    self.pos += 1
                tokens.append(Token(WS, " ", start, self.pos))
            elif char in "\"'":
                tokens.append(self.string(char))
            elif char == "#" and (_is_name(self.peek(1)) or self.valid_escape(1)):
                self.pos += 1
                is_id = self.starts_ident()
                tokens.append(Token(HASH, self.name(), start, self.pos, is_id))
            elif self.starts_number():
                tokens.append(self.numeric())
            elif self.starts_ident():
                name = self.name()
                if self.peek() == "(":
                    self.pos += 1
                    tokens.append(Token(FUNCTION, name, start, self.pos))
                else:
                    tokens.append(Token(IDENT, name, start, self.pos))
            elif char in simple:
                self.pos += 1
                tokens.append(Token(simple[char], char, start, self.pos))
            else:
                self.pos += 1
                tokens.append(Token(DELIM, char, start, self.pos))
        return tokens


def tokenize(css: str) -> list[Token]:
    """The tokens of `css`, with the blocks left open at the end of input closed, as CSS
    error recovery does; the list ends with an EOF token."""
    # CSS's preprocessing: U+0000 becomes U+FFFD (lone surrogates too: no string can hold them).
    tokens = _Tokenizer(_NOT_A_CHARACTER.sub("\ufffd", css)).tokens()
    stack: list[str] = []
    for token in tokens:
        _closes_block(token, stack)
    end = len(css)
    tokens.extend(Token(closer, closer, end, end) for closer in reversed(stack))
    tokens.append(Token(EOF, "", end, end))
    return tokens


# --- Selectors ----------------------------------------------------------------------------


@dataclass(slots=True)
class Compound:
    """A compound selector: an optional type, then conditions all of which must hold."""

    tag: str | None = None  # None: any element
    conditions: list[str] = field(default_factory=list)  # XPath predicates on the element
    never: bool = False  # a pseudo-element, or a namespace no element has: matches nothing


@dataclass(slots=True)
class Complex:
    """Compounds joined by combinators; `steps[0][0]` is the leading combinator of a
    relative selector (`:has(> p)`), None otherwise."""

    steps: list[tuple[str | None, Compound]]

    @property
    def never(self) -> bool:
        return any(compound.never for _, compound in self.steps)


_PSEUDO_ELEMENTS = {
    "after", "before", "backdrop", "cue", "file-selector-button", "first-letter", "first-line",
    "grammar-error", "marker", "placeholder", "selection", "spelling-error", "target-text",
    "details-content", "search-text", "scroll-marker", "scroll-marker-group", "column",
    "checkmark", "picker-icon", "view-transition",
}
# Functional pseudo-elements, and what their argument may be (None: anything).
_PSEUDO_ELEMENT_FUNCTIONS: dict[str, set[str] | None] = {
    "cue": None, "highlight": None, "part": None, "slotted": None, "view-transition-group": None,
    "view-transition-image-pair": None, "view-transition-old": None, "view-transition-new": None,
    "picker": {"select"},
    "scroll-button": {"*", "up", "down", "left", "right", "block-start", "block-end", "inline-start", "inline-end"},
}
_LEGACY_PSEUDO_ELEMENTS = {"after", "before", "first-letter", "first-line"}

# States a fetched page never is in, and scrollbar states no element has: accepted, they
# match no element. (The list is Chromium's: it rejects a name it does not know.)
_NEVER_PSEUDO_CLASSES = {
    "active", "active-view-transition", "autofill", "-webkit-autofill", "focus", "focus-visible",
    "focus-within", "hover", "visited", "target", "target-current", "fullscreen", "modal",
    "picture-in-picture", "popover-open", "user-invalid", "user-valid", "current", "past", "future",
    "host", "xr-overlay", "-webkit-full-screen", "-webkit-full-screen-ancestor", "-webkit-full-page-media",
    "-webkit-drag", "open", "interest-source", "interest-target", "window-inactive", "horizontal",
    "vertical", "decrement", "increment", "start", "end", "double-button", "single-button", "no-button",
    "corner-present",
}
_NEVER_PSEUDO_CLASS_FUNCTIONS = {"host", "host-context", "state", "active-view-transition-type"}
# Pseudo-classes that depend on constraint validation, which Termshift does not evaluate:
# rejected with that reason rather than matched wrongly.
_UNSUPPORTED_PSEUDO_CLASSES = {"valid", "invalid", "in-range", "out-of-range", "indeterminate"}

# HTML's attributes whose values selectors compare ASCII case-insensitively (HTML, §4.16.2
# "Case-sensitivity of selectors"), unless the selector says `s`.
CASE_INSENSITIVE_ATTRIBUTES = frozenset(["accept", "accept-charset", "align", "alink", "axis", "bgcolor", "charset", "checked", "clear", "codetype", "color", "compact", "declare", "defer", "dir", "direction", "disabled", "enctype", "face", "frame", "hreflang", "http-equiv", "lang", "language", "link", "media", "method", "multiple", "nohref", "noresize", "noshade", "nowrap", "readonly", "rel", "rev", "rules", "scope", "scrolling", "selected", "shape", "target", "text", "type", "valign", "valuetype", "vlink"])

_NOT_A_CHARACTER = re.compile("[\x00\ud800-\udfff]")
_NOT_IN_XML = re.compile("[^\t\n\r\x20-\ud7ff\ue000-\ufffd\U00010000-\U0010ffff]")
_UPPER = "ABCDEFGHIJKLMNOPQRSTUVWXYZ"
_LOWER = "abcdefghijklmnopqrstuvwxyz"
_SAFE_NAME = re.compile(r"^[a-zA-Z_][a-zA-Z0-9_.-]*$")
_AN_PLUS_B = re.compile(r"^([+-]?)(\d*)n(?:\s*([+-])\s*(\d+))?$", re.IGNORECASE)
_INTEGER = re.compile(r"^[+-]?\d+$")
_FORM_FIELDS = "(self::input or self::select or self::textarea or self::button)"


def _ascii_lower(text: str) -> str:
    return text.translate(str.maketrans(_UPPER, _LOWER))


def literal(text: str) -> str:
    """`text` as an XPath 1.0 string literal.

    A character XML cannot hold (a control character, U+FFFE) cannot be in the parsed page
    either, so it becomes a private-use character no page holds: the comparison fails, as
    it should, instead of the XPath failing to compile.
    """
    text = _NOT_IN_XML.sub("\U0010FFFD", text)
    if "'" not in text:
        return f"'{text}'"
    if '"' not in text:
        return f'"{text}"'
    return "concat(" + ", \"'\", ".join(f"'{part}'" for part in text.split("'")) + ")"


class _Parser:
    """Recursive descent over the tokens of one selector (or of a function's argument)."""

    def __init__(self, tokens: list[Token], css: str, *, in_has: bool = False, nested: bool = False) -> None:
        self.tokens = tokens
        self.css = css
        self.index = 0
        self.in_has = in_has  # inside :has(), which cannot hold another :has()
        self.nested = nested  # inside a pseudo-class's selector list, which cannot hold pseudo-elements

    # token helpers
    def peek(self, offset: int = 0) -> Token:
        return self.tokens[min(self.index + offset, len(self.tokens) - 1)]

    def next(self) -> Token:
        token = self.peek()
        self.index += 1
        return token

    def skip_ws(self) -> bool:
        skipped = False
        while self.peek().type == WS:
            self.index += 1
            skipped = True
        return skipped

    def error(self, reason: str, token: Token | None = None) -> SelectorSyntaxError:
        return SelectorSyntaxError(reason, (token or self.peek()).start)

    def block(self) -> list[Token]:
        """The tokens up to the `)` that closes the function just read, and past it."""
        start, closers = self.index, []
        while True:
            token = self.next()
            if _closes_block(token, closers) and token.type == RPAREN:
                return [*self.tokens[start:self.index - 1], Token(EOF, "", token.start, token.start)]
            if token.type == EOF:  # unreachable: tokenize() closed every block
                raise self.error("expected ')'", token)

    # grammar
    def selector_list(self, *, relative: bool = False, forgiving: bool = False) -> list[Complex]:
        """`a, b > c`; a forgiving list (`:is()`) drops the selectors that are not valid."""
        result: list[Complex] = []
        while True:
            start = self.index
            try:
                result.append(self.complex(relative=relative))
                self.skip_ws()
                if self.peek().type not in (COMMA, EOF):
                    raise self.error(f"unexpected {self.peek().describe()}")
            except SelectorSyntaxError:
                if not forgiving:
                    raise
                self.index = start
                self._skip_to_comma()
            token = self.next()
            if token.type == EOF:
                return result

    def _skip_to_comma(self) -> None:
        closers: list[str] = []
        while self.peek().type != EOF:
            token = self.peek()
            _closes_block(token, closers)
            if token.type == COMMA and not closers:
                return
            self.index += 1

    def combinator(self) -> str | None:
        token = self.peek()
        if token.type == DELIM and token.value in ">+~":
            self.index += 1
            return token.value
        return None

    def complex(self, *, relative: bool = False) -> Complex:
        self.skip_ws()
        leading = self.combinator() if relative else None
        if relative:
            leading = leading or " "
            self.skip_ws()
        steps = [(leading, self.compound())]
        while True:
            spaced = self.skip_ws()
            if self.peek().type in (COMMA, EOF):
                return Complex(steps)
            combinator = self.combinator()
            if combinator:
                self.skip_ws()
            elif spaced:
                combinator = " "
            else:
                raise self.error(f"unexpected {self.peek().describe()}")
            if self.peek().type in (COMMA, EOF):
                raise self.error(f"expected a selector after the combinator '{combinator}'")
            steps.append((combinator, self.compound()))

    def compound(self) -> Compound:
        compound = Compound()
        start = self.peek()
        self.type_selector(compound)
        after_pseudo_element: bool | str = False
        while True:
            token = self.peek()
            if token.type == HASH:
                if not token.is_id:
                    raise self.error(_bad_id_reason(token.value), token)
                self._no_pseudo_element(after_pseudo_element, token)
                self.index += 1
                compound.conditions.append(f"@id = {literal(token.value)}")
            elif token.type == DELIM and token.value == ".":
                self._no_pseudo_element(after_pseudo_element, token)
                self.index += 1
                name = self.next()
                if name.type != IDENT:
                    raise self.error(f"expected a class name after '.', got {name.describe()}", name)
                compound.conditions.append(_class_condition(name.value))
            elif token.type == LBRACKET:
                self._no_pseudo_element(after_pseudo_element, token)
                self.index += 1
                condition = self.attribute()
                compound.conditions.append(condition)
            elif token.type == COLON:
                self.index += 1
                if self.nested and (self.peek().type == COLON or self._is_legacy_pseudo_element()):
                    raise self.error("a pseudo-element cannot be used inside a pseudo-class", token)
                if self.peek().type == COLON:
                    self.index += 1
                    after_pseudo_element = self.pseudo_element()
                    compound.never = True
                elif self._legacy_pseudo_element():
                    compound.never = after_pseudo_element = True
                else:
                    condition = self.pseudo_class(compound, after_pseudo_element)
                    if condition is not None:
                        compound.conditions.append(condition)
            else:
                break
        if self.peek() is start:
            raise self.error(f"expected a selector, got {start.describe()}", start)
        return compound

    def _no_pseudo_element(self, after_pseudo_element: bool | str, token: Token) -> None:
        if after_pseudo_element:
            raise self.error("nothing but a pseudo-class can follow a pseudo-element", token)

    def type_selector(self, compound: Compound) -> None:
        """`E`, `*`, `ns|E`, `*|E`, `|E`: the type and its namespace, if the compound has one."""
        first, second = self.peek(), self.peek(1)
        namespace: str | None = None
        if _is_delim(first, "|") and not _is_equals(second, first):
            namespace, self.index = "", self.index + 1
        elif (first.type == IDENT or _is_delim(first, "*")) and _is_delim(second, "|") \
                and second.start == first.end and not _is_equals(self.peek(2), second):
            namespace, self.index = first.value, self.index + 2
        name = self.peek()
        if name.type == IDENT or _is_delim(name, "*"):
            self.index += 1
        elif namespace is not None:
            raise self.error(f"expected an element name after the namespace, got {name.describe()}", name)
        else:
            return
        if namespace not in (None, "*", ""):
            raise self.error(f"the namespace prefix '{namespace}' is not declared", first)
        if namespace == "":
            compound.never = True  # `|E`: no HTML element is without a namespace
        if name.type == IDENT:
            compound.tag = _ascii_lower(name.value)

    def attribute(self) -> str:
        """`[name]`, `[name op value flag]`, after the `[`; the XPath condition."""
        self.skip_ws()
        token = self.next()
        if _is_delim(token, "*") and _is_delim(self.peek(), "|"):  # `[*|name]`: any namespace
            self.index += 1
            token = self.next()
        elif _is_delim(token, "|"):  # `[|name]`: no namespace, as HTML attributes are
            token = self.next()
        elif token.type == IDENT and _is_delim(self.peek(), "|") and not _is_equals(self.peek(1), self.peek()):
            raise self.error(f"the namespace prefix '{token.value}' is not declared", token)
        if token.type != IDENT:
            raise self.error(f"expected an attribute name, got {token.describe()}", token)
        name = _ascii_lower(token.value)
        rest = self._attribute_rest()
        attribute = f"@{name}" if _SAFE_NAME.match(name) else f"@*[name() = {literal(name)}]"
        if rest is None:
            return attribute
        operator, value, flag = rest
        insensitive = flag == "i" or flag is None and name in CASE_INSENSITIVE_ATTRIBUTES
        if not insensitive:
            return _attribute_condition(attribute, attribute, operator, value)
        subject = f"translate({attribute}, '{_UPPER}', '{_LOWER}')"
        return f"{attribute} and ({_attribute_condition(attribute, subject, operator, _ascii_lower(value))})"

    def _attribute_rest(self) -> tuple[str, str, str | None] | None:
        self.skip_ws()
        token = self.next()
        if token.type == RBRACKET:
            return None
        if token.type != DELIM:
            raise self.error(f"expected an attribute operator or ']', got {token.describe()}", token)
        if token.value == "=":
            operator = "="
        elif token.value in "~|^$*" and _is_equals(self.peek(), token):
            operator = token.value + "="
            self.index += 1
        else:
            raise self.error(f"expected an attribute operator or ']', got {token.describe()}", token)
        self.skip_ws()
        value = self.next()
        if value.type not in (IDENT, STRING):
            if value.type == BAD_STRING:
                raise self.error("a string cannot hold an unescaped line break", value)
            raise self.error(f"expected an attribute value, got {value.describe()}", value)
        self.skip_ws()
        token = self.next()
        flag = None
        if token.type == IDENT:
            flag = _ascii_lower(token.value)
            if flag not in ("i", "s"):
                raise self.error(f"expected the flag 'i' or 's', got {token.describe()}", token)
            self.skip_ws()
            token = self.next()
        if token.type != RBRACKET:
            raise self.error(f"expected ']', got {token.describe()}", token)
        return operator, value.value, flag

    def _is_legacy_pseudo_element(self) -> bool:
        token = self.peek()
        return token.type == IDENT and _ascii_lower(token.value) in _LEGACY_PSEUDO_ELEMENTS

    def _legacy_pseudo_element(self) -> bool:
        if self._is_legacy_pseudo_element():
            self.index += 1
            return True
        return False

    def pseudo_element(self) -> bool | str:
        """Reads `::name`; what may follow it: "webkit" (`::-webkit-scrollbar:hover`), or
        True (nothing but the end of the compound)."""
        token = self.next()
        name = _ascii_lower(token.value)
        if token.type == IDENT and name.startswith("-webkit-"):
            return "webkit"
        if token.type == IDENT and name in _PSEUDO_ELEMENTS:
            return True
        if token.type == FUNCTION and name in _PSEUDO_ELEMENT_FUNCTIONS:
            allowed = _PSEUDO_ELEMENT_FUNCTIONS[name]
            argument = [t for t in self.block() if t.type not in (WS, EOF)]
            if allowed is None or len(argument) == 1 and _ascii_lower(argument[0].value) in allowed:
                return True
            raise self.error(f"'::{token.value}()' does not take this argument", token)
        if token.type in (IDENT, FUNCTION):
            raise self.error(f"unknown pseudo-element '::{token.value}'", token)
        raise self.error(f"expected a pseudo-element name after '::', got {token.describe()}", token)

    def pseudo_class(self, compound: Compound, after_pseudo_element: bool | str) -> str | None:
        token = self.next()
        name = _ascii_lower(token.value)
        if token.type == IDENT:
            if after_pseudo_element is True or after_pseudo_element and name not in _NEVER_PSEUDO_CLASSES:
                raise self.error(f"':{token.value}' cannot follow this pseudo-element", token)
            condition = _PSEUDO_CLASSES.get(name)
            if condition is not None:
                return condition
            if name in ("first-of-type", "last-of-type", "only-of-type"):
                first = _nth_condition(compound.tag, 0, 1, kind="type")
                last = _nth_condition(compound.tag, 0, 1, kind="type", last=True)
                return {"first-of-type": first, "last-of-type": last}.get(name, f"{first} and {last}")
            if name in _NEVER_PSEUDO_CLASSES:
                return "false()"
            if name in _UNSUPPORTED_PSEUDO_CLASSES:
                raise self.error(f"':{token.value}' depends on form validation, which Termshift does not evaluate",
                                 token)
            raise self.error(f"unknown pseudo-class ':{token.value}'", token)
        if token.type != FUNCTION:
            raise self.error(f"expected a pseudo-class name after ':', got {token.describe()}", token)
        if after_pseudo_element:
            raise self.error(f"':{token.value}()' cannot follow a pseudo-element", token)
        argument = self.block()
        inner = _Parser(argument, self.css, in_has=self.in_has, nested=True)
        if name in ("is", "where", "-webkit-any"):
            selectors = [s for s in inner.selector_list(forgiving=True) if not s.never]
            return _any_condition(selectors)
        if name == "not":
            selectors = [s for s in inner.selector_list() if not s.never]
            condition = _any_condition(selectors)
            return "true()" if condition == "false()" else f"not({condition})"
        if name == "has":
            if self.in_has:
                raise self.error("':has()' cannot be nested in ':has()'", token)
            inner.in_has = True
            selectors = [s for s in inner.selector_list(relative=True) if not s.never]
            return " or ".join(f"({_relative_path(selector)})" for selector in selectors) or "false()"
        if name in ("nth-child", "nth-last-child", "nth-of-type", "nth-last-of-type"):
            return self.nth(name, argument, compound, token)
        if name == "lang":
            return self.lang(argument, token)
        if name == "dir":
            inner.skip_ws()
            value = inner.next()
            inner.skip_ws()
            if value.type != IDENT or inner.peek().type != EOF:
                raise self.error("':dir()' takes 'ltr' or 'rtl'", token)
            direction = _ascii_lower(value.value)
            if direction not in ("ltr", "rtl"):
                return "false()"
            # The nearest `dir` that is valid decides; `auto` (direction from the text) counts as ltr.
            value = "translate(@dir, 'LTRAUO', 'ltrauo')"
            found = f"ancestor-or-self::*[{value} = 'ltr' or {value} = 'rtl' or {value} = 'auto'][1]"
            is_rtl = f"{found}[{value} = 'rtl']"
            return is_rtl if direction == "rtl" else f"not({is_rtl})"
        if name in _NEVER_PSEUDO_CLASS_FUNCTIONS:
            return "false()"
        raise self.error(f"unknown pseudo-class ':{token.value}()'", token)

    def nth(self, name: str, argument: list[Token], compound: Compound, token: Token) -> str:
        of_index = next((i for i, t in enumerate(argument) if t.type == IDENT and _ascii_lower(t.value) == "of"),
                        None)
        series_tokens = argument[:of_index] if of_index is not None else argument[:-1]
        series_tokens = [t for t in series_tokens if t.type != EOF]
        text = self.css[series_tokens[0].start:series_tokens[-1].end].strip() if series_tokens else ""
        series = _parse_an_plus_b(text)
        if series is None:
            raise self.error(f"':{name}()' needs an An+B expression, not '{text}'", token)
        last = "last" in name
        if of_index is None:
            return _nth_condition(compound.tag, *series, last=last, kind="type" if "type" in name else "all")
        if "type" in name:
            raise self.error(f"':{name}()' takes no 'of S'", argument[of_index])
        if of_index == 0 or argument[of_index - 1].type != WS:
            raise self.error(f"':{name}()' needs an An+B expression before 'of'", argument[of_index])
        inner = _Parser(argument[of_index + 1:], self.css, in_has=self.in_has, nested=True)
        selectors = [s for s in inner.selector_list() if not s.never]
        condition = _any_condition(selectors)
        return f"({condition}) and ({_nth_condition(None, *series, last=last, kind=condition)})"

    def lang(self, argument: list[Token], token: Token) -> str:
        """`:lang(en)`: Chromium takes one identifier (no strings, lists or wildcards yet)."""
        values = [t for t in argument if t.type not in (WS, EOF)]
        if len(values) != 1 or values[0].type != IDENT:
            raise self.error("':lang()' takes one language code", token)
        lang = f"translate(ancestor-or-self::*[@lang][1]/@lang, '{_UPPER}', '{_LOWER}')"
        return f"starts-with(concat({lang}, '-'), {literal(_ascii_lower(values[0].value) + '-')})"


def _bad_id_reason(name: str) -> str:
    reason = f"an ID selector must be an identifier, and '#{name}' is not"
    if name[:1].isdigit():  # the usual case: an ID starting with a digit, which CSS must escape
        reason += f" (write it '#\\3{name[0]} {name[1:]}')"
    return reason


def _closes_block(token: Token, closers: list[str]) -> bool:
    """Track the blocks `token` opens or closes (a stray closer is a plain token, as in CSS);
    True when it is a `)` or `]` that is not inside a block `closers` opened."""
    if token.type in (FUNCTION, LPAREN):
        closers.append(RPAREN)
    elif token.type == LBRACKET:
        closers.append(RBRACKET)
    elif token.type in (RPAREN, RBRACKET):
        if closers and closers[-1] == token.type:
            closers.pop()
            return False
        return not closers
    return False


def _is_delim(token: Token, value: str) -> bool:
    return token.type == DELIM and token.value == value


def _is_equals(token: Token, previous: Token) -> bool:
    return token.type == DELIM and token.value == "=" and token.start == previous.end


def _class_condition(name: str) -> str:
    if not name or any(char in _WHITESPACE for char in name):
        return "false()"
    # The plain `contains` first: cheap, and false for most elements.
    return (f"@class and contains(@class, {literal(name)}) "
            f"and contains(concat(' ', normalize-space(@class), ' '), {literal(f' {name} ')})")


def _attribute_condition(attribute: str, subject: str, operator: str, value: str) -> str:
    if operator == "=":
        return f"{subject} = {literal(value)}"
    if operator == "~=":
        if not value or any(char in _WHITESPACE for char in value):
            return "false()"
        return (f"contains({subject}, {literal(value)}) "
                f"and contains(concat(' ', normalize-space({subject}), ' '), {literal(f' {value} ')})")
    if operator == "|=":
        return f"({subject} = {literal(value)} or starts-with({subject}, {literal(value + '-')}))"
    if not value:
        return "false()"  # `^=`, `$=` and `*=` with an empty value match nothing
    if operator == "^=":
        return f"{attribute} and starts-with({subject}, {literal(value)})"
    if operator == "$=":
        return f"{attribute} and substring({subject}, string-length({subject}) - {len(value) - 1}) = {literal(value)}"
    return f"{attribute} and contains({subject}, {literal(value)})"


def _parse_an_plus_b(text: str) -> tuple[int, int] | None:
    lowered = _ascii_lower(text)
    if lowered == "odd":
        return 2, 1
    if lowered == "even":
        return 2, 0
    if _INTEGER.match(text):
        return 0, int(text)
    match = _AN_PLUS_B.match(text)
    if not match:
        return None
    sign, digits, operator, offset = match.groups()
    a = int(digits) if digits else 1
    b = int(offset) if offset else 0
    return (-a if sign == "-" else a), (-b if operator == "-" else b)


def _nth_condition(tag: str | None, a: int, b: int, *, kind: str, last: bool = False) -> str:
    """The element is the (an+b)-th of its siblings counted from the start (or the end):
    `kind` "all" counts every sibling, "type" those of its type (`tag`, when the selector
    names it), anything else is the condition the counted siblings meet (`of S`)."""
    axis = "following-sibling" if last else "preceding-sibling"
    if kind == "type" and tag is None:
        count = f"ts:same-type-{'after' if last else 'before'}()"
    elif kind == "type":
        count = f"count({axis}::{tag})" if _SAFE_NAME.match(tag) else \
            f"count({axis}::*[name() = {literal(tag)}])"
    elif kind == "all":
        count = f"count({axis}::*)"
    else:
        count = f"count({axis}::*[{kind}])"
    # The position is count + 1 = a*n + b for some n >= 0.
    if a == 0:
        return f"{count} = {b - 1}" if b >= 1 else "false()"
    conditions = []
    if a > 0:
        if b - 1 > 0:
            conditions.append(f"{count} >= {b - 1}")
    else:
        if b - 1 < 0:
            return "false()"
        conditions.append(f"{count} <= {b - 1}")
    if abs(a) != 1:
        conditions.append(f"({count} - {b - 1}) mod {abs(a)} = 0")
    return " and ".join(conditions) or "true()"


_CHECKED_INPUT = ("self::input and @checked and (translate(@type, 'CHEKBXRADIO', 'chekbxradio') = 'checkbox'"
                  " or translate(@type, 'CHEKBXRADIO', 'chekbxradio') = 'radio')")
# An option is selected (HTML's selectedness): in a drop-down `select`, the last one marked
# `selected`, or the first one not disabled when none is; elsewhere, any one marked `selected`.
_IN_SELECT = "count(preceding::option[{0}]) - count(ancestor::select[1]/preceding::option[{0}])"
_SELECTED_OPTION = (
    "(not(ancestor::select[1][not(@multiple) and not(@size > 1)]) and @selected)"
    " or (ancestor::select[1][not(@multiple) and not(@size > 1)] and ("
    f"(@selected and {_IN_SELECT.format('@selected')} + 1 = count(ancestor::select[1]//option[@selected]))"
    " or (not(ancestor::select[1]//option[@selected]) and not(@disabled)"
    f" and {_IN_SELECT.format('not(@disabled)')} = 0)))"
)

# Input types whose value the user edits as text (`readonly` and `placeholder` apply).
_TEXT_INPUT = ("(self::input and (not(@type) or not(contains(' hidden checkbox radio file submit image reset button"
               f" range color ', concat(' ', translate(@type, '{_UPPER}', '{_LOWER}'), ' ')))))")
_READ_WRITE = (f"({_TEXT_INPUT} and not(@readonly) and not(@disabled))"
               " or (self::textarea and not(@readonly) and not(@disabled))"
               " or ancestor-or-self::*[@contenteditable][1][@contenteditable = ''"
               f" or translate(@contenteditable, '{_UPPER}', '{_LOWER}') = 'true'"
               f" or translate(@contenteditable, '{_UPPER}', '{_LOWER}') = 'plaintext-only']")
_SUBMIT_BUTTON = ("(self::button and (not(@type) or translate(@type, 'SUBMIT', 'submit') = 'submit'"
                  " or not(contains(' reset button ', concat(' ', translate(@type, 'RESETBUTON', 'resetbuton'), ' ')))))"
                  " or (self::input and (translate(@type, 'SUBMIT', 'submit') = 'submit'"
                  " or translate(@type, 'IMAGE', 'image') = 'image'))")

# How many elements meeting {0} precede the context element in its form.
_IN_FORM = "count(preceding::*[{0}]) - count(ancestor::form[1]/preceding::*[{0}])"

# Pseudo-classes without arguments: the condition an element must meet.
_PSEUDO_CLASSES = {
    "root": "not(parent::*)",
    "scope": "not(parent::*)",  # querySelectorAll on a document: the root element
    "empty": "not(*) and not(text())",
    "first-child": "not(preceding-sibling::*)",
    "last-child": "not(following-sibling::*)",
    "only-child": "not(preceding-sibling::*) and not(following-sibling::*)",
    "link": "@href and (self::a or self::area)",
    "any-link": "@href and (self::a or self::area)",
    "-webkit-any-link": "@href and (self::a or self::area)",
    "defined": "not(contains(name(), '-'))",
    "checked": f"{_CHECKED_INPUT} or (self::option and {_SELECTED_OPTION})",
    "required": "@required and (self::input or self::select or self::textarea)",
    "optional": "not(@required) and (self::input or self::select or self::textarea or self::button)",
    "read-write": _READ_WRITE,
    "read-only": f"not({_READ_WRITE})",
    "placeholder-shown": f"@placeholder and (({_TEXT_INPUT} and not(@value != '')) or (self::textarea and not(text())))",
    "default": f"{_CHECKED_INPUT} or (self::option and @selected) or (({_SUBMIT_BUTTON}) and ancestor::form"
               f" and {_IN_FORM.format(_SUBMIT_BUTTON)} = 0)",
    "disabled": f"@disabled and ({_FORM_FIELDS} or self::fieldset or self::optgroup or self::option)",
    "enabled": f"not(@disabled) and ({_FORM_FIELDS} or self::fieldset or self::optgroup or self::option)",
}


def _any_condition(selectors: list[Complex]) -> str:
    """The condition for an element to match one of `selectors` (in :is, :not, of S)."""
    if not selectors:
        return "false()"
    return " or ".join(f"({_match_condition(selector)})" for selector in selectors)


def _compound_condition(compound: Compound) -> str:
    parts = []
    if compound.tag is not None:
        parts.append(f"self::{compound.tag}" if _SAFE_NAME.match(compound.tag)
                     else f"name() = {literal(compound.tag)}")
    parts.extend(f"({condition})" for condition in compound.conditions)
    return " and ".join(parts) or "true()"


_REVERSE_AXES = {" ": "ancestor::*", ">": "parent::*", "+": "preceding-sibling::*[1]", "~": "preceding-sibling::*"}


def _match_condition(selector: Complex) -> str:
    """Whether the context element matches `selector`, walking it right to left."""
    *left, (combinator, compound) = selector.steps
    condition = _compound_condition(compound)
    if left:
        condition += f" and {_REVERSE_AXES[combinator]}[{_match_condition(Complex(left))}]"
    return condition


def _step(combinator: str, compound: Compound) -> str:
    """One location step of a forward path reaching the elements `compound` matches."""
    node = compound.tag if compound.tag is not None and _SAFE_NAME.match(compound.tag) else "*"
    conditions = list(compound.conditions)
    if compound.tag is not None and node == "*":
        conditions.insert(0, f"name() = {literal(compound.tag)}")
    predicates = "".join(f"[{condition}]" for condition in conditions)
    if combinator == "+":
        test = f"[self::{node}]" if node != "*" else ""
        return f"following-sibling::*[1]{test}{predicates}"
    axis = {" ": "descendant::", ">": "", "~": "following-sibling::", "": "descendant-or-self::"}[combinator]
    return f"{axis}{node}{predicates}"


def _forward_path(selector: Complex, first_axis: str) -> str:
    return "/".join(_step(combinator if index else first_axis, compound)
                    for index, (combinator, compound) in enumerate(selector.steps))


def _relative_path(selector: Complex) -> str:
    """For `:has()`: a path from the context element to what the relative selector reaches."""
    leading = selector.steps[0][0] or " "
    return _forward_path(selector, leading)


def parse(css: str) -> list[Complex]:
    """The selector list of `css`, or SelectorSyntaxError where a browser rejects it."""
    css = _NOT_A_CHARACTER.sub("\ufffd", css)  # CSS's preprocessing, as tokenize() does
    parser = _Parser(tokenize(css), css)
    parser.skip_ws()
    if parser.peek().type == EOF:
        raise SelectorSyntaxError("the selector is empty", 0)
    return parser.selector_list()


def to_xpath(css: str) -> str:
    """The XPath 1.0 expression (relative to the document's root element) selecting what
    `css` matches. Uses the `ts:` extension functions of `compile_xpath`."""
    paths = [_forward_path(selector, "") for selector in parse(css) if not selector.never]
    return " | ".join(paths) or "self::*[false()]"


# --- Extension functions and compilation ---------------------------------------------------

_NAMESPACE = "urn:termshift:css"


def _same_type_before(context) -> int:
    node = context.context_node
    return sum(1 for sibling in node.itersiblings(node.tag, preceding=True))


def _same_type_after(context) -> int:
    node = context.context_node
    return sum(1 for sibling in node.itersiblings(node.tag))


_EXTENSIONS = {(_NAMESPACE, "same-type-before"): _same_type_before,
               (_NAMESPACE, "same-type-after"): _same_type_after}


def compile_xpath(css: str) -> etree.XPath:
    """`css` compiled for lxml; raises SelectorSyntaxError where a browser rejects it."""
    xpath = to_xpath(css)
    if "ts:" not in xpath:  # extension functions cost a little on every evaluation
        return etree.XPath(xpath)
    return etree.XPath(xpath, namespaces={"ts": _NAMESPACE}, extensions=_EXTENSIONS)
