"""Network checks of declarations: what `termshift validate` adds to the schema checks.

For each declared document (OTA's reference §1.10, item 5, and more):

- `fetchable`        the page can be fetched, with the fetcher the tracker would use;
- `selectors-match`  the extraction gives content (OTA's "has no match" errors);
- `long-enough`      the Markdown is longer than 100 characters;
- `stable`           a second fetch a few seconds later gives the same Markdown
                     (otherwise the tracker would record noise), showing the lines that differ;
- `select-items`     each item of a `select` list, and each bound of a range in it, matches
                     something (OTA silently skips an item that matches nothing).

`inspect_documents` does the work for a batch of documents with two calls to the
fetcher (one crawl per round, whatever the number of services), and is shared by
`termshift try`, `termshift preview` and the `/declare` page, which also show its
warnings (`several-candidates`: a `select` item that matches many separate
elements). The checks are registered in `termshift.validate`'s registry.

`modified_selection` and `validate_modified` implement `validate --modified`:
only the services and terms types changed since a git base (§1.10).
"""

from __future__ import annotations

import difflib
import json
import os
import subprocess
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from lxml import etree

from termshift.config import FetcherSettings
from termshift.declarations import DeclarationError, Service, SourceDocument, Terms
from termshift.errors import ErrorKind, ExtractError, FetchError, TermshiftError
from termshift.schema import json_path, terms_selector_problems
from termshift.selectors import selection
from termshift.trackers.extract import extract, is_pdf, parse_html
from termshift.trackers.fetcher import FetchRequest, FetchResult, fetch_all
from termshift.validate import (
    ValidationReport,
    ValidationRun,
    is_pdf_location,
    register_check,
    validate_collection,
)

MIN_LENGTH = 100  # OTA: the extracted Markdown must be longer than this
DEFAULT_NOISE_DELAY = 3.0  # seconds between the two fetches of the noise check
NOISE_DELAY_VARIABLE = "TERMSHIFT_VALIDATE_NOISE_DELAY"
MAX_DIFF_LINES = 12  # differing lines shown when the noise check fails

HINTS = {
    "fetchable": "open the URL in a browser: if it works there, the site may block robots "
                 '(try "executeClientScripts": true); if not, the page moved: find its new address',
    "selectors-match": "open the page, right-click the text of the terms > Inspect, and choose a selector "
                       "for the element that holds it all; `termshift try URL --select SELECTOR` shows "
                       'what a selector extracts. Content built by JavaScript needs "executeClientScripts": true',
    "long-enough": "that is too short for terms: the selector probably matches a heading or an empty "
                   "wrapper; select the element that holds the whole text",
    "stable": "part of the page changes at every load (a date, a counter, a random id): leave it out "
              'with "remove", or with a filter (docs/filters.md)',
    "select-items": "fix this item or delete it: it extracts nothing today, so a typo in it goes unnoticed",
    "remove-range": "extraction stops when a bound of a remove range matches nothing: fix this bound, or delete "
                    "the range if that part of the page is gone",
    "invalid-selector": "this is not CSS that extraction can use: check its brackets and quotes; pseudo-elements "
                        "(::before) are not supported. `termshift validate --schema-only` finds these offline",
    "several-candidates": "all of them are kept, in page order; if you meant only one, use a more precise "
                          "selector (an id, or the element that contains them all)",
}


@dataclass(frozen=True)
class Finding:
    """One result of a check on a document. `where` is relative to the document's declaration."""

    check: str
    message: str
    where: tuple[str | int, ...] = ()
    warning: bool = False
    specific_hint: str | None = None  # instead of the check's usual hint

    @property
    def hint(self) -> str:
        return self.specific_hint if self.specific_hint is not None else HINTS.get(self.check, "")


@dataclass
class DocumentInspection:
    """What fetching a document twice and extracting it gave."""

    document: SourceDocument
    first: FetchResult | None = None
    second: FetchResult | None = None
    markdown: str | None = None
    second_markdown: str | None = None
    findings: list[Finding] = field(default_factory=list)

    @property
    def errors(self) -> list[Finding]:
        return [finding for finding in self.findings if not finding.warning]

    @property
    def warnings(self) -> list[Finding]:
        return [finding for finding in self.findings if finding.warning]


