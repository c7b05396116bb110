"""Filter functions: the built-ins, a service's `<id>.filters.py`, and running them.

A filter mutates the parsed page before selection, to take noise out of it (a
session id in every link, a "last updated 3 minutes ago" line). It is a Python
function called, like OTA's JavaScript filters (reference §1.7), either as
`f(document, context)` or as `f(document, params, context)`:

- `"name"` in a declaration's `filter` list          -> name(document, context)
- `{"name": params}` with params truthy *in JavaScript* -> name(document, params, context)
- `{"name": params}` with params `""`, `0`, `false` or `null` -> name(document, context) (OTA's quirk)

`document` is the `lxml.html.HtmlElement` root of the page, whose `base_url` is
the document location; `context` is `{"fetch", "select", "remove", "filter"}`.
A filter may also be `async def`: it is awaited before the next one runs.

Names resolve to the built-ins first, then to the service's file. Unlike OTA,
an unknown name is an error rather than silently skipped.
"""

from __future__ import annotations

import asyncio
import hashlib
import importlib.util
import inspect
import re
import sys
import traceback
from collections.abc import Callable, Iterable, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType
from typing import TYPE_CHECKING, Any
from urllib.parse import unquote_to_bytes, urljoin, urlsplit, urlunsplit

from lxml.cssselect import CSSSelector
from lxml.html import HtmlElement

from termshift.trackers.errors import ExtractError

if TYPE_CHECKING:
    from termshift.declarations import SourceDocument

FilterFunction = Callable[..., Any]


# ------------------------------------------------------------ filter calls


def js_truthy(value: Any) -> bool:
    """JavaScript truthiness: unlike Python, an empty list or object is true."""
    if value is None or value is False:
        return False
    if isinstance(value, int | float) and not isinstance(value, bool):
        return value == value and value != 0  # NaN and 0 are false
    if isinstance(value, str):
        return value != ""
    return True


@dataclass(frozen=True)
class FilterCall:
    """One item of a declaration's `filter` list."""

    name: str
    params: Any = None
    declared_with_params: bool = False  # {"name": params} rather than "name"

    @classmethod
    def from_declaration(cls, item: str | Mapping[str, Any]) -> FilterCall:
        if isinstance(item, str):
            return cls(item)
        ((name, params),) = item.items()
        return cls(name, params, declared_with_params=True)

    @property
    def passes_params(self) -> bool:
        """True when the function receives `params` (OTA wraps only truthy params)."""
        return self.declared_with_params and js_truthy(self.params)

    def to_declaration(self) -> str | dict[str, Any]:
        return {self.name: self.params} if self.declared_with_params else self.name

    def arguments(self, document: Any, context: dict[str, Any]) -> tuple[Any, ...]:
        return (document, self.params, context) if self.passes_params else (document, context)


# ------------------------------------------------------ built-in: URLs

_FORM_SAFE = frozenset(b"*-._0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz")
_SPECIAL_SCHEMES = {"http": 80, "https": 443, "ws": 80, "wss": 443, "ftp": 21, "file": None}


def _form_decode(text: str) -> str:
    return unquote_to_bytes(text.replace("+", " ")).decode("utf-8", "replace")


def _form_encode(text: str) -> str:
    """application/x-www-form-urlencoded as URLSearchParams writes it (space -> +, ~ -> %7E)."""
    return "".join(
        "+" if byte == 0x20 else chr(byte) if byte in _FORM_SAFE else f"%{byte:02X}"
        for byte in text.encode("utf-8")
    )


def parse_query(query: str) -> list[tuple[str, str]]:
    """The name/value pairs of a query string, decoded as URLSearchParams does."""
    pairs = []
    for part in query.split("&"):
        if part:
            name, _, value = part.partition("=")
            pairs.append((_form_decode(name), _form_decode(value)))
    return pairs


def serialize_query(pairs: Iterable[tuple[str, str]]) -> str:
    return "&".join(f"{_form_encode(name)}={_form_encode(value)}" for name, value in pairs)


def document_base_url(document: HtmlElement) -> str | None:
    """The URL relative links resolve against: `<base href>` if any, else the location."""
    location = document.base_url
    for base in document.iter("base"):
        href = (base.get("href") or "").strip()
        if href:
            return urljoin(location, href) if location else href
    return location


def _absolute_url(value: str, base: str | None) -> str | None:
    """`value` resolved against `base`, or None when it is not a parsable absolute URL."""
    value = value.strip("\x00\x01\x02\x03\x04\x05\x06\x07\x08\t\n\x0b\x0c\r\x0e\x0f"
                        "\x10\x11\x12\x13\x14\x15\x16\x17\x18\x19\x1a\x1b\x1c\x1d\x1e\x1f ")
    try:
        resolved = urljoin(base, value) if base else value
        parts = urlsplit(resolved)
        parts.port  # noqa: B018 - raises ValueError for a bad port
    except ValueError:
        return None
    if not parts.scheme or (parts.scheme in _SPECIAL_SCHEMES and parts.scheme != "file" and not parts.hostname):
        return None
    return resolved


