"""Loading a collection of service declarations, in Open Terms Archive's format.

A collection is a folder of `<service id>.json` files (reference §1), each with
an optional `<id>.history.json` (past declarations, §1.8) and an optional
`<id>.filters.py` (Python filter functions) or OTA's `<id>.filters.js` and
`<id>.filters.history.js` (JavaScript, termshift.jsfilters: one kind per service).
The service id is the file name without `.json`.

Every file is checked against the JSON Schemas (`termshift.schema`) as it is
loaded, and every filter a declaration names must exist, so a service either
loads completely or is reported in `Collection.errors` (and `Collection.skipped`,
by service) with the file, the JSON path and the reason; the other services
still load. Whatever is wrong with one service's files (malformed, too large or
too deeply nested JSON, invalid UTF-8, a filters file that is not Python) is
that service's error: loading a collection never raises for a file's content.
A defect anywhere in a service's files (one bad history entry included) skips
the whole service: extracting with only part of its history could use a
declaration that was not in force.

Loading never runs filter code: a filters file is read with `ast`
(`termshift.filters.inspect_filters_file`) and imported only when a filter runs.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from functools import cache
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlsplit

import termshift.jsfilters  # noqa: F401  (registers the `.filters.js` kind of filters file)
from termshift import schema
from termshift.errors import ErrorKind, TermshiftError
from termshift.filters import (
    BUILTIN_FILTERS,
    FILTERS_FILE_KINDS,
    FilterCall,
    FilterFunction,
    FiltersFileError,
    ServiceFilters,
    builtin_names_redefined,
    call_problem,
)

__all__ = [
    "Collection", "DeclarationError", "FilterCall", "Selectors", "Service", "ServiceFiles", "ServiceLoadError",
    "SourceDocument", "Terms", "check_declaration_file", "check_filters", "check_history_file",
    "list_service_ids", "load_collection", "load_service", "read_json", "source_document_id",
]

MIME_EXTENSIONS_FILE = Path(__file__).resolve().parent / "data" / "mime-extensions.txt"

# A declaration or history file larger than this is refused unread (the largest real history
# files are a few hundred kilobytes).
MAX_DECLARATION_BYTES = 8 << 20

# A CSS selector, a range {"startBefore"|"startAfter": css, "endBefore"|"endAfter": css}, or a list of both.
Selectors = str | dict[str, str] | list[str | dict[str, str]]


class DeclarationError(TermshiftError):
    """Something wrong in a declaration file: `str()` is `"<file>: <json path>: <reason>"`."""

    kind = ErrorKind.CONFIGURATION

    def __init__(self, file: Path, json_path: str, reason: str) -> None:
        self.file = Path(file)
        self.json_path = json_path
        self.reason = reason
        super().__init__(f"{self.file}: {json_path}: {reason}")

    def __eq__(self, other: object) -> bool:
        return isinstance(other, DeclarationError) and (self.file, self.json_path, self.reason) == (
            other.file, other.json_path, other.reason)

    def __hash__(self) -> int:
        return hash((self.file, self.json_path, self.reason))

    def __repr__(self) -> str:
        return f"DeclarationError({str(self.file)!r}, {self.json_path!r}, {self.reason!r})"


class ServiceLoadError(TermshiftError):
    """A service could not be loaded; `errors` lists every problem found."""

    kind = ErrorKind.CONFIGURATION

    def __init__(self, service_id: str, errors: list[DeclarationError]) -> None:
        self.service_id = service_id
        self.errors = errors
        super().__init__("\n".join(str(error) for error in errors))


# ------------------------------------------------------------ document ids


@cache
def _mime_extensions() -> frozenset[str]:
    lines = MIME_EXTENSIONS_FILE.read_text(encoding="utf-8").splitlines()
    return frozenset(line.strip().lower() for line in lines if line.strip() and not line.startswith("#"))


_SINGLE_DOT = {".", "%2e"}
_DOUBLE_DOT = {"..", ".%2e", "%2e.", "%2e%2e"}


def _url_pathname(url: str) -> str:
    """The path of an http(s) URL as the WHATWG URL parser gives it (before decoding)."""
    path = urlsplit(url.strip()).path.replace("\\", "/")  # a backslash separates segments in http(s)
    output: list[str] = []
    segments = path.split("/")[1:] if path.startswith("/") else path.split("/")
    for position, segment in enumerate(segments):
        is_last = position == len(segments) - 1
        if segment.lower() in _DOUBLE_DOT:
            if output:
                output.pop()
            if is_last:
                output.append("")
        elif segment.lower() in _SINGLE_DOT:
            if is_last:
                output.append("")
        else:
            output.append(segment)
    return "/" + "/".join(output)


def _extname(pathname: str) -> str:
    """Node's `path.extname`: the last `.ext` of the last segment, trailing slashes ignored."""
    base = pathname.rstrip("/").rpartition("/")[2]
    dot = base.rfind(".")
    return "" if dot <= 0 or base == ".." else base[dot:]