# ------------------------------------------------------------------ one page


def _fetch_hint(error: FetchError) -> str:
    if error.kind is ErrorKind.BLOCKED:
        return ('the site answered with a challenge or block page; try "executeClientScripts": true, '
                "or leave the document out if it blocks robots for good")
    if error.kind is ErrorKind.BOT_BLOCKING:
        return 'the site may be refusing robots: try "executeClientScripts": true'
    if error.kind is ErrorKind.TRANSIENT:
        return "a temporary failure: run the check again later"
    if error.kind is ErrorKind.CONFIGURATION:
        return "see the message: it is about the configuration, not the page"
    return HINTS["fetchable"]


def _outermost(elements: list[etree._Element]) -> list[etree._Element]:
    """The elements that are not inside another element of the list."""
    members = set(elements)
    return [element for element in elements if not any(parent in members for parent in element.iterancestors())]


def analyse_selection(content: str, document: SourceDocument,
                      service_filters: Mapping[str, Any] | None = None) -> list[Finding]:
    """Selector problems that extraction alone does not reveal, on the page as `select` sees it.

    - an item of a `select` list (or a bound of a range in it) that matches nothing: OTA skips it;
    - a string item that matches several separate elements (a warning: maybe intended).
    A single selector that matches nothing is left to extraction, which already fails.
    """
    root = parse_html(content, document.location, html_elements=bool(document.filters))
    try:
        if document.filters:
            from termshift.filters import apply_filters

            apply_filters(root, document, service_filters or {})
        selection.remove(root, document.remove)
    except ExtractError:
        return []  # extraction reports it
    items = selection.as_list(document.select)
    in_list = isinstance(document.select, list)
    findings: list[Finding] = []
    for index, item in enumerate(items):
        where: tuple[str | int, ...] = ("select", index) if in_list else ("select",)
        try:
            findings.extend(_item_findings(root, item, where, report_empty=in_list and len(items) > 1))
        except ExtractError as error:
            findings.append(Finding("select-items", str(error), where))
    return findings


def _item_findings(root: etree._Element, item: Any, where: tuple, *, report_empty: bool) -> list[Finding]:
    if isinstance(item, dict):
        if not report_empty:
            return []
        return [
            Finding("select-items", f"the {key} selector '{item[key]}' of this range matches nothing", (*where, key))
            for key in ("startBefore", "startAfter", "endBefore", "endAfter")
            if key in item and selection.query_first(root, item[key]) is None
        ]
    matches = selection.query_all(root, item)
    if not matches:
        return [Finding("select-items", f"'{item}' matches nothing in the page", where)] if report_empty else []
    outermost = _outermost(matches)
    if len(outermost) > 1:
        return [Finding("several-candidates", f"'{item}' matches {len(outermost)} separate elements",
                        where, warning=True)]
    return []


def selector_findings(document: SourceDocument) -> list[Finding]:
    """A finding for each `select` or `remove` selector of `document` that is not usable CSS,
    where it sits (`("remove", 1)`, `("select", 0, "startAfter")`): such a document is not fetched.

    On a document whose address is a PDF they are warnings (selectors do not apply to PDFs, OTA
    tolerates them): it is fetched, and extraction tells whether it really is a PDF."""
    problems = terms_selector_problems({"select": document.select, "remove": document.remove})
    pdf = is_pdf_location(document.location)
    return [Finding("selectors-match", problem.reason + (" (ignored on a PDF)" if pdf else ""), problem.path,
                    warning=pdf, specific_hint=HINTS["invalid-selector"])
            for problem in problems]


def _blocks_fetch(findings: list[Finding]) -> bool:
    return any(not finding.warning for finding in findings)