def _without_params(url: str, names: set[str]) -> str | None:
    """`url` with every occurrence of `names` removed from its query, or None if none is there."""
    parts = urlsplit(url)
    pairs = parse_query(parts.query)
    if not any(name in names for name, _ in pairs):
        return None
    query = serialize_query((name, value) for name, value in pairs if name not in names)
    path = parts.path or ("/" if parts.scheme in _SPECIAL_SCHEMES else "")
    netloc = parts.netloc
    if parts.hostname and parts.scheme in _SPECIAL_SCHEMES:
        # The WHATWG serializer lower-cases the host and drops the default port.
        host = parts.hostname if ":" not in parts.hostname else f"[{parts.hostname}]"
        port = "" if parts.port in (None, _SPECIAL_SCHEMES[parts.scheme]) else f":{parts.port}"
        userinfo = netloc.rpartition("@")[0]
        netloc = f"{userinfo}@{host}{port}" if userinfo else f"{host}{port}"
    return urlunsplit((parts.scheme, netloc, path, query, parts.fragment))


def _query_param_names(params: Any) -> list[str]:
    names = [params] if isinstance(params, str) else params
    if not isinstance(names, list) or not all(isinstance(name, str) for name in names):
        raise ValueError(f"expected a query parameter name or a list of names, got {params!r}")
    return names


def removeQueryParams(document: HtmlElement, params: str | list[str], context: dict[str, Any]) -> None:  # noqa: N802
    """Remove query parameters from links and images: OTA's only built-in filter.

    `{"removeQueryParams": ["utm_source", "sid"]}` (or a single name as a string).
    For every `a[href]` and `img[src]` whose URL, resolved against the page, holds
    at least one of the parameters, every occurrence of each is deleted and the
    absolute URL is written back; the `?` goes when nothing is left. Other URLs,
    unparsable ones and all text stay exactly as they were.
    """
    names = set(_query_param_names(params))
    if not names:
        return
    base = document_base_url(document)
    for element in document.xpath("//a[@href] | //img[@src]"):
        attribute = "href" if element.tag == "a" else "src"
        url = _absolute_url(element.get(attribute), base)
        cleaned = _without_params(url, names) if url else None
        if cleaned is not None:
            element.set(attribute, cleaned)


# ----------------------------------------------------- built-ins: text


def _css(selector: Any, filter_name: str) -> CSSSelector:
    if not isinstance(selector, str) or not selector.strip():
        raise ValueError(f"{filter_name}: 'selector' must be a non-empty CSS selector, got {selector!r}")
    try:
        return CSSSelector(selector, translator="html")
    except Exception as error:  # cssselect's SelectorError and its subclasses
        raise ValueError(f"{filter_name}: invalid CSS selector {selector!r}: {error}") from None


def _regex(pattern: Any, filter_name: str) -> re.Pattern[str]:
    if not isinstance(pattern, str) or not pattern:
        raise ValueError(f"{filter_name}: 'pattern' must be a non-empty regular expression, got {pattern!r}")
    try:
        return re.compile(pattern)
    except re.error as error:
        raise ValueError(f"{filter_name}: invalid regular expression {pattern!r}: {error}") from None


def _params_object(params: Any, filter_name: str, required: set[str], optional: set[str]) -> dict[str, Any]:
    if not isinstance(params, dict):
        raise ValueError(f"{filter_name}: expected an object of parameters, got {params!r}")
    missing = sorted(required - params.keys())
    unknown = sorted(params.keys() - required - optional)
    if missing:
        raise ValueError(f"{filter_name}: missing parameter {', '.join(map(repr, missing))}")
    if unknown:
        raise ValueError(f"{filter_name}: unknown parameter {', '.join(map(repr, unknown))}")
    return params


def _text_matcher(params: Any) -> tuple[CSSSelector, Callable[[str], bool]]:
    name = "removeElementsByText"
    params = _params_object(params, name, {"selector"}, {"text", "pattern"})
    if ("text" in params) == ("pattern" in params):
        raise ValueError(f"{name}: give exactly one of 'text' and 'pattern'")
    selector = _css(params["selector"], name)
    if "pattern" in params:
        return selector, _regex(params["pattern"], name).search
    text = params["text"]
    if not isinstance(text, str) or not text:
        raise ValueError(f"{name}: 'text' must be a non-empty string, got {text!r}")
    return selector, lambda content: text in content


