"""Replaying snapshots into versions: `termshift rebuild` and `termshift apply-technical-upgrades`.

`rebuild` re-extracts the whole history of a snapshots repository, oldest
first, each snapshot with the declaration in force at its fetch date, into a
versions repository, recording a version only when the Markdown changes. It is
how an OTA collection migrates to Termshift and how a fixed declaration is
replayed over history.

`apply_technical_upgrades` re-extracts each document's latest snapshot with the
current declarations and code, and records the result as a technical upgrade
when it differs from the latest version (OTA's §2.5.6).

A service whose declaration, history or filters file does not load is skipped
whole (its snapshots are counted, none is extracted: a partial history could pick
a declaration that was not in force) and reported; every other service is
replayed, and the commands exit with `EXIT_SERVICES_SKIPPED`.
"""

from __future__ import annotations

import logging
import time
from collections import Counter, defaultdict
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path

from termshift.archive_repo import Archive, RecordRepository, Snapshot, Version
from termshift.archive_repo.archive import archive_options
from termshift.config import Settings
from termshift.declarations import Collection, Service, Terms, load_collection
from termshift.errors import ExtractError, TermshiftError
from termshift.logs import progress_bar
from termshift.trackers.events import REBUILD, TECHNICAL_UPGRADE, Emitter, Listeners, emitter
from termshift.trackers.pipeline import (
    BLOCKED_TRAILER,
    DOCUMENT_SEPARATOR,
    Extractor,
    assemble,
    file_id,
    is_blocked,
    latest_usable,
    record_version,
)

log = logging.getLogger("termshift.trackers.replay")

__all__ = [  # the pipeline's names stay importable from here
    "BLOCKED_TRAILER",
    "DOCUMENT_SEPARATOR",
    "EXIT_SERVICES_SKIPPED",
    "DocumentReport",
    "NotDeclared",
    "RebuildError",
    "ReplaySummary",
    "ServiceSkipped",
    "apply_technical_upgrades",
    "is_blocked",
    "rebuild",
]

DocumentKey = tuple[str, str]  # (service id, terms type)

# `termshift track`, `rebuild` and `apply-technical-upgrades` exit with this status when they
# completed but left out services whose declaration, history or filters file does not load.
EXIT_SERVICES_SKIPPED = 3


class RebuildError(TermshiftError):
    """The rebuild cannot start (bad declarations, non-empty target…)."""


class ServiceSkipped(RebuildError):
    """A snapshot of a service whose files do not load: not extracted (the summary says why)."""

    def __init__(self, service_id: str) -> None:
        super().__init__(f'the declarations of "{service_id}" do not load: service skipped')


class NotDeclared(RebuildError):
    """A snapshot of a document that no declaration covers at its date (a retired
    document, an undeclared service): skipped, not a failure of the declaration."""


@dataclass
class DocumentReport:
    """What happened to one document (service, terms type) during a replay."""

    snapshots: int = 0
    versions: int = 0
    failures: int = 0
    skipped: int = 0
    reasons: Counter[str] = field(default_factory=Counter)

    def fail(self, reason: str) -> None:
        self.failures += 1
        self.reasons[reason] += 1


@dataclass
class ReplaySummary:
    """Totals of a rebuild or a technical-upgrade pass, and the failures per document."""

    snapshots_read: int = 0
    versions_recorded: int = 0
    seconds: float = 0.0
    documents: dict[DocumentKey, DocumentReport] = field(default_factory=lambda: defaultdict(DocumentReport))
    # Services left out because their files do not load: id -> "<file>: <json path>: <reason>" lines.
    skipped_services: dict[str, list[str]] = field(default_factory=dict)
    # Snapshots of those services, by id (read, not extracted).
    skipped_snapshots: Counter[str] = field(default_factory=Counter)

    @property
    def failures(self) -> int:
        return sum(report.failures for report in self.documents.values())

    @property
    def skipped(self) -> int:
        return sum(report.skipped for report in self.documents.values())

    def describe(self) -> str:
        """The closing summary printed by the commands."""
        rate = self.snapshots_read / self.seconds if self.seconds else 0.0
        lines = [
            f"{self.snapshots_read} snapshots read, {self.versions_recorded} versions recorded, "
            f"{self.failures} failures, in {self.seconds:.1f} s ({rate:.0f} snapshots/s)"
        ]
        for service_id, errors in sorted(self.skipped_services.items()):
            snapshots = self.skipped_snapshots.get(service_id, 0)
            lines.append(f"  {service_id}: SKIPPED, its declarations do not load"
                         + (f" ({snapshots} snapshots not extracted)" if snapshots else "") + ":")
            lines.extend(f"    {error}" for error in errors)
        for (service_id, terms_type), report in sorted(self.documents.items()):
            if report.skipped:
                lines.append(f"  {service_id} / {terms_type}: {report.skipped} snapshots skipped (not declared then)")
            if not report.failures:
                continue
            lines.append(f"  {service_id} / {terms_type}: {report.failures} failed of {report.snapshots}")
            for reason, count in report.reasons.most_common(3):
                lines.append(f"    {count} × {reason}")
        return "\n".join(lines)