def _extract(result: FetchResult, inspection: DocumentInspection,
             service_filters: Mapping[str, Any] | None) -> str | None:
    """The Markdown of a fetched page, or None with a finding saying why."""
    document = inspection.document
    try:
        markdown = extract(result.content, result.mime_type or "text/html", document, service_filters or {})
    except ExtractError as error:
        in_remove = _failing_remove_range(result, document, service_filters)
        inspection.findings.append(Finding("selectors-match", str(error), in_remove or ("select",),
                                           specific_hint=HINTS["remove-range"] if in_remove else None))
        return None
    return markdown


def _failing_remove_range(result: FetchResult, document: SourceDocument,
                          service_filters: Mapping[str, Any] | None) -> tuple[str | int, ...] | None:
    """Where a failed extraction went wrong when it is a `remove` range whose bound matches nothing
    (extraction evaluates `remove` first); None when the problem is elsewhere."""
    if document.remove is None or is_pdf(result.mime_type or "") or not isinstance(result.content, str):
        return None
    try:
        root = parse_html(result.content, document.location, html_elements=bool(document.filters))
        if document.filters:
            from termshift.filters import apply_filters

            apply_filters(root, document, service_filters or {})
        in_list = isinstance(document.remove, list)
        for index, item in enumerate(selection.as_list(document.remove)):
            for bound in ("startBefore", "startAfter", "endBefore", "endAfter"):
                if isinstance(item, dict) and bound in item and selection.query_first(root, item[bound]) is None:
                    return ("remove", index, bound) if in_list else ("remove", bound)
    except ExtractError:
        return None
    return None


def _check_first(result: FetchResult, inspection: DocumentInspection,
                 service_filters: Mapping[str, Any] | None) -> None:
    inspection.first = result
    if not result.ok:
        inspection.findings.append(Finding("fetchable", str(result.error), ("fetch",),
                                           specific_hint=_fetch_hint(result.error)))
        return
    markdown = _extract(result, inspection, service_filters)
    inspection.markdown = markdown
    if markdown is None:
        return
    if not is_pdf(result.mime_type or "") and isinstance(result.content, str):
        inspection.findings.extend(analyse_selection(result.content, inspection.document, service_filters))
    if len(markdown) <= MIN_LENGTH:
        inspection.findings.append(Finding(
            "long-enough", f"the extracted text has only {len(markdown)} characters (more than "
            f"{MIN_LENGTH} are expected): {markdown[:80]!r}", ("select",)))


def differing_lines(first: str, second: str, limit: int = MAX_DIFF_LINES) -> list[str]:
    """The lines that differ between two extractions, `-` for the first and `+` for the second."""
    lines = [line for line in difflib.unified_diff(first.splitlines(), second.splitlines(), n=0, lineterm="")
             if line[:1] in "-+" and not line.startswith(("---", "+++"))]
    if len(lines) > limit:
        lines = [*lines[:limit], f"… and {len(lines) - limit} more"]
    return lines


def _check_second(result: FetchResult, inspection: DocumentInspection,
                  service_filters: Mapping[str, Any] | None) -> None:
    inspection.second = result
    if not result.ok:
        inspection.findings.append(Finding("stable", f"the second fetch failed: {result.error}", ("fetch",)))
        return
    try:
        second = extract(result.content, result.mime_type or "text/html", inspection.document,
                         service_filters or {})
    except ExtractError as error:
        inspection.findings.append(Finding("stable", f"the second extraction failed: {error}", ("select",)))
        return
    inspection.second_markdown = second
    if second != inspection.markdown:
        lines = "\n".join(f"        {line}" for line in differing_lines(inspection.markdown, second))
        inspection.findings.append(Finding(
            "stable", f"two fetches a few seconds apart give different text:\n{lines}", ()))


class NoiseDelayError(TermshiftError):
    """$TERMSHIFT_VALIDATE_NOISE_DELAY is not a number of seconds."""


def noise_delay() -> float:
    """Seconds between the two fetches: $TERMSHIFT_VALIDATE_NOISE_DELAY, else 3. Raises NoiseDelayError."""
    value = os.environ.get(NOISE_DELAY_VARIABLE)
    try:
        return max(0.0, float(value)) if value else DEFAULT_NOISE_DELAY
    except ValueError:
        raise NoiseDelayError(f"{NOISE_DELAY_VARIABLE}: expected a number of seconds, got {value!r}") from None