_ILLEGAL_IN_FILE_NAMES = re.compile(r'[\\:"<>|*?]')


def source_document_id(url: str) -> str:
    """OTA's id of a source document (reference §2.6): the URL path made into a file-name part.

    `https://example.com/legal/terms.html` -> `legal-terms`; the host and query are ignored,
    a final extension is dropped only when it names a MIME type, and a root URL gives `''`.
    """
    pathname = unquote(_url_pathname(url), errors="replace")
    extension = _extname(pathname)
    if extension[1:].lower() in _mime_extensions():
        # Sliced off the whole path, not the last segment, exactly as OTA does
        # (so `/terms.html/` gives `terms.`).
        pathname = pathname[: -len(extension)]
    joined = "-".join(segment for segment in pathname.split("/") if segment)
    return _ILLEGAL_IN_FILE_NAMES.sub("_", joined)


# ----------------------------------------------------------------- records


@dataclass(frozen=True)
class SourceDocument:
    """One page or PDF to fetch, and how to extract its content."""

    location: str
    select: Selectors | None = None
    remove: Selectors | None = None
    filters: list[FilterCall] = field(default_factory=list)
    execute_client_scripts: bool | None = None
    id: str | None = None  # computed from `location` when not given

    def __post_init__(self) -> None:
        # Accept raw declaration items ("name" or {"name": params}) for convenience.
        calls = [item if isinstance(item, FilterCall) else FilterCall.from_declaration(item)
                 for item in (self.filters or [])]
        object.__setattr__(self, "filters", calls)
        if self.id is None:
            object.__setattr__(self, "id", source_document_id(self.location))

    @property
    def css_selectors(self) -> list[str]:
        """Every CSS selector used, `select` then `remove`, ranges expanded to their bounds (OTA's order)."""
        return [selector for value in (self.select, self.remove) for selector in _flatten_selectors(value)]

    def to_declaration(self) -> dict[str, Any]:
        """The declaration form (OTA's `toPersistence`), without the absent fields."""
        declaration: dict[str, Any] = {"fetch": self.location}
        if self.select is not None:
            declaration["select"] = self.select
        if self.remove is not None:
            declaration["remove"] = self.remove
        if self.filters:
            declaration["filter"] = [call.to_declaration() for call in self.filters]
        if self.execute_client_scripts is not None:
            declaration["executeClientScripts"] = self.execute_client_scripts
        return declaration


def _flatten_selectors(value: Selectors | None) -> Iterator[str]:
    for item in value if isinstance(value, list) else [value]:
        if isinstance(item, dict):
            for key in ("startBefore", "endBefore", "startAfter", "endAfter"):
                if item.get(key):
                    yield item[key]
        elif item:
            yield item


@dataclass(frozen=True)
class Terms:
    """The declaration of one terms type of a service: one document, or several combined."""

    service_id: str
    type: str
    documents: list[SourceDocument]
    combined: bool = False
    valid_until: datetime | None = None  # set on history entries: the last instant it applied

    @property
    def duplicate_locations(self) -> list[str]:
        """Locations that appear more than once in `combine` (OTA's `duplicateSourceDocuments`)."""
        seen: set[str] = set()
        duplicates: list[str] = []
        for document in self.documents:
            if document.location in seen and document.location not in duplicates:
                duplicates.append(document.location)
            seen.add(document.location)
        return duplicates

    def to_declaration(self) -> dict[str, Any]:
        """The declaration form; combined terms give `{"combine": [...]}` with inherited values expanded."""
        if self.combined:
            return {"combine": [document.to_declaration() for document in self.documents]}
        return self.documents[0].to_declaration()


def _as_utc(date: datetime) -> datetime:
    return date.replace(tzinfo=UTC) if date.tzinfo is None else date.astimezone(UTC)


