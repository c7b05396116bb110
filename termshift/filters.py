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

A filters file is contributors' code. It is *read* (parsed with `ast`, never run)
to learn what it defines: `inspect_filters_file(path) -> PythonFilters`, a
`ServiceFilters` mapping whose names and signatures are known statically, so
validation, lint, the viewer and feeds check declarations without executing
anything. The file is imported only when a filter is first looked up to run
(`apply_filters`, i.e. when a document is extracted); an import that fails in any
way, `SystemExit` included, raises `FiltersFileError` (an `ExtractError` by
`apply_filters`) for that service only.

Another kind of filters file (JavaScript, say) plugs in with a `ServiceFilters`
subclass (its `definitions` read without running the file, `_load()` giving the
callables) registered in `FILTERS_FILE_KINDS` under its file suffix.
"""

from __future__ import annotations

import ast
import asyncio
import hashlib
import importlib.util
import inspect
import re
import sys
import threading
import traceback
from collections.abc import Callable, Iterable, Iterator, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType
from typing import TYPE_CHECKING, Any
from urllib.parse import unquote_to_bytes, urljoin, urlsplit, urlunsplit

from lxml import etree
from lxml.html import HtmlElement

from termshift.errors import ExtractError, TermshiftError
from termshift.selectors.css import SelectorSyntaxError, compile_xpath

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


def _css(selector: Any, filter_name: str) -> etree.XPath:
    """The selector compiled by the engine extraction uses (browser semantics, see termshift.selectors.css)."""
    if not isinstance(selector, str) or not selector.strip():
        raise ValueError(f"{filter_name}: 'selector' must be a non-empty CSS selector, got {selector!r}")
    try:
        return compile_xpath(selector)
    except SelectorSyntaxError as error:
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


def _text_matcher(params: Any) -> tuple[etree.XPath, Callable[[str], bool]]:
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


def _replacement(params: Any) -> tuple[etree.XPath | None, re.Pattern[str], str]:
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

# A filters file larger than this is refused unread: filters are a few functions, not data.
MAX_FILTERS_FILE_BYTES = 1 << 20


class FiltersFileError(TermshiftError):
    """A `<id>.filters.py` that cannot be used; `line` is known for syntax and import errors."""

    def __init__(self, path: Path, reason: str, line: int | None = None) -> None:
        super().__init__(f"{path}: {reason}")
        self.path = path
        self.reason = reason
        self.line = line


@dataclass(frozen=True)
class FilterDefinition:
    """What a filters file says about one filter, learnt without running it.

    `signature` is None when it cannot be known from the text (a name imported from
    another module and listed in `__all__`): the call itself then decides.
    """

    name: str
    line: int | None = None
    signature: inspect.Signature | None = None


class ServiceFilters(Mapping[str, FilterFunction]):
    """The filters of one service: names and signatures known up front, code loaded on first use.

    As a mapping, `name in filters`, `len()`, iteration and `definition(name)` never run
    the file; looking a function up (`filters[name]`, `filters.get(name)`) loads it once,
    and raises FiltersFileError (every time, without running it again) if that failed.
    Subclasses give `definitions` and `_load()`.
    """

    kind = "filters"

    def __init__(self, path: Path, definitions: Mapping[str, FilterDefinition]) -> None:
        self.path = Path(path)
        self.definitions = dict(definitions)
        self._functions: dict[str, FilterFunction] | None = None
        self._failure: FiltersFileError | None = None
        self._lock = threading.Lock()

    def _load(self) -> dict[str, FilterFunction]:
        raise NotImplementedError

    @property
    def loaded(self) -> bool:
        """Whether the file's code has run (successfully or not)."""
        return self._functions is not None or self._failure is not None

    def functions(self) -> dict[str, FilterFunction]:
        """The callables, by name (the file runs the first time). Raises FiltersFileError."""
        with self._lock:
            if self._failure is not None:
                raise self._failure
            if self._functions is None:
                try:
                    self._functions = self._load()
                except FiltersFileError as error:
                    self._failure = error
                    raise
            return self._functions

    def definition(self, name: str) -> FilterDefinition | None:
        return self.definitions.get(name)

    def __getitem__(self, name: str) -> FilterFunction:
        if name not in self.definitions:
            raise KeyError(name)
        return self.functions()[name]

    def __contains__(self, name: object) -> bool:
        return name in self.definitions

    def __iter__(self) -> Iterator[str]:
        return iter(self.definitions)

    def __len__(self) -> int:
        return len(self.definitions)

    def __eq__(self, other: object) -> bool:
        """Same file, same definitions (Mapping's own `==` would load the code to compare it)."""
        if not isinstance(other, ServiceFilters):
            return NotImplemented
        return (type(self), self.path, self.definitions) == (type(other), other.path, other.definitions)

    __hash__ = None  # type: ignore[assignment]  # mutable state, as a dict

    def __repr__(self) -> str:
        return f"{type(self).__name__}({str(self.path)!r}, {sorted(self.definitions)})"