Fetcher = Callable[[list[FetchRequest], FetcherSettings], list[FetchResult]]


def inspect_documents(
    documents: Sequence[tuple[SourceDocument, Mapping[str, Any] | None]],
    fetcher_settings: FetcherSettings,
    *,
    delay: float | None = DEFAULT_NOISE_DELAY,
    fetcher: Fetcher = fetch_all,
) -> list[DocumentInspection]:
    """Fetch and extract every (document, service filters) pair; with a `delay`, fetch the
    documents that extracted once more `delay` seconds later and compare (the noise check).

    `fetcher_settings` is the `[fetcher]` section (`Settings.fetcher`); `fetcher` is
    `fetch_all`, which fetches a whole batch in one crawl.
    """
    inspections = [DocumentInspection(document, findings=selector_findings(document))
                   for document, _filters in documents]
    filters = [service_filters for _document, service_filters in documents]
    # A document with a selector that is not CSS would only fail again after the fetch.
    requests = [_request(document, index) for index, (document, _filters) in enumerate(documents)
                if not _blocks_fetch(inspections[index].findings)]
    for result in fetcher(requests, fetcher_settings) if requests else []:
        _check_first(result, inspections[result.key], filters[result.key])
    if delay is None:
        return inspections
    again = [request for request in requests if inspections[request.key].markdown is not None]
    if again:
        time.sleep(delay)
        for result in fetcher(again, fetcher_settings):
            _check_second(result, inspections[result.key], filters[result.key])
    return inspections


def _request(document: SourceDocument, key: int) -> FetchRequest:
    return FetchRequest(document.location, execute_client_scripts=document.execute_client_scripts,
                        css_selectors=document.css_selectors, key=key)


# ------------------------------------------------------- the validate checks


NETWORK_CHECKS = ("fetchable", "selectors-match", "long-enough", "stable", "select-items")


@dataclass
class _ServiceResults:
    """The errors of one service, by check name, as DeclarationErrors ready to print."""

    errors: dict[str, list[DeclarationError]] = field(default_factory=dict)


@dataclass(frozen=True)
class _Target:
    """One document to check, and where it sits in its service's declaration."""

    service: Service
    terms: Terms
    index: int  # position in `terms.documents`

    @property
    def document(self) -> SourceDocument:
        return self.terms.documents[self.index]


def _raw_terms(service: Service) -> dict[str, Any]:
    try:
        return json.loads(service.path.read_text(encoding="utf-8-sig"))["terms"]
    except (OSError, ValueError, KeyError, TypeError):
        return {}


def _finding_path(raw_terms: Any, target: _Target, where: tuple) -> str:
    """The JSON path of a finding; a combined document's inherited `select` is the terms-level one."""
    terms = target.terms
    prefix: tuple[str | int, ...] = ("terms", terms.type)
    if terms.combined:
        try:
            own = not where or where[0] not in ("select", "remove") or where[0] in raw_terms["combine"][target.index]
        except (KeyError, IndexError, TypeError):
            own = True
        if own:
            prefix = (*prefix, "combine", target.index)
    return json_path((*prefix, *where))


def _reason(finding: Finding, document: SourceDocument) -> str:
    """`[check] URL: message — hint: …`; a message of several lines gets its hint on a line of its own."""
    reason = f"[{finding.check}] {document.location}: {finding.message}"
    if finding.hint:
        reason += f"\n    hint: {finding.hint}" if "\n" in finding.message else f" — hint: {finding.hint}"
    return reason