# Called once per snapshot read: (snapshot, markdown or None, error or None, version recorded or None).
SnapshotCallback = Callable[[Snapshot, str | None, Exception | None, Version | None], None]


def _load_declarations(declarations_dir: Path, services: Iterable[str] | None, summary: ReplaySummary) -> Collection:
    """The collection; services that do not load are noted in `summary` and logged, and left out.

    Raises RebuildError for a missing folder or a service asked for that is not declared."""
    wanted = list(services) if services else None
    try:
        collection = load_collection(Path(declarations_dir), service_ids=wanted)
    except OSError as error:
        raise RebuildError(f"the declarations folder {declarations_dir} cannot be read: {error}") from None
    if collection.missing:
        raise RebuildError(f"no declaration of {', '.join(repr(name) for name in collection.missing)} "
                           f"in {declarations_dir}")
    for service_id, errors in sorted(collection.skipped.items()):
        summary.skipped_services[service_id] = [str(error) for error in errors]
        log.error("%s: skipped, its declarations do not load: %s", service_id,
                  "; ".join(str(error) for error in errors),
                  extra={"event": "service_skipped", "service_id": service_id,
                         "errors": [str(error) for error in errors]})
    return collection


def rebuild(
    declarations_dir: Path,
    snapshots_path: Path,
    versions_path: Path,
    *,
    services: Iterable[str] | None = None,
    types: Iterable[str] | None = None,
    settings: Settings | None = None,
    progress: bool = False,
    on_snapshot: SnapshotCallback | None = None,
    listeners: Listeners = (),
) -> ReplaySummary:
    """Replay every snapshot of `snapshots_path` (oldest first) into `versions_path`.

    The versions repository is created when missing and must hold no version yet:
    a replay never rewrites what is already archived. Each version recorded is announced
    to `listeners` (termshift.trackers.events). Raises RebuildError.
    """
    services = list(services) if services else None
    types = list(types) if types else None
    summary = ReplaySummary()
    collection = _load_declarations(declarations_dir, services, summary)
    if not (Path(snapshots_path) / ".git").exists() and not (Path(snapshots_path) / "HEAD").exists():
        raise RebuildError(f"{snapshots_path}: not a git repository")
    snapshots = RecordRepository(snapshots_path, "snapshots", read_only=True)
    versions = RecordRepository(versions_path, "versions", **archive_options(settings.archive if settings else None))
    try:
        existing = versions.count()
        if existing:
            raise RebuildError(
                f"{versions_path} already holds {existing} versions; rebuild into an empty or new repository"
            )
        events = emitter(listeners)
        try:
            return _replay(collection, snapshots, versions, services, types, progress, on_snapshot, summary, events)
        finally:
            events.emit("records_written", run_id=None)
    finally:
        snapshots.close()
        versions.close()


def _replay(
    collection: Collection,
    snapshots: RecordRepository,
    versions: RecordRepository,
    services: list[str] | None,
    types: list[str] | None,
    progress: bool,
    on_snapshot: SnapshotCallback | None,
    summary: ReplaySummary,
    events: Emitter,
) -> ReplaySummary:
    extractor = Extractor()
    # The latest usable snapshot of each document, and the last Markdown recorded per terms.
    latest: dict[DocumentKey, dict[str | None, Snapshot]] = defaultdict(dict)
    last_markdown: dict[DocumentKey, str] = {}
    started = time.perf_counter()
    total = snapshots.count() if progress and not services and not types else None
    records = snapshots.iterate(services, types)
    bar = progress_bar(total, progress, unit="snapshot")
    try:
        for snapshot in records:
            bar.update(1)
            summary.snapshots_read += 1
            if snapshot.service_id in summary.skipped_services:
                summary.skipped_snapshots[snapshot.service_id] += 1
                if on_snapshot is not None:
                    on_snapshot(snapshot, None, ServiceSkipped(snapshot.service_id), None)
                snapshot.content = None
                continue
            key = (snapshot.service_id, snapshot.terms_type)
            report = summary.documents[key]
            report.snapshots += 1
            markdown, error, version = None, None, None
            try:
                markdown = _markdown_at(collection, snapshot, latest[key], extractor)
            except NotDeclared as skip:
                error = skip
                report.skipped += 1
            except (RebuildError, ExtractError, ValueError) as failure:  # ValueError: text no parser takes
                error = failure
                report.fail(_first_line(failure))
            if markdown is not None and markdown != last_markdown.get(key):
                version = record_version(versions, snapshot.service_id, snapshot.terms_type, markdown,
                                         _documents_snapshots(collection, snapshot, latest[key]),
                                         fetch_date=snapshot.fetch_date, events=events, origin=REBUILD,
                                         previous_markdown=last_markdown.get(key))
                last_markdown[key] = markdown
                if version is not None:
                    summary.versions_recorded += 1
                    report.versions += 1
            if on_snapshot is not None:
                on_snapshot(snapshot, markdown, error, version)
            # Free the page: only combined terms need earlier contents, and they keep their records.
            if snapshot.document_id is None:
                snapshot.content = None
    finally:
        bar.close()
    summary.seconds = time.perf_counter() - started
    return summary