@dataclass
class Service:
    """A loaded service: current terms, past terms (ascending `valid_until`) and its filters."""

    id: str
    name: str
    terms: dict[str, Terms]
    history: dict[str, list[Terms]] = field(default_factory=dict)
    # The service's filters file (a ServiceFilters: its code runs only when a filter is used).
    filters: Mapping[str, FilterFunction] = field(default_factory=dict)
    path: Path | None = None
    imported_from: str | None = None

    def terms_at(self, terms_type: str, date: datetime | None = None) -> Terms | None:
        """The declaration of `terms_type` in force at `date` (`None`: now).

        That is the first history entry whose `validUntil` is at or after `date`
        (inclusive), else the current declaration. None when the type was not
        declared then. A naive `date` is taken as UTC.
        """
        if date is not None:
            date = _as_utc(date)
            for entry in self.history.get(terms_type, []):
                if date <= entry.valid_until:
                    return entry
        return self.terms.get(terms_type)

    @property
    def all_terms_types(self) -> list[str]:
        """Current types, then those that live only in the history file."""
        return [*self.terms, *(terms_type for terms_type in self.history if terms_type not in self.terms)]


@dataclass
class Collection:
    """The services that loaded, and what did not.

    `errors` lists every problem; `skipped` the same by service id (services whose files
    are defective, left out), and `missing` the requested ids that have no declaration.
    """

    directory: Path
    services: dict[str, Service] = field(default_factory=dict)
    errors: list[DeclarationError] = field(default_factory=list)
    skipped: dict[str, list[DeclarationError]] = field(default_factory=dict)
    missing: list[str] = field(default_factory=list)


# ------------------------------------------------------------------ files


@dataclass(frozen=True)
class ServiceFiles:
    """The files that make up one service in a collection folder."""

    directory: Path
    service_id: str

    def _file(self, suffix: str) -> Path:
        return Path(self.directory) / f"{self.service_id}{suffix}"

    @property
    def declaration(self) -> Path:
        return self._file(".json")

    @property
    def history(self) -> Path:
        return self._file(".history.json")

    @property
    def filters(self) -> Path:
        return self._file(".filters.py")

    @property
    def javascript_filters(self) -> Path:
        return self._file(".filters.js")

    @property
    def javascript_filters_history(self) -> Path:
        return self._file(".filters.history.js")


def list_service_ids(directory: Path) -> list[str]:
    """Ids of the services of a collection: every `*.json` except `*.history.json`, sorted.

    A missing or unreadable folder raises OSError, as in OTA.
    """
    return sorted(
        path.name[: -len(".json")]
        for path in Path(directory).iterdir()
        if path.name.endswith(".json") and not path.name.endswith(".history.json") and path.is_file()
    )


def read_json(path: Path) -> tuple[Any, list[DeclarationError]]:
    """A declaration or history file parsed, or None and why not (never raises for its content)."""
    path = Path(path)
    try:
        size = path.stat().st_size
        if size > MAX_DECLARATION_BYTES:
            return None, [DeclarationError(path, "$", f"too large: {size} bytes (a declaration file may have "
                                                      f"at most {MAX_DECLARATION_BYTES})")]
        text = path.read_bytes().decode("utf-8-sig")
    except UnicodeDecodeError as error:
        return None, [DeclarationError(path, "$", f"not UTF-8 text: {error.reason} at byte {error.start}")]
    except OSError as error:
        return None, [DeclarationError(path, "$", f"cannot be read: {error.strerror or error}")]
    try:
        return json.loads(text), []
    except json.JSONDecodeError as error:
        reason = (f"malformed JSON, it cannot be parsed: {error.msg} at line {error.lineno}, "
                  f"column {error.colno}")
        return None, [DeclarationError(path, "$", reason)]
    except RecursionError:
        return None, [DeclarationError(path, "$", "malformed JSON, it cannot be parsed: nested too deeply")]



def _read_checked(
    path: Path, problems: Callable[[Any], list[schema.SchemaProblem]]
) -> tuple[Any, list[DeclarationError]]:
    """Parse a JSON file and check it against a schema; the data is None when anything failed."""
    data, errors = read_json(path)
    if errors:
        return None, errors
    try:
        errors = [DeclarationError(path, problem.json_path, problem.reason) for problem in problems(data)]
    except RecursionError:
        errors = [DeclarationError(path, "$", "nested too deeply to be a declaration")]
    return (None if errors else data), errors