def _inspect_services(run: ValidationRun, service_ids: list[str]) -> dict[str, _ServiceResults]:
    """Run the network checks of several services in one batch of fetches."""
    from termshift.config import ConfigError, configured_path, load_settings

    # A document with a selector that is not CSS is left out: the offline check 'selectors' reports it.
    targets = [
        _Target(service, terms, index)
        for service in map(run.service, service_ids)
        for terms in service.terms.values() if run.wants(terms.type)
        for index in range(len(terms.documents)) if not _blocks_fetch(selector_findings(terms.documents[index]))
    ]
    results = {service_id: _ServiceResults() for service_id in service_ids}
    if not targets:
        return results
    try:
        settings = load_settings(configured_path())  # the command's --config, if given
    except ConfigError as error:
        for service_id in service_ids:
            path = run.files(service_id).declaration
            results[service_id].errors["fetchable"] = [DeclarationError(path, "-", f"cannot fetch: {error}")]
        return results
    inspections = inspect_documents([(target.document, target.service.filters) for target in targets],
                                    settings.fetcher, delay=noise_delay())
    raw = {service_id: _raw_terms(run.service(service_id)) for service_id in service_ids}
    for target, inspection in zip(targets, inspections, strict=True):
        service = target.service
        for finding in inspection.errors:
            path = _finding_path(raw[service.id].get(target.terms.type, {}), target, finding.where)
            results[service.id].errors.setdefault(finding.check, []).append(
                DeclarationError(service.path, path, _reason(finding, target.document)))
    return results


def _results(run: ValidationRun, service_id: str) -> _ServiceResults:
    """This service's results, computed on first use together with every other service the run
    already knows about and that loads, so that they share the two rounds of fetches."""
    cache: dict[str, _ServiceResults] = run.__dict__.setdefault("_network_results", {})
    if service_id not in cache:
        pending = [sid for sid in dict.fromkeys([service_id, *run.service_ids])
                   if sid not in cache and run.service(sid) is not None]
        cache.update(_inspect_services(run, pending))
    return cache.get(service_id, _ServiceResults())


def _register(check_name: str) -> None:
    def check(run: ValidationRun, service_id: str) -> list[DeclarationError]:
        if run.service(service_id) is None:
            return []  # the schema checks say why it does not load
        return _results(run, service_id).errors.get(check_name, [])

    check.__doc__ = f"Network check '{check_name}' (see termshift.validate_network)."
    register_check(check_name, network=True)(check)


for _name in NETWORK_CHECKS:
    _register(_name)


# -------------------------------------------------------------- --modified


class ModifiedSelectionError(TermshiftError):
    """`--modified` cannot tell what changed (no git repository, no such base…)."""


def _git(directory: Path, *arguments: str) -> str:
    completed = subprocess.run(["git", *arguments], cwd=directory, capture_output=True, check=False,
                               encoding="utf-8", errors="surrogateescape")  # file names are UTF-8 bytes
    if completed.returncode != 0:
        raise ModifiedSelectionError(completed.stderr.strip() or f"git {' '.join(arguments)} failed")
    return completed.stdout


def merge_base(directory: Path, base: str | None) -> tuple[str, str]:
    """(the ref compared with, the merge-base commit of it and HEAD). `base` None: `main`, else
    `origin/main`. Raises ModifiedSelectionError."""
    try:
        _git(directory, "rev-parse", "--show-toplevel")
    except ModifiedSelectionError:
        raise ModifiedSelectionError(f"{directory} is not inside a git repository: --modified compares "
                                     "with a git base") from None
    candidates = [base] if base else ["main", "origin/main"]
    for ref in candidates:
        try:
            _git(directory, "rev-parse", "--verify", "--quiet", f"{ref}^{{commit}}")
        except ModifiedSelectionError:
            continue
        try:
            return ref, _git(directory, "merge-base", ref, "HEAD").strip()
        except ModifiedSelectionError as error:
            raise ModifiedSelectionError(f"no common ancestor of '{ref}' and HEAD: {error}") from None
    wanted = f"'{base}'" if base else "'main' (nor 'origin/main')"
    raise ModifiedSelectionError(f"no branch or commit {wanted} to compare with: pass --base REF")


def _changed_files(directory: Path, commit: str) -> list[str]:
    """Files of `directory` (not of its subfolders) changed since `commit`: committed, staged,
    unstaged and untracked changes, so a contributor can check before committing."""
    changed = _git(directory, "diff", "--name-only", "--no-renames", "--relative", "-z", commit, "--", ".")
    untracked = _git(directory, "ls-files", "--others", "--exclude-standard", "-z", "--", ".")
    names = [name for name in (changed + untracked).split("\0") if name]
    return sorted({name for name in names if "/" not in name})