class PythonFilters(ServiceFilters):
    """A `<id>.filters.py`: read with `ast`, imported only when a filter is about to run.

    `imports` lists the modules its top level imports, `(name, line, level)` (level > 0: relative).
    """

    kind = "python"

    def __init__(self, path: Path, definitions: Mapping[str, FilterDefinition],
                 imports: Iterable[tuple[str, int, int]] = ()) -> None:
        super().__init__(path, definitions)
        self.imports = list(imports)

    def _load(self) -> dict[str, FilterFunction]:
        return load_filters_file(self.path)

    def import_problems(self) -> list[tuple[int, str]]:
        """(line, reason) for each import that cannot work: a module not installed, a relative
        import. Found without running the file (nor, for a package, more than its finder)."""
        problems = []
        for name, line, level in self.imports:
            if level:
                problems.append((line, "a relative import cannot work in a filters file (it is not in a package): "
                                       "import modules by their full name"))
                continue
            top = name.split(".")[0]
            try:
                found = top in sys.modules or importlib.util.find_spec(top) is not None
            except (ImportError, ValueError):
                found = False
            if not found:
                problems.append((line, f"imports '{name}', which is not installed here: the filters cannot load"))
        return problems


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
    except KeyboardInterrupt:
        sys.modules.pop(name, None)
        raise
    except BaseException as error:  # SystemExit too: a filters file never stops the process
        sys.modules.pop(name, None)
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
    """Import a `<id>.filters.py` (this RUNS it) and return its filter functions by name.

    Only for extraction; everything else uses `inspect_filters_file`. Raises FiltersFileError.
    """
    path = Path(path)
    return _exported_functions(_import(path), path)


# -- reading a filters file without running it


_NO_DEFAULT = inspect.Parameter.empty


def _ast_signature(arguments: ast.arguments) -> inspect.Signature:
    """The `inspect.Signature` a `def` or `lambda` would have (defaults stand for themselves)."""
    Parameter = inspect.Parameter  # noqa: N806
    positional = [*arguments.posonlyargs, *arguments.args]
    defaults = [_NO_DEFAULT] * (len(positional) - len(arguments.defaults)) + [...] * len(arguments.defaults)
    parameters = [
        Parameter(argument.arg, Parameter.POSITIONAL_ONLY if index < len(arguments.posonlyargs)
                  else Parameter.POSITIONAL_OR_KEYWORD, default=default)
        for index, (argument, default) in enumerate(zip(positional, defaults, strict=True))
    ]
    if arguments.vararg is not None:
        parameters.append(Parameter(arguments.vararg.arg, Parameter.VAR_POSITIONAL))
    for argument, default in zip(arguments.kwonlyargs, arguments.kw_defaults, strict=True):
        parameters.append(Parameter(argument.arg, Parameter.KEYWORD_ONLY,
                                    default=_NO_DEFAULT if default is None else ...))
    if arguments.kwarg is not None:
        parameters.append(Parameter(arguments.kwarg.arg, Parameter.VAR_KEYWORD))
    return inspect.Signature(parameters)


def _top_level(body: list[ast.stmt]) -> Iterator[ast.stmt]:
    """The module's statements, into `if`/`try`/`with` blocks (conditional definitions)."""
    for statement in body:
        yield statement
        if isinstance(statement, ast.If | ast.With):
            yield from _top_level(statement.body)
            yield from _top_level(getattr(statement, "orelse", []))
        elif isinstance(statement, ast.Try):
            for block in (statement.body, *(handler.body for handler in statement.handlers),
                          statement.orelse, statement.finalbody):
                yield from _top_level(block)