def check_declaration_file(path: Path) -> list[DeclarationError]:
    """JSON syntax and schema errors of a `<id>.json`."""
    return _read_checked(Path(path), schema.service_problems)[1]


def check_history_file(path: Path) -> list[DeclarationError]:
    """JSON syntax and schema errors of a `<id>.history.json`."""
    return _read_checked(Path(path), schema.history_problems)[1]


# ---------------------------------------------------------------- filters


def _load_filters(files: ServiceFiles) -> tuple[Mapping[str, FilterFunction] | None, list[DeclarationError]]:
    """The service's filters, read without running them ({} without a file); None when unusable.

    The kinds of filters file are those of `termshift.filters.FILTERS_FILE_KINDS`; a service
    has at most one.
    """
    present = [(Path(files.directory) / f"{files.service_id}{suffix}", inspect)
               for suffix, inspect in FILTERS_FILE_KINDS.items()
               if (Path(files.directory) / f"{files.service_id}{suffix}").is_file()]
    if not present:
        return {}, []
    if len(present) > 1:
        names = " and ".join(f"'{path.name}'" for path, _inspect in present)
        return None, [DeclarationError(present[0][0], "-", f"a service has one filters file, found {names}")]
    path, inspect_file = present[0]
    try:
        functions: ServiceFilters = inspect_file(path)
    except FiltersFileError as error:
        where = f"line {error.line}" if error.line else "-"
        return None, [DeclarationError(error.path, where, error.reason)]  # the history file, say
    errors = [
        DeclarationError(path, name,
                         f"'{name}' is the name of a built-in filter, which takes precedence: rename this function")
        for name in builtin_names_redefined(functions)
    ]
    return functions, errors


def _filter_lists(data: Any, prefix: tuple[schema.PathPart, ...]) -> Iterator[tuple[tuple, list]]:
    """(path, filter list) of one terms declaration, its own and those of its `combine` items."""
    if isinstance(data.get("filter"), list):
        yield (*prefix, "filter"), data["filter"]
    for index, item in enumerate(data.get("combine") or []):
        if isinstance(item, dict) and isinstance(item.get("filter"), list):
            yield (*prefix, "combine", index, "filter"), item["filter"]


def _reference_errors(
    path: Path, terms_declarations: Iterable[tuple[tuple, dict]], functions: Mapping[str, FilterFunction] | None
) -> list[DeclarationError]:
    """Each filter named in these declarations must resolve and accept its arguments."""
    errors = []
    for prefix, declaration in terms_declarations:
        for list_path, items in _filter_lists(declaration, prefix):
            for index, item in enumerate(items):
                call = FilterCall.from_declaration(item)
                if functions is None and call.name not in BUILTIN_FILTERS:
                    continue  # the filters file itself is already reported as unusable
                problem = call_problem(call, functions)
                if problem:
                    errors.append(DeclarationError(path, schema.json_path((*list_path, index)), problem))
    return errors


def _current_declarations(data: dict) -> Iterator[tuple[tuple, dict]]:
    for terms_type, declaration in data["terms"].items():
        yield ("terms", terms_type), declaration


def _history_declarations(data: dict) -> Iterator[tuple[tuple, dict]]:
    for terms_type, entries in data.items():
        for index, entry in enumerate(entries):
            yield (terms_type, index), entry


def _filter_errors(
    files: ServiceFiles, declaration: dict | None, history: dict | None
) -> tuple[dict[str, FilterFunction] | None, list[DeclarationError]]:
    """The service's filter functions, and the problems of its filters file and filter references."""
    functions, errors = _load_filters(files)
    if declaration is not None:
        errors += _reference_errors(files.declaration, _current_declarations(declaration), functions)
    if history is not None:
        errors += _reference_errors(files.history, _history_declarations(history), functions)
    return functions, errors


def check_filters(directory: Path, service_id: str) -> list[DeclarationError]:
    """Filter errors of a service: its filters file reads (and is not JavaScript), imports only
    installed modules, redefines no built-in, and every filter its declaration and history name
    exists and takes its arguments. Nothing of the filters file runs.
    """
    files = ServiceFiles(Path(directory), service_id)
    declaration = _read_checked(files.declaration, schema.service_problems)[0]
    history = _read_checked(files.history, schema.history_problems)[0] if files.history.is_file() else None
    functions, errors = _filter_errors(files, declaration, history)
    # What would make the import fail, as far as reading the file can tell (it is not run).
    import_problems = getattr(functions, "import_problems", None)
    if import_problems is not None:
        errors += [DeclarationError(functions.path, f"line {line}", reason) for line, reason in import_problems()]
    return errors