def _service_and_role(name: str) -> tuple[str, str] | None:
    for suffix, role in ((".filters.history.js", "history"), (".history.json", "history"),
                         (".filters.py", "filters"), (".filters.js", "filters"), (".json", "declaration")):
        if name.endswith(suffix):
            return name[: -len(suffix)], role
    return None


def _changed_types(directory: Path, commit: str, name: str) -> set[str] | None:
    """Terms types of a declaration added or changed since `commit` (None: all of them)."""
    try:
        new_terms = json.loads((directory / name).read_text(encoding="utf-8-sig"))["terms"]
    except (ValueError, KeyError, TypeError):
        return None  # unreadable now: every check must run, and the schema check says why
    try:
        old_terms = json.loads(_git(directory, "show", f"{commit}:./{name}"))["terms"]
    except (ModifiedSelectionError, ValueError, KeyError, TypeError):
        return None  # a new service (or unreadable before): check all of it
    if not isinstance(new_terms, dict) or not isinstance(old_terms, dict):
        return None
    return {terms_type for terms_type, value in new_terms.items() if old_terms.get(terms_type) != value}


def modified_selection(declarations_dir: Path, base: str | None = None) -> dict[str, set[str] | None]:
    """Service id -> terms types to check (None: all), for the changes since the merge base of
    `base` (default `main`, else `origin/main`) and HEAD, plus uncommitted changes.

    OTA's rules (reference §1.10): a changed filters file selects every type of its
    service; a changed history file alone selects nothing; a changed declaration selects
    its added or changed types (compared as parsed JSON, so a reformatting selects
    nothing). A deleted declaration is left out. Raises ModifiedSelectionError.
    """
    directory = Path(declarations_dir)
    _ref, commit = merge_base(directory, base)
    selection: dict[str, set[str] | None] = {}
    for name in _changed_files(directory, commit):
        parsed = _service_and_role(name)
        if parsed is None:
            continue
        service_id, role = parsed
        if role == "history" or not (directory / f"{service_id}.json").is_file():
            continue
        if role == "filters":
            selection[service_id] = None
        elif selection.get(service_id, set()) is not None:
            types = _changed_types(directory, commit, name)
            selection[service_id] = None if types is None else selection.get(service_id, set()) | types
    return dict(sorted(selection.items()))


def _describe_selection(selection: Mapping[str, set[str] | None]) -> str:
    if not selection:
        return "no declaration changed"
    parts = [f"{service_id} ({'all types' if types is None else ', '.join(sorted(types)) or 'no terms type'})"
             for service_id, types in selection.items()]
    return "; ".join(parts)


def validate_modified(
    directory: Path,
    base: str | None = None,
    *,
    service_ids: Iterable[str] = (),
    types: Iterable[str] = (),
    schema_only: bool = False,
    announce: Callable[[str], Any] | None = None,
) -> ValidationReport:
    """`termshift validate --modified`: validate only what changed since the git base.

    A service whose declaration changed but no terms type did (its name, say) gets
    the schema checks only. `announce` is given the line saying what changed, before
    the checks. Raises ModifiedSelectionError when git cannot tell.
    """
    ref, _commit = merge_base(directory, base)
    selection = modified_selection(directory, base)
    wanted_services, wanted_types = set(service_ids), set(types)
    if wanted_services:
        selection = {sid: value for sid, value in selection.items() if sid in wanted_services}
    if announce is not None:
        announce(f"Changed since {ref}: {_describe_selection(selection)}")
    merged = ValidationReport(services=[], checks=[])
    for service_id, changed in selection.items():
        chosen = wanted_types if changed is None else (changed & wanted_types if wanted_types else changed)
        nothing_to_fetch = changed is not None and not chosen
        report = validate_collection(directory, service_ids=[service_id], types=sorted(chosen),
                                     schema_only=schema_only or nothing_to_fetch)
        merged.services += report.services
        merged.checks += [check for check in report.checks if check not in merged.checks]
        merged.errors.update(report.errors)
        merged.warnings.update(report.warnings)
    return merged
