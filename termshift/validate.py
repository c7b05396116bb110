"""`termshift validate`: check a collection of declarations before tracking it.

The checks are a small registry. Each is a function `(run, service_id) ->
iterable of DeclarationError`, registered with `register_check`; those marked
`schema_only` make up `--schema-only` (JSON syntax, schemas, history files,
CSS selectors, filters), the others run without the flag. Network checks (fetch, selectors,
stability, OTA's reference §1.10 item 5) live in another module, listed in
`CHECK_MODULES`, which registers them when it is imported:

    from termshift.validate import register_check

    @register_check("fetchable", network=True)
    def check_fetchable(run, service_id): ...

Every error names the file, the JSON path and the reason; the command exits 1
when there is any. What OTA tolerates and does no harm (a `select` that is not
CSS on a document that is a PDF, where selectors do not apply) is a warning
(`DeclarationWarning`): printed, but the exit status stays 0.

Validation never runs contributors' code: filters files are read with `ast`
(names, arity), never imported, in `--schema-only` as in the offline checks. Only
the network checks, which extract fetched pages as tracking would, run the
filters a declaration uses (as `termshift preview` does).
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from termshift.declarations import (
    DeclarationError,
    FilterCall,
    Service,
    ServiceFiles,
    ServiceLoadError,
    check_declaration_file,
    check_filters,
    check_history_file,
    list_service_ids,
    load_service,
    read_json,
)
from termshift.jsfilters import JavaScriptFilters, JsFilter, arity_problem
from termshift.schema import PathPart, json_path, selector_problems, suggest

# Modules that register more checks when imported; a missing one is skipped.
CHECK_MODULES: tuple[str, ...] = ("termshift.validate_network",)


@dataclass
class ValidationRun:
    """What a check needs: where the collection is and what to restrict itself to."""

    directory: Path
    service_ids: list[str]
    types: tuple[str, ...] = ()  # empty: every terms type
    schema_only: bool = False
    _services: dict[str, Service | None] = field(default_factory=dict, repr=False)

    def files(self, service_id: str) -> ServiceFiles:
        return ServiceFiles(self.directory, service_id)

    def service(self, service_id: str) -> Service | None:
        """The loaded service, or None when it does not load (the schema checks report why)."""
        if service_id not in self._services:
            try:
                self._services[service_id] = load_service(self.directory, service_id)
            except ServiceLoadError:
                self._services[service_id] = None
        return self._services[service_id]

    def wants(self, terms_type: str) -> bool:
        return not self.types or terms_type in self.types


class DeclarationWarning(DeclarationError):
    """A finding that does not make the declaration wrong (OTA tolerates it, it does no harm):
    reported, but it does not fail `validate`."""


CheckFunction = Callable[[ValidationRun, str], Iterable[DeclarationError]]


@dataclass(frozen=True)
class Check:
    name: str
    function: CheckFunction
    schema_only: bool = False  # part of `--schema-only`
    network: bool = False  # fetches pages


CHECKS: list[Check] = []


def register_check(name: str, *, schema_only: bool = False, network: bool = False):
    """Decorator adding a check to `CHECKS` (a check of the same name is replaced)."""

    def register(function: CheckFunction) -> CheckFunction:
        CHECKS[:] = [check for check in CHECKS if check.name != name]
        CHECKS.append(Check(name, function, schema_only=schema_only, network=network))
        return function

    return register


def load_check_modules() -> None:
    for module_name in CHECK_MODULES:
        try:
            importlib.import_module(module_name)
        except ModuleNotFoundError as error:
            if error.name != module_name:
                raise


def selected_checks(schema_only: bool) -> list[Check]:
    return [check for check in CHECKS if check.schema_only or not schema_only]


# ----------------------------------------------------------------- checks


@register_check("declaration", schema_only=True)
def check_declaration(run: ValidationRun, service_id: str) -> list[DeclarationError]:
    """`<id>.json` is well-formed JSON that matches the service schema."""
    return check_declaration_file(run.files(service_id).declaration)


@register_check("history", schema_only=True)
def check_history(run: ValidationRun, service_id: str) -> list[DeclarationError]:
    """`<id>.history.json`, when present, is well-formed JSON that matches the history schema."""
    path = run.files(service_id).history
    return check_history_file(path) if path.is_file() else []


@register_check("selectors", schema_only=True)
def check_selectors(run: ValidationRun, service_id: str) -> list[DeclarationError]:
    """Every CSS selector of `<id>.json` and `<id>.history.json` compiles as extraction compiles it.

    Offline, so `--schema-only` finds `"remove": "div[["`, at the path of the exact
    item (`.remove[2]`, `.select[0].startAfter`); the network checks then skip such
    documents rather than fail them again.
    """
    files = run.files(service_id)
    errors: list[DeclarationError] = []
    for path, kind in ((files.declaration, "service"), (files.history, "history")):
        if not path.is_file():
            continue
        data, unreadable = read_json(path)
        if unreadable:
            continue  # the declaration and history checks say why
        try:
            problems = selector_problems(data, kind)
        except (RecursionError, AttributeError, TypeError):
            continue  # not the expected shape: the schema checks say why
        for problem in problems:
            if _only_pdfs(data, problem.path):
                errors.append(DeclarationWarning(
                    path, problem.json_path, f"{problem.reason} (ignored: this document is a PDF, and selectors "
                                             "do not apply to PDFs; OTA tolerates it too)"))
            else:
                errors.append(DeclarationError(path, problem.json_path, problem.reason))
    return errors


def is_pdf_location(location: Any) -> bool:
    """Whether a document's address names a PDF (its path ends in .pdf): selectors do not apply to it."""
    return isinstance(location, str) and urlsplit(location.strip()).path.lower().endswith(".pdf")