# ---------------------------------------------------------------- building


def _source_document(item: dict[str, Any], shared: Mapping[str, Any]) -> SourceDocument:
    """A source document; each field it lacks is taken whole from `shared` (no merging, §1.6)."""

    def pick(key: str) -> Any:
        value = item.get(key)
        return value if value is not None else shared.get(key)

    return SourceDocument(
        location=pick("fetch"),
        select=pick("select"),
        remove=pick("remove"),
        filters=pick("filter") or [],
        execute_client_scripts=pick("executeClientScripts"),
    )


def _terms(service_id: str, terms_type: str, declaration: dict[str, Any]) -> Terms:
    valid_until = declaration.get("validUntil")
    valid_until = schema.parse_date_time(valid_until) if valid_until else None
    if "combine" in declaration:
        documents = [_source_document(item, declaration) for item in declaration["combine"]]
        return Terms(service_id, terms_type, documents, combined=True, valid_until=valid_until)
    return Terms(service_id, terms_type, [_source_document(declaration, {})], valid_until=valid_until)


def _history(service_id: str, data: dict[str, list[dict]]) -> dict[str, list[Terms]]:
    # Sorted by date whatever the order of the file; equal dates keep file order.
    return {
        terms_type: sorted((_terms(service_id, terms_type, entry) for entry in entries),
                           key=lambda terms: terms.valid_until)
        for terms_type, entries in data.items()
    }


def load_service(directory: Path, service_id: str, *, with_filters: bool = True) -> Service:
    """Load and check one service; raises ServiceLoadError listing every problem.

    No filter code runs: `Service.filters` loads the filters file when a filter is used.
    `with_filters=False` reads the declaration only, without loading or checking its filters
    (`Service.filters` is empty): enough to describe it (the OTA collection API lists a
    service whose JavaScript filters are not ported yet), never to track it.
    """
    files = ServiceFiles(Path(directory), service_id)
    try:
        return _load_service(files, with_filters)
    except ServiceLoadError:
        raise
    except Exception as error:  # noqa: BLE001 - a file no check foresaw is still only its own error
        raise ServiceLoadError(service_id, [DeclarationError(
            files.declaration, "$", f"cannot be loaded: {type(error).__name__}: {error}")]) from None


def _load_service(files: ServiceFiles, with_filters: bool = True) -> Service:
    service_id = files.service_id
    declaration, errors = _read_checked(files.declaration, schema.service_problems)
    bad_id = schema.service_id_problem(service_id)
    if bad_id:
        errors.append(DeclarationError(files.declaration, "$", bad_id))
    history = None
    if files.history.is_file():
        history, history_errors = _read_checked(files.history, schema.history_problems)
        errors += history_errors
    functions, filter_errors = _filter_errors(files, declaration, history) if with_filters else ({}, [])
    errors += filter_errors
    if errors:
        raise ServiceLoadError(service_id, errors)
    return Service(
        id=service_id,
        name=declaration["name"],
        terms={terms_type: _terms(service_id, terms_type, value) for terms_type, value in declaration["terms"].items()},
        history=_history(service_id, history or {}),
        filters=functions or {},
        path=files.declaration,
        imported_from=declaration.get("importedFrom"),
    )


def load_collection(directory: Path, *, service_ids: Iterable[str] | None = None) -> Collection:
    """Load every service of `directory` (or only `service_ids`).

    Services with problems are left out and their errors gathered in
    `Collection.errors`; a missing folder raises OSError.
    """
    directory = Path(directory)
    available = list_service_ids(directory)
    collection = Collection(directory)
    wanted = available if service_ids is None else list(dict.fromkeys(service_ids))
    for service_id in wanted:
        if service_id not in available:
            collection.errors.append(DeclarationError(
                ServiceFiles(directory, service_id).declaration, "$", f"no declaration of service '{service_id}'"))
            collection.missing.append(service_id)
            continue
        try:
            collection.services[service_id] = load_service(directory, service_id)
        except ServiceLoadError as error:
            collection.errors.extend(error.errors)
            collection.skipped[service_id] = list(error.errors)
    return collection