def _all_names(value: ast.expr, path: Path) -> list[str]:
    if isinstance(value, ast.List | ast.Tuple) and all(
            isinstance(item, ast.Constant) and isinstance(item.value, str) for item in value.elts):
        return [item.value for item in value.elts]  # type: ignore[attr-defined]
    raise FiltersFileError(path, "__all__ must be a list of names written out (string literals), so that "
                                 "the filters can be known without running the file", value.lineno)


def _imports(tree: ast.Module) -> list[tuple[str, int, int]]:
    found = []
    for statement in _top_level(tree.body):
        if isinstance(statement, ast.Import):
            found += [(alias.name, statement.lineno, 0) for alias in statement.names]
        elif isinstance(statement, ast.ImportFrom) and statement.module != "__future__":
            found.append((statement.module or "", statement.lineno, statement.level))
    return found


def _definitions(tree: ast.Module, path: Path) -> dict[str, FilterDefinition]:
    functions: dict[str, FilterDefinition] = {}  # what the file defines as functions
    bound: dict[str, int] = {}  # every top-level name, with its line
    exported: list[str] | None = None
    for statement in _top_level(tree.body):
        if isinstance(statement, ast.FunctionDef | ast.AsyncFunctionDef):
            functions[statement.name] = FilterDefinition(statement.name, statement.lineno,
                                                         _ast_signature(statement.args))
            bound[statement.name] = statement.lineno
        elif isinstance(statement, ast.Assign | ast.AnnAssign):
            targets = statement.targets if isinstance(statement, ast.Assign) else [statement.target]
            for target in targets:
                if not isinstance(target, ast.Name) or statement.value is None:
                    continue
                name, value = target.id, statement.value
                bound[name] = statement.lineno
                if name == "__all__":
                    exported = _all_names(value, path)
                elif isinstance(value, ast.Lambda):
                    functions[name] = FilterDefinition(name, statement.lineno, _ast_signature(value.args))
                elif isinstance(value, ast.Name) and value.id in functions:  # an alias: `clean = _clean`
                    functions[name] = FilterDefinition(name, statement.lineno, functions[value.id].signature)
                else:
                    functions.pop(name, None)  # rebound to something else
        elif isinstance(statement, ast.AugAssign) and isinstance(statement.target, ast.Name) \
                and statement.target.id == "__all__":
            raise FiltersFileError(path, "__all__ must be a list of names written out (string literals), so "
                                         "that the filters can be known without running the file", statement.lineno)
        elif isinstance(statement, ast.Import | ast.ImportFrom):
            for alias in statement.names:
                bound[(alias.asname or alias.name).split(".")[0]] = statement.lineno
        elif isinstance(statement, ast.ClassDef):
            bound[statement.name] = statement.lineno
            functions.pop(statement.name, None)
    if exported is None:
        return {name: definition for name, definition in functions.items() if not name.startswith("_")}
    definitions = {}
    for name in exported:
        if name in functions:
            definitions[name] = functions[name]
        elif name in bound:
            definitions[name] = FilterDefinition(name, bound[name], None)  # imported or built: unknown arity
        else:
            raise FiltersFileError(path, f"'{name}' is listed in __all__ but is not defined in the file")
    return definitions


def inspect_filters_file(path: Path) -> PythonFilters:
    """What a `<id>.filters.py` defines, read with `ast`: NOTHING of it runs.

    Raises FiltersFileError for a file that cannot be read, is not UTF-8, is too large,
    or is not valid Python; the filters are those `load_filters_file` would return
    (`__all__` when written out as a list of strings, else the public functions).
    """
    path = Path(path)
    try:
        size = path.stat().st_size
        if size > MAX_FILTERS_FILE_BYTES:
            raise FiltersFileError(path, f"too large to be a filters file: {size} bytes "
                                         f"(the limit is {MAX_FILTERS_FILE_BYTES})")
        source = path.read_bytes()
    except OSError as error:
        raise FiltersFileError(path, f"cannot be read: {error.strerror or error}") from None
    try:
        text = source.decode("utf-8-sig")
    except UnicodeDecodeError as error:
        raise FiltersFileError(path, f"not UTF-8 text: {error.reason} at byte {error.start}") from None
    try:
        tree = ast.parse(text, filename=str(path))
    except SyntaxError as error:
        raise FiltersFileError(path, f"cannot load the filters: {type(error).__name__}: {error.msg}",
                               error.lineno) from None
    except (ValueError, RecursionError, MemoryError) as error:  # null bytes, absurd nesting
        raise FiltersFileError(path, f"cannot load the filters: {type(error).__name__}: {error}") from None
    return PythonFilters(path, _definitions(tree, path), _imports(tree))