def _only_pdfs(data: Any, path: tuple[PathPart, ...]) -> bool:
    """Whether the selector at `path` applies only to documents whose address is a PDF."""
    node = data
    for part in path:
        if part in ("select", "remove") and isinstance(node, dict):
            break
        try:
            node = node[part]
        except (KeyError, IndexError, TypeError):
            return False
    if not isinstance(node, dict):
        return False
    if "fetch" in node:
        return is_pdf_location(node["fetch"])
    items = node.get("combine")
    if not isinstance(items, list) or not items:
        return False
    key = next((part for part in path if part in ("select", "remove")), None)
    # A shared selector applies to the combined documents that do not declare their own.
    concerned = [item for item in items if isinstance(item, dict) and item.get(key) is None]
    return bool(concerned) and all(is_pdf_location(item.get("fetch")) for item in concerned)


@register_check("javascript filters", schema_only=True)
def check_javascript_filters(run: ValidationRun, service_id: str) -> list[DeclarationError]:
    """JavaScript filters declared with parameters they never read (JavaScript ignores extra
    arguments: OTA would run them without the parameters). Parsing, exports and names are
    checked by the "filters" check; no filter code is run."""
    errors: list[DeclarationError] = []
    files = run.files(service_id)
    service = run.service(service_id)
    if service is None or not isinstance(service.filters, JavaScriptFilters):
        return errors
    for path, prefix, declaration in _terms_declarations(files):
        lists = [((*prefix, "filter"), declaration.get("filter"))]
        lists += [((*prefix, "combine", index, "filter"), item.get("filter"))
                  for index, item in enumerate(declaration.get("combine") or []) if isinstance(item, dict)]
        for list_path, items in lists:
            for index, item in enumerate(items if isinstance(items, list) else []):
                call = FilterCall.from_declaration(item)
                function = service.filters.get(call.name)
                problem = arity_problem(call, function) if isinstance(function, JsFilter) else None
                if problem:
                    errors.append(DeclarationError(path, json_path((*list_path, index)), problem))
    return errors