def _markdown_at(
    collection: Collection,
    snapshot: Snapshot,
    latest: dict[str | None, Snapshot],
    extractor: Extractor,
) -> str | None:
    """The Markdown of the terms as of `snapshot`, or None while a combined document
    has no snapshot yet. Raises ExtractError when extraction fails, RebuildError for a blocked page."""
    service = collection.services.get(snapshot.service_id)
    if service is None:
        raise NotDeclared(f'no declaration for service "{snapshot.service_id}"')
    terms = service.terms_at(snapshot.terms_type, snapshot.fetch_date)
    if terms is None:
        raise NotDeclared(f'"{snapshot.terms_type}" is not declared for "{service.id}" at {snapshot.fetch_date:%Y-%m-%d}')
    if is_blocked(snapshot):
        raise RebuildError(f"snapshot {snapshot.id} is a blocked page ({snapshot.metadata[BLOCKED_TRAILER]})")
    latest[snapshot.document_id] = snapshot
    return assemble(service, terms, (latest.get(file_id(terms, document)) for document in terms.documents),
                    extractor, wait_for_missing=True)


def _documents_snapshots(collection: Collection, snapshot: Snapshot, latest: dict[str | None, Snapshot]) -> list[Snapshot]:
    """The snapshots a version was assembled from, in declaration order."""
    terms = collection.services[snapshot.service_id].terms_at(snapshot.terms_type, snapshot.fetch_date)
    assert terms is not None
    return [latest[file_id(terms, document)] for document in terms.documents]


def apply_technical_upgrades(
    declarations_dir: Path,
    data_dir: Path,
    *,
    services: Iterable[str] | None = None,
    types: Iterable[str] | None = None,
    settings: Settings | None = None,
    progress: bool = False,
    listeners: Listeners = (),
    run_id: int | None = None,
) -> ReplaySummary:
    """Re-extract each document's latest snapshot with the current declarations.

    A version is recorded (as a technical upgrade, dated at its latest snapshot)
    only when the Markdown differs from the latest version, and announced to
    `listeners` (with `run_id` when a tracking run applies the upgrades). Combined
    terms whose documents do not all have a snapshot yet are left for the next
    tracking run.
    """
    services = list(services) if services else None
    wanted_types = set(types) if types else None
    summary = ReplaySummary()
    collection = _load_declarations(declarations_dir, services, summary)
    extractor = Extractor()
    started = time.perf_counter()
    jobs = [
        (service, terms)
        for service_id, service in sorted(collection.services.items())
        for terms in service.terms.values()
        if wanted_types is None or terms.type in wanted_types
    ]
    events = emitter(listeners)
    with Archive.open(data_dir, settings.archive if settings else None) as archive:
        bar = progress_bar(len(jobs), progress, unit="terms")
        try:
            for service, terms in jobs:
                bar.update(1)
                key = (service.id, terms.type)
                report = summary.documents[key]
                try:
                    version = _upgrade(archive, service, terms, extractor, report, events, run_id)
                except ExtractError as failure:
                    report.fail(_first_line(failure))
                    continue
                if version is not None:
                    summary.versions_recorded += 1
                    report.versions += 1
                summary.snapshots_read += report.snapshots
        finally:
            bar.close()
            events.emit("records_written", run_id=run_id)
    summary.seconds = time.perf_counter() - started
    return summary


def _upgrade(
    archive: Archive, service: Service, terms: Terms, extractor: Extractor, report: DocumentReport,
    events: Emitter, run_id: int | None,
) -> Version | None:
    snapshots = []
    for document in terms.documents:
        usable = latest_usable(archive.snapshots, service.id, terms.type, file_id(terms, document))
        if usable is None:
            return None  # not tracked yet: the next tracking run records a first version
        snapshots.append(usable)
    report.snapshots += len(snapshots)
    markdown = assemble(service, terms, snapshots, extractor)
    assert markdown is not None
    return record_version(archive.versions, service.id, terms.type, markdown, snapshots, technical_upgrade=True,
                          events=events, origin=TECHNICAL_UPGRADE, run_id=run_id)


def _first_line(error: Exception) -> str:
    text = str(error).strip().splitlines()
    return text[0] if text else type(error).__name__