# Filters files a service may have, by file suffix, and how each is read (without running it).
FILTERS_FILE_KINDS: dict[str, Callable[[Path], ServiceFilters]] = {".filters.py": inspect_filters_file}


# ------------------------------------------------------------ checking


def resolve_filter(name: str, service_filters: Mapping[str, FilterFunction] | None) -> FilterFunction | None:
    """The function a declaration's filter name refers to: a built-in first, as in OTA.

    With `ServiceFilters`, this loads (runs) the file: only call it to run the filter.
    """
    if name in BUILTIN_FILTERS:
        return BUILTIN_FILTERS[name]
    return (service_filters or {}).get(name)


def builtin_names_redefined(service_filters: Mapping[str, FilterFunction]) -> list[str]:
    """Names of a filters file that are built-ins: they would never run."""
    return [name for name in service_filters if name in BUILTIN_FILTERS]


def call_problem(call: FilterCall, service_filters: Mapping[str, FilterFunction] | None) -> str | None:
    """Why `call` cannot run (unknown name, wrong arity, bad built-in parameters), or None.

    Never runs a filters file: `ServiceFilters` answer from what was read of it.
    """
    problem = _signature_problem(call, service_filters)
    if problem is None and call.name in BUILTIN_FILTERS:
        check, _example = _BUILTIN_PARAMS[call.name]
        try:
            check(call.params)
        except ValueError as error:
            problem = str(error)
    return problem


def _signature(name: str, service_filters: Mapping[str, FilterFunction] | None) -> tuple[bool, inspect.Signature | None]:
    """(known, signature) of a filter name, without running any filters file."""
    if name in BUILTIN_FILTERS:
        return True, _callable_signature(BUILTIN_FILTERS[name])
    if isinstance(service_filters, ServiceFilters):
        definition = service_filters.definition(name)
        return definition is not None, definition.signature if definition else None
    function = (service_filters or {}).get(name)
    return function is not None, _callable_signature(function) if function is not None else None


def _callable_signature(function: FilterFunction) -> inspect.Signature | None:
    try:
        return inspect.signature(function)
    except (TypeError, ValueError):
        return None  # a builtin or C function: we cannot tell, so let the call decide


def _signature_problem(call: FilterCall, service_filters: Mapping[str, FilterFunction] | None) -> str | None:
    """Why `call` cannot even be made: an unknown name, or arguments the function does not take."""
    known, signature = _signature(call.name, service_filters)
    if not known:
        return (f"unknown filter '{call.name}': it is neither a built-in filter "
                f"({', '.join(BUILTIN_FILTERS)}) nor defined in the service's filters file")
    if call.name in BUILTIN_FILTERS and not call.passes_params:
        return f"the built-in filter '{call.name}' needs parameters, such as {_BUILTIN_PARAMS[call.name][1]}"
    return _arity_problem(signature, call)


def _arity_problem(signature: inspect.Signature | None, call: FilterCall) -> str | None:
    if signature is None:
        return None
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
        try:
            function = resolve_filter(call.name, service_filters)  # the filters file runs here, once
        except FiltersFileError as error:
            where = f" (line {error.line})" if error.line else ""
            raise ExtractError(f'The filter function "{call.name}" cannot run: the filters file '
                               f'"{error.path.name}" cannot be loaded{where}: {error.reason}') from error
        if function is None:  # defined in the text but not by the code that ran (a conditional def)
            raise ExtractError(f'The filter function "{call.name}" cannot run: the filters file did not define it')
        try:
            _settle(function(*call.arguments(document, dict(context))))
        except KeyboardInterrupt:
            raise
        except BaseException as error:  # SystemExit too: a filter fails its document, nothing else
            text = getattr(error, "filter_error_text", None) or f"{type(error).__name__}: {error}"
            raise ExtractError(f'The filter function "{call.name}" failed: {text}') from error
    return document