def removeElementsByText(document: HtmlElement, params: dict[str, str], context: dict[str, Any]) -> None:  # noqa: N802
    """Remove the elements matching a selector whose text contains a string or matches a pattern.

    `{"removeElementsByText": {"selector": "p", "text": "Last updated"}}` or
    `{"removeElementsByText": {"selector": "li", "pattern": "\\\\d+ (minutes|hours) ago"}}`.
    The text is compared with its whitespace collapsed; `pattern` is a Python
    regular expression (prefix it with `(?i)` to ignore case). The text after a
    removed element stays. For the elements that come and go with the time of day.
    """
    selector, matches = _text_matcher(params)
    for element in selector(document):
        if element.getparent() is not None and matches(" ".join(element.text_content().split())):
            element.drop_tree()


def _replacement(params: Any) -> tuple[CSSSelector | None, re.Pattern[str], str]:
    name = "replaceText"
    params = _params_object(params, name, {"pattern", "replacement"}, {"selector"})
    if not isinstance(params["replacement"], str):
        raise ValueError(f"{name}: 'replacement' must be a string, got {params['replacement']!r}")
    selector = _css(params["selector"], name) if "selector" in params else None
    return selector, _regex(params["pattern"], name), params["replacement"]


def replaceText(document: HtmlElement, params: dict[str, str], context: dict[str, Any]) -> None:  # noqa: N802
    """Replace a pattern in the text of the page (or of the elements matching `selector`).

    `{"replaceText": {"pattern": "Updated \\\\d+ days ago", "replacement": "Updated"}}`.
    `pattern` is a Python regular expression, applied to each run of text on its
    own (text split by tags is not matched across the tags); `replacement` may
    use `\\\\1` or `\\\\g<name>`. Keep it idempotent: the replacement must not match
    the pattern again. Attributes, comments and link targets are not touched.
    """
    selector, pattern, replacement = _replacement(params)
    roots = selector(document) if selector is not None else [document]
    elements = {element for root in roots for element in root.iter()}
    for element in elements:
        if isinstance(element.tag, str) and element.text:
            element.text = pattern.sub(replacement, element.text)
        # A tail is text *after* the element, inside its parent: only rewrite it within the roots.
        if element.tail and element.getparent() in elements:
            element.tail = pattern.sub(replacement, element.tail)


BUILTIN_FILTERS: dict[str, FilterFunction] = {
    "removeQueryParams": removeQueryParams,
    "removeElementsByText": removeElementsByText,
    "replaceText": replaceText,
}

# How each built-in checks its parameters, and an example for error messages.
_BUILTIN_PARAMS: dict[str, tuple[Callable[[Any], Any], str]] = {
    "removeQueryParams": (_query_param_names, '{"removeQueryParams": ["utm_source"]}'),
    "removeElementsByText": (_text_matcher, '{"removeElementsByText": {"selector": "p", "text": "Updated"}}'),
    "replaceText": (_replacement, '{"replaceText": {"pattern": "\\\\d+ days ago", "replacement": ""}}'),
}


# -------------------------------------------------------- filters files


class FiltersFileError(Exception):
    """A `<id>.filters.py` that cannot be used; `line` is known for syntax and import errors."""

    def __init__(self, path: Path, reason: str, line: int | None = None) -> None:
        super().__init__(f"{path}: {reason}")
        self.path = path
        self.reason = reason
        self.line = line


def _module_name(path: Path) -> str:
    """A name unique to the file: two services' `clean` functions never meet in sys.modules."""
    digest = hashlib.sha1(str(path.resolve()).encode("utf-8")).hexdigest()[:16]
    return f"termshift_service_filters_{digest}"


def _failing_line(error: BaseException, path: Path) -> int | None:
    if isinstance(error, SyntaxError) and error.lineno:
        return error.lineno
    lines = [frame.lineno for frame in traceback.extract_tb(error.__traceback__)
             if Path(frame.filename).resolve() == path.resolve()]
    return lines[-1] if lines else None


def _import(path: Path) -> ModuleType:
    name = _module_name(path)
    spec = importlib.util.spec_from_file_location(name, path)
    if spec is None or spec.loader is None:
        raise FiltersFileError(path, "cannot be loaded as a Python file")
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module  # registered while it runs, as dataclasses and pickling need
    try:
        spec.loader.exec_module(module)
    except Exception as error:
        del sys.modules[name]
        detail = error.msg if isinstance(error, SyntaxError) else str(error)
        raise FiltersFileError(path, f"cannot load the filters: {type(error).__name__}: {detail}",
                               _failing_line(error, path)) from error
    return module


def _exported_functions(module: ModuleType, path: Path) -> dict[str, FilterFunction]:
    """`__all__` when the file defines it (that is how to re-export), else its public functions."""
    exported = getattr(module, "__all__", None)
    if exported is None:
        return {
            name: value for name, value in vars(module).items()
            if not name.startswith("_") and inspect.isfunction(value) and value.__module__ == module.__name__
        }
    functions = {}
    for name in exported:
        value = getattr(module, name, None)
        if not callable(value):
            raise FiltersFileError(path, f"'{name}' is listed in __all__ but is not a function")
        functions[name] = value
    return functions