def _terms_declarations(files: ServiceFiles) -> Iterable[tuple[Path, tuple, dict]]:
    """(file, JSON path prefix, terms declaration) of a service's declaration and history files."""
    for path in (files.declaration, files.history):
        data, unreadable = read_json(path) if path.is_file() else (None, [])
        if unreadable or not isinstance(data, dict):
            continue  # the declaration and history checks say why
        if path == files.declaration:
            terms = data.get("terms")
            for terms_type, declaration in (terms.items() if isinstance(terms, dict) else []):
                if isinstance(declaration, dict):
                    yield path, ("terms", terms_type), declaration
        else:
            for terms_type, entries in data.items():
                for index, declaration in enumerate(entries if isinstance(entries, list) else []):
                    if isinstance(declaration, dict):
                        yield path, (terms_type, index), declaration


@register_check("filters", schema_only=True)
def check_service_filters(run: ValidationRun, service_id: str) -> list[DeclarationError]:
    """The filters file loads, redefines no built-in, and every named filter exists."""
    return check_filters(run.directory, service_id)


@register_check("combine-duplicates")
def check_combine_duplicates(run: ValidationRun, service_id: str) -> list[DeclarationError]:
    """No `combine` lists the same location twice (OTA 14.1's check, §1.10 item 4)."""
    service = run.service(service_id)
    if service is None:
        return []
    return [
        DeclarationError(service.path, json_path(("terms", terms_type, "combine")),
                         f"the location '{location}' appears more than once")
        for terms_type, terms in service.terms.items() if run.wants(terms_type)
        for location in terms.duplicate_locations
    ]


# ----------------------------------------------------------------- running


@dataclass
class ValidationReport:
    services: list[str]
    checks: list[str]
    errors: dict[str, list[DeclarationError]] = field(default_factory=dict)  # by service id
    warnings: dict[str, list[DeclarationError]] = field(default_factory=dict)  # by service id

    @property
    def warning_count(self) -> int:
        return sum(len(warnings) for warnings in self.warnings.values())

    @property
    def error_count(self) -> int:
        return sum(len(errors) for errors in self.errors.values())

    @property
    def ok(self) -> bool:
        return self.error_count == 0 and bool(self.services)


def _run_check(check: Check, run: ValidationRun, service_id: str) -> list[DeclarationError]:
    try:
        return list(check.function(run, service_id))
    except Exception as error:  # a bug in one check must not hide the other results
        return [DeclarationError(run.files(service_id).declaration, "-",
                                 f"the check '{check.name}' crashed: {type(error).__name__}: {error}")]


def validate_collection(
    directory: Path,
    *,
    service_ids: Iterable[str] = (),
    types: Iterable[str] = (),
    schema_only: bool = False,
) -> ValidationReport:
    """Run the selected checks on the services of `directory` (all of them by default)."""
    directory = Path(directory)
    available = list_service_ids(directory)
    wanted = list(dict.fromkeys(service_ids)) or available
    if not schema_only:
        load_check_modules()
    checks = selected_checks(schema_only)
    report = ValidationReport(services=[], checks=[check.name for check in checks])
    # Every service is known up front, so that the network checks fetch them all in one batch.
    run = ValidationRun(directory, [sid for sid in wanted if sid in available], tuple(types), schema_only)
    for service_id in wanted:
        if service_id not in available:
            hint = suggest(service_id, available)
            reason = f"no declaration of service '{service_id}'" + (f" (did you mean '{hint}'?)" if hint else "")
            report.errors[service_id] = [DeclarationError(run.files(service_id).declaration, "$", reason)]
            continue
        report.services.append(service_id)
        findings = [error for check in checks for error in _run_check(check, run, service_id)]
        errors = [finding for finding in findings if not isinstance(finding, DeclarationWarning)]
        warnings = [finding for finding in findings if isinstance(finding, DeclarationWarning)]
        if errors:
            report.errors[service_id] = errors
        if warnings:
            report.warnings[service_id] = warnings
    return report
