"""Snapshots in, version out: how the snapshots of a terms become its version.

The one place where this is written, used by the tracking run (`termshift.trackers.run`),
the rebuild replay and the technical upgrades (`termshift.trackers.replay`), as OTA's archivist
does it once. It owns:

- `assemble(service, terms, snapshots, extractor)`: the Markdown of a terms from one
  snapshot per source document, in declaration order, each extracted
  (`termshift.trackers.extract`), combined documents joined by `DOCUMENT_SEPARATOR`.
- `Extractor`: extraction of one snapshot with the service's filters, as they are now or
  as they were at the snapshot's date (JavaScript filters with a history), with a small
  memo for combined terms (a replay re-joins unchanged documents).
- Block and challenge pages: recorded as snapshots with the `BLOCKED_TRAILER`, kept as
  evidence and never extracted: `is_blocked`, `latest_usable`.
- `record_version(...)`: the Markdown recorded as a version when it changed, and
  announced to the listeners (`version_recorded`, termshift.trackers.events).
- `extraction_error(error)`: a failure of these steps as the tracking run reports it.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from datetime import datetime

from termshift.archive_repo import RecordRepository, Snapshot, Version
from termshift.declarations import Service, SourceDocument, Terms
from termshift.errors import ExtractError
from termshift.jsfilters import filters_at
from termshift.trackers.events import TRACKING, Emitter, VersionRecorded
from termshift.trackers.extract import extract

__all__ = [
    "BLOCKED_TRAILER",
    "DOCUMENT_SEPARATOR",
    "Extractor",
    "assemble",
    "extraction_error",
    "file_id",
    "is_blocked",
    "latest_usable",
    "record_version",
]

log = logging.getLogger("termshift.pipeline")

# Combined documents are joined by a Markdown horizontal rule, as OTA does.
DOCUMENT_SEPARATOR = "\n\n- - -\n\n"

# Snapshots recorded from a block or challenge page carry this trailer; they are
# kept as evidence but never extracted.
BLOCKED_TRAILER = "blocked"

# How many extractions `Extractor` keeps (only combined terms need them).
MEMO_SIZE = 256

# `record_version`'s previous Markdown when the caller does not know it.
UNKNOWN = object()


def is_blocked(snapshot: Snapshot) -> bool:
    """Whether the snapshot is a block or challenge page kept as evidence."""
    return BLOCKED_TRAILER in snapshot.metadata


def file_id(terms: Terms, document: SourceDocument) -> str | None:
    """The document id used in file names: only combined terms have one."""
    return document.id if terms.combined else None


def latest_usable(
    snapshots: RecordRepository, service_id: str, terms_type: str, document_id: str | None
) -> Snapshot | None:
    """A document's latest snapshot that is not a block page, or None."""
    latest = snapshots.latest(service_id, terms_type, document_id)
    if latest is None or not is_blocked(latest):  # type: ignore[arg-type]
        return latest  # type: ignore[return-value]
    history = snapshots.history(service_id, terms_type, document_id)
    return next((snapshot for snapshot in history if not is_blocked(snapshot)), None)  # type: ignore[arg-type]


class Extractor:
    """Extracts a snapshot of a source document.

    `dated_filters`: the service's filters as they were at the snapshot's fetch date (a
    replay of history), else as they are now (the tracking run). `memo`: the same
    snapshot extracted with the same declaration is done once (combined terms re-join
    their unchanged documents during a replay); bounded.
    """

    def __init__(self, *, dated_filters: bool = True, memo: bool = True) -> None:
        self.dated_filters = dated_filters
        self._memo: dict[tuple[str | None, int], str] | None = {} if memo else None

    def __call__(self, snapshot: Snapshot, document: SourceDocument, service: Service) -> str:
        key = (snapshot.id, id(document))
        if self._memo is not None and snapshot.id is not None and key in self._memo:
            return self._memo[key]
        content = snapshot.content
        if content is None or content in ("", b""):
            raise ExtractError(f"Empty content for source document {document.location} in snapshot {snapshot.id}")
        filters = filters_at(service.filters, snapshot.fetch_date) if self.dated_filters else service.filters
        markdown = extract(content, snapshot.mime_type, document, filters)
        if self._memo is not None:
            if len(self._memo) > MEMO_SIZE:
                self._memo.clear()
            self._memo[key] = markdown
        return markdown


def assemble(
    service: Service,
    terms: Terms,
    snapshots: Iterable[Snapshot | None],
    extractor: Extractor,
    *,
    wait_for_missing: bool = False,
) -> str | None:
    """The Markdown of `terms` from one snapshot per source document, in declaration order.

    `snapshots` is consumed lazily, document by document. A document without a snapshot
    (None) fails the terms (`TermshiftError`), or with `wait_for_missing` makes the result
    None (a replay waits until every combined document has one). Extraction errors raise
    (`ExtractError`, `TermshiftError` for an empty snapshot, `ValueError` for content that
    cannot be read).
    """
    parts = []
    for document, snapshot in zip(terms.documents, snapshots, strict=False):
        if snapshot is None:
            if wait_for_missing:
                return None
            raise ExtractError(f"No snapshot of {document.location} to extract from")
        parts.append(extractor(snapshot, document, service))
    return DOCUMENT_SEPARATOR.join(parts)


def record_version(
    versions: RecordRepository,
    service_id: str,
    terms_type: str,
    markdown: str,
    snapshots: list[Snapshot],
    *,
    fetch_date: datetime | None = None,
    technical_upgrade: bool = False,
    events: Emitter | None = None,
    origin: str = TRACKING,
    run_id: int | None = None,
    previous_markdown: str | None | object = UNKNOWN,
) -> Version | None:
    """Record `markdown` as the terms' version, or None when it is the latest one already.

    Dated at `fetch_date`, else at the latest of its snapshots; the snapshot ids are
    listed in declaration order. A version recorded is announced on `events`
    (`version_recorded`, with `origin` and `run_id`) with its Markdown and the one it
    replaced: `previous_markdown` when the caller has it in memory, else read once from
    the versions repository (only when someone listens).
    """
    version = versions.record(Version(
        service_id=service_id,
        terms_type=terms_type,
        fetch_date=fetch_date or max(snapshot.fetch_date for snapshot in snapshots),
        content=markdown,
        snapshot_ids=[snapshot.id for snapshot in snapshots],
        is_technical_upgrade=technical_upgrade,
    ))
    if version is not None and events is not None and events.listening("version_recorded"):
        if previous_markdown is UNKNOWN:
            previous_markdown = _previous_markdown(versions, version)
        events.emit("version_recorded", event=VersionRecorded(
            version=version, markdown=markdown, previous_markdown=previous_markdown,  # type: ignore[arg-type]
            origin=origin, run_id=run_id,
        ))
    return version


def _previous_markdown(versions: RecordRepository, version: Version) -> str | None:
    """The Markdown `version` replaced, or None (a first record, or it cannot be read: the
    version is recorded, so listeners get None rather than the run failing)."""
    try:
        previous = versions.content_before(version)
    except Exception as error:  # noqa: BLE001 - reading it back is a courtesy to listeners
        log.warning("%s / %s: the version before %s cannot be read: %s",
                    version.service_id, version.terms_type, version.id, error)
        return None
    return previous.decode("utf-8", "replace") if isinstance(previous, bytes) else previous


def extraction_error(error: Exception) -> ExtractError:
    """A failure of extraction as the tracking run reports it: an ExtractError as it is,
    anything else (empty or missing snapshot, unreadable content) as one with its message."""
    return error if isinstance(error, ExtractError) else ExtractError(str(error))