def load_filters_file(path: Path) -> dict[str, FilterFunction]:
    """The filter functions of a `<id>.filters.py`, by name. Raises FiltersFileError."""
    path = Path(path)
    return _exported_functions(_import(path), path)


# ------------------------------------------------------------ checking


def resolve_filter(name: str, service_filters: Mapping[str, FilterFunction] | None) -> FilterFunction | None:
    """The function a declaration's filter name refers to: a built-in first, as in OTA."""
    if name in BUILTIN_FILTERS:
        return BUILTIN_FILTERS[name]
    return (service_filters or {}).get(name)


def builtin_names_redefined(service_filters: Mapping[str, FilterFunction]) -> list[str]:
    """Names of a filters file that are built-ins: they would never run."""
    return [name for name in service_filters if name in BUILTIN_FILTERS]


def call_problem(call: FilterCall, service_filters: Mapping[str, FilterFunction] | None) -> str | None:
    """Why `call` cannot run (unknown name, wrong arity, bad built-in parameters), or None."""
    problem = _signature_problem(call, service_filters)
    if problem is None and call.name in BUILTIN_FILTERS:
        check, _example = _BUILTIN_PARAMS[call.name]
        try:
            check(call.params)
        except ValueError as error:
            problem = str(error)
    return problem


def _signature_problem(call: FilterCall, service_filters: Mapping[str, FilterFunction] | None) -> str | None:
    """Why `call` cannot even be made: an unknown name, or arguments the function does not take."""
    function = resolve_filter(call.name, service_filters)
    if function is None:
        return (f"unknown filter '{call.name}': it is neither a built-in filter "
                f"({', '.join(BUILTIN_FILTERS)}) nor defined in the service's filters file")
    if call.name in BUILTIN_FILTERS and not call.passes_params:
        return f"the built-in filter '{call.name}' needs parameters, such as {_BUILTIN_PARAMS[call.name][1]}"
    return _arity_problem(function, call)


def _arity_problem(function: FilterFunction, call: FilterCall) -> str | None:
    try:
        signature = inspect.signature(function)
    except (TypeError, ValueError):
        return None  # a builtin or C function: we cannot tell, so let the call decide
    try:
        signature.bind(*call.arguments("document", {}))
    except TypeError as error:
        if call.passes_params:
            how = f"it is declared with parameters, so it is called as {call.name}(document, params, context)"
        elif call.declared_with_params:
            how = (f"its parameters {call.params!r} are empty, so (as in OTA) it is called as "
                   f"{call.name}(document, context)")
        else:
            how = f"it is declared without parameters, so it is called as {call.name}(document, context)"
        return f"filter '{call.name}' cannot be called: {how}, but {error}"
    return None


# ------------------------------------------------------------- running


def filter_context(source_document: SourceDocument) -> dict[str, Any]:
    """The second (or third) argument of every filter, as OTA passes it."""
    return {
        "fetch": source_document.location,
        "select": source_document.select,
        "remove": source_document.remove,
        "filter": [call.name for call in source_document.filters],
    }


async def _awaited(awaitable: Any) -> Any:
    return await awaitable


def _settle(result: Any) -> None:
    """Wait for an `async def` filter, even when called from inside a running event loop."""
    if not inspect.isawaitable(result):
        return
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        asyncio.run(_awaited(result))
        return
    with ThreadPoolExecutor(max_workers=1) as pool:
        pool.submit(asyncio.run, _awaited(result)).result()


def apply_filters(
    document: HtmlElement,
    source_document: SourceDocument,
    service_filters: Mapping[str, FilterFunction] | None = None,
    start: int = 0,
) -> HtmlElement:
    """Run the document's filters in order on `document` (mutated in place) and return it.

    Raises ExtractError for an unknown name, a function that cannot take the
    declared arguments, or a filter that raises: `The filter function "<name>"
    failed: <ExceptionClass>: <message>` (a JavaScript filter's error as JavaScript shows it,
    as OTA does). `start` skips the first calls (already run by termshift.jsfilters).
    """
    context = filter_context(source_document)
    for call in source_document.filters[start:]:
        problem = _signature_problem(call, service_filters)
        if problem:
            raise ExtractError(f'The filter function "{call.name}" cannot run: {problem}')
        function = resolve_filter(call.name, service_filters)
        try:
            _settle(function(*call.arguments(document, dict(context))))
        except Exception as error:
            text = getattr(error, "filter_error_text", None) or f"{type(error).__name__}: {error}"
            raise ExtractError(f'The filter function "{call.name}" failed: {text}') from error
    return document
