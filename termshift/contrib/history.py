"""Recording history (`termshift history record SERVICE TYPE`): keep the old declaration when a page changes.

When a site is redesigned, the declaration of a document must change; but the
snapshots fetched before the change still need the old one to be re-extracted
(`termshift rebuild`, technical upgrades). OTA keeps old declarations in
`<id>.history.json`, each with `validUntil`: the last instant it applied,
inclusive, which decision record 0002 sets to the author date of the last
snapshot the declaration was valid for (reference §1.8).

This command finds that date for you: it walks the document's snapshots in the
archive, newest first, and stops at the first one the *current* declaration
still extracts. It then appends the current declaration, with that
`validUntil`, to the history file (kept sorted and canonical), and leaves
`<id>.json` as it is, for you to edit. While the current declaration still
extracts the newest snapshot the page has not changed, and it refuses (unless
`--force`): recording then would end the declaration that today's snapshots need.

For combined terms every document is searched, and `validUntil` is the earliest
of their dates: from the first snapshot that broke, the new declaration applies.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from termshift.archive_repo import ArchiveError, RecordRepository, Snapshot
from termshift.contrib.lint import NotCanonicalizable, parse_json_text, write_canonical
from termshift.declarations import (
    Service,
    ServiceFiles,
    ServiceLoadError,
    SourceDocument,
    Terms,
    load_service,
)
from termshift.errors import ExtractError, TermshiftError
from termshift.schema import parse_date_time, suggest
from termshift.trackers.extract import extract


class HistoryError(TermshiftError):
    """The history cannot be recorded; the message says why and what to do."""


@dataclass
class DocumentSearch:
    """The newest snapshot of one document that the current declaration extracts."""

    document: SourceDocument
    snapshot: Snapshot | None  # None: no snapshot extracts
    newer_failures: int  # snapshots newer than `snapshot` that do not extract
    total: int  # snapshots of the document in the archive
    first_failure: Snapshot | None = None  # the oldest of the newer failures


def format_valid_until(date: datetime) -> str:
    """`2024-03-18T18:30:09Z`: seconds, UTC, as OTA writes it."""
    return date.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def find_last_extracted(snapshots: RecordRepository, service: Service, terms: Terms,
                        document: SourceDocument) -> DocumentSearch:
    """Walk the document's snapshots newest first, to the first one `document` extracts."""
    document_id = document.id if terms.combined else None
    records = snapshots.history(service.id, terms.type, document_id)
    failures: list[Snapshot] = []
    for record in records:
        try:
            extract(record.content, record.mime_type, document, service.filters)
        except ExtractError:
            failures.append(record)
            continue
        return DocumentSearch(document, record, len(failures), len(records), failures[-1] if failures else None)
    return DocumentSearch(document, None, len(failures), len(records), failures[-1] if failures else None)


def _open_snapshots(data_dir: Path) -> RecordRepository:
    path = data_dir / "snapshots"
    if not path.exists():
        raise HistoryError(f"no snapshots archive at {path}: the date the current declaration stopped working "
                           "is read from its snapshots; pass --data DIR (the folder holding snapshots/)")
    try:
        return RecordRepository(path, "snapshots", read_only=True)
    except ArchiveError as error:
        raise HistoryError(f"cannot read the snapshots archive: {error}") from None


def _load(directory: Path, service_id: str, terms_type: str) -> tuple[Service, Terms]:
    if not ServiceFiles(directory, service_id).declaration.is_file():
        raise HistoryError(f"no declaration of service '{service_id}' in {directory}")
    try:
        service = load_service(directory, service_id)
    except ServiceLoadError as error:
        raise HistoryError(f"{service_id} does not load; fix these first (`termshift validate --schema-only`):\n"
                           f"{error}") from None
    terms = service.terms.get(terms_type)
    if terms is None:
        hint = suggest(terms_type, service.terms)
        raise HistoryError(f"{service_id} has no current '{terms_type}' declaration"
                           + (f" (did you mean '{hint}'?)" if hint else f"; it declares: {', '.join(service.terms)}"))
    return service, terms


def _searches(snapshots: RecordRepository, service: Service, terms: Terms) -> list[DocumentSearch]:
    searches = [find_last_extracted(snapshots, service, terms, document) for document in terms.documents]
    for search in searches:
        where = search.document.location
        if search.total == 0:
            raise HistoryError(
                f"no snapshot of {service.id} / {terms.type} ({where}) in the archive: the current declaration "
                "was never used, so there is no history to keep. Just edit the declaration.")
        if search.snapshot is None:
            raise HistoryError(
                f"none of the {search.total} snapshots of {where} extracts with the current declaration, so it "
                "has no date of validity to record. Just edit the declaration (`termshift preview` checks it).")
    return searches


def _read_history(path: Path) -> dict[str, Any]:
    if not path.is_file():
        return {}
    try:
        data = parse_json_text(path.read_text(encoding="utf-8"))
    except NotCanonicalizable as error:
        raise HistoryError(f"{path}: {error}; fix it before recording more history") from None
    if not isinstance(data, dict):
        raise HistoryError(f"{path}: $: expected an object keyed by terms type")
    return data


def _current_declaration(path: Path, terms_type: str) -> dict[str, Any]:
    """The terms declaration as written (a combine's shared fields kept, not expanded)."""
    return dict(json.loads(path.read_text(encoding="utf-8-sig"))["terms"][terms_type])


def record_history(declarations_dir: Path, data_dir: Path, service_id: str,
                   terms_type: str, *, force: bool = False) -> tuple[str, list[DocumentSearch]]:
    """Append the current declaration of `terms_type` to the history file; returns its
    `validUntil` and the search of each document. Raises HistoryError.

    Refused, unless `force`, while the current declaration still extracts the newest
    snapshot of every document: the page has not changed, so that declaration is
    still the right one for today's snapshots.
    """
    service, terms = _load(declarations_dir, service_id, terms_type)
    snapshots = _open_snapshots(data_dir)
    try:
        searches = _searches(snapshots, service, terms)
    finally:
        snapshots.close()
    if not force:
        _refuse_unchanged(service, terms, searches)
    valid_until = format_valid_until(min(search.snapshot.fetch_date for search in searches))
    files = ServiceFiles(declarations_dir, service_id)
    history = _read_history(files.history)
    entries = history.get(terms_type, [])
    if not isinstance(entries, list):
        raise HistoryError(f'{files.history}: $["{terms_type}"]: expected an array; fix it first')
    _refuse_overlap(files.history, terms_type, entries, valid_until)
    entry = {**_current_declaration(files.declaration, terms_type), "validUntil": valid_until}
    history[terms_type] = [*entries, entry]
    write_canonical(files.history, history, "history")
    return valid_until, searches


def _refuse_unchanged(service: Service, terms: Terms, searches: list[DocumentSearch]) -> None:
    """History is recorded when the page changed; recording it before would end the current
    declaration at a snapshot that it still extracts, and leave today's snapshots to the next one."""
    if any(search.first_failure is not None for search in searches):
        return
    newest = max(search.snapshot.fetch_date for search in searches)
    documents = "every document's" if len(searches) > 1 else "the"
    raise HistoryError(
        f'the current "{terms.type}" declaration of {service.id} still extracts {documents} newest snapshot '
        f"(fetched {format_valid_until(newest)}): the page has not changed, so there is no history to record. "
        "Record history only when the page changed and the declaration stopped extracting it; "
        "to record it anyway (say, before a planned redesign), pass --force.")


def _refuse_overlap(path: Path, terms_type: str, entries: list[Any], valid_until: str) -> None:
    """A new entry must end after every recorded one: the history is a sequence of periods."""
    new_date = parse_date_time(valid_until)
    for entry in entries:
        try:
            date = parse_date_time(entry["validUntil"])
        except (TypeError, KeyError, ValueError):
            continue  # the schema check reports it
        if date >= new_date:
            raise HistoryError(
                f'{path}: "{terms_type}" already has an entry valid until {entry["validUntil"]}, not before '
                f"{valid_until} (the last snapshot the current declaration extracts): the current declaration "
                "seems recorded already. Edit the declaration, or fix the history file by hand.")
