"""The tracking run: `run_tracking()` (the `termshift track` command is termshift.commands.track).

One run, in this order:

1. Load and check the declarations. A service whose declaration, history or filters
   file cannot be loaded is skipped (logged, listed in the summary and on /status, and
   `termshift track` exits 3); every other service is tracked. Bad options (an unknown
   service or terms type asked for) stop the run before anything is written.
2. Technical upgrades (OTA runs them before every tracking, reference §2.5.6): the
   terms whose declaration, filters file or engine version changed since their latest
   version (a fingerprint kept in runs.sqlite) are re-extracted from their latest
   snapshots by `termshift.trackers.replay.apply_technical_upgrades`. Unchanged terms cost
   nothing, so the pass is cheap on every run.
3. Fetch every source document of every selected terms in ONE batch
   (`fetcher.iter_fetch`: many hosts in parallel, polite per host, browser fallback,
   in-run retries), with the previous ETag/Last-Modified for a conditional GET.
4. As results arrive, record each page as a snapshot (block and challenge pages too,
   marked `blocked`: evidence, never versions). When every document of a terms is in,
   extract the Markdown from the latest non-blocked snapshots (combined documents
   joined in declaration order) and record a version when it changed. A terms with
   a failed document gets no version, but its other snapshots stay recorded (OTA).
5. Optimise both repositories and store the run's summary in runs.sqlite.

The run tells what happens to the listeners it is given (termshift.trackers.events:
`run_started`, `snapshot_recorded`, `version_recorded`, `terms_failed`,
`records_written`, `run_finished`); it imports none of them. The `track` command and
the scheduler attach the alerts (webhook events queued for new versions as the run
goes) and the viewer's index (refreshed after the run): termshift.listeners. What a
listener could not do is listed in the summary's `errors`.

Extraction is skipped for a terms only when nothing can have changed: every document
answered 304 or a page identical to its latest snapshot, its declaration fingerprint
is the one of its latest version, its last processing succeeded, and the previous run
completed with the archive left exactly as it found it (same HEADs). Otherwise the
terms is extracted again, so a run killed between a snapshot and its version is
caught up by the next run.

Distributed mode (`source`, termshift.distributed.coordinator): the results of step 3
come from workers instead of `iter_fetch`, with the Markdown they extracted; steps 4–5
are these, in this process, the only writer of the archive.

Stopping (`stop_event`): no new result is taken, what is in hand is recorded, terms
left incomplete are reported `interrupted`, and the run is stored as interrupted.
"""

from __future__ import annotations

import hashlib
import json
import logging
import subprocess
import threading
import time
from collections.abc import Iterable, Iterator
from dataclasses import asdict, dataclass, field, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Protocol

from termshift import __version__
from termshift.archive_repo import Archive, InvalidRecordError, Snapshot, Version
from termshift.archive_repo.media_types import extension_for
from termshift.archive_repo.messages import record_path
from termshift.config import Settings
from termshift.declarations import (
    DeclarationError,
    Service,
    ServiceFiles,
    SourceDocument,
    Terms,
    load_collection,
)
from termshift.errors import (
    ErrorKind,
    ExtractError,
    FetchError,
    InaccessibleContentError,
    TermshiftError,
)
from termshift.logs import progress_bar
from termshift.trackers.events import Emitter, Listeners
from termshift.trackers.fetcher import FetchRequest, FetchResult, iter_fetch
from termshift.trackers.pipeline import (
    BLOCKED_TRAILER,
    Extractor,
    assemble,
    extraction_error,
    latest_usable,
    record_version,
)
from termshift.trackers.replay import apply_technical_upgrades
from termshift.trackers.run_store import RUNS_FILE, DocumentState, RunStore, SourceValidators, iso

__all__ = [
    "FAILED",
    "INTERRUPTED",
    "NEW_VERSION",
    "PlannedTerms",
    "ResultSource",
    "UNCHANGED",
    "RunCounts",
    "RunSummary",
    "SkippedService",
    "TermsResult",
    "TrackConfigurationError",
    "run_tracking",
    "terms_fingerprint",
]

log = logging.getLogger("termshift.track")
# Snapshot trailer: the URL the page was finally fetched from, when redirects led elsewhere
# than the declared location (OTA's readers ignore trailers they do not know).
FINAL_LOCATION_TRAILER = "x-fetched-location"

# Outcome of a terms in a run.
NEW_VERSION = "new version"
UNCHANGED = "unchanged"
FAILED = "failed"
INTERRUPTED = "interrupted"


class TrackConfigurationError(TermshiftError):
    """The run cannot start: bad declarations or options. `errors` lists each problem."""

    kind = ErrorKind.CONFIGURATION

    def __init__(self, errors: list[DeclarationError | str]) -> None:
        self.errors = errors
        super().__init__("\n".join(str(error) for error in errors))


# -- what a run returns ----------------------------------------------------------------------


@dataclass
class TermsResult:
    """What happened to one terms (service, terms type) in a run."""

    service_id: str
    terms_type: str
    outcome: str  # NEW_VERSION | UNCHANGED | FAILED | INTERRUPTED
    error_kind: str | None = None  # an ErrorKind value, when failed
    error: str | None = None
    consecutive_failures: int = 0
    snapshots_recorded: int = 0
    blocked: int = 0  # documents served a block page
    version_id: str | None = None
    seconds: float = 0.0  # time spent downloading its documents

    def describe(self) -> str:
        """`service / type: outcome`, with the error class and message when it failed."""
        text = f"{self.service_id} / {self.terms_type}: {self.outcome}"
        if self.outcome == FAILED:
            text += f" ({self.error_kind}): {self.error}"
            if self.consecutive_failures > 1:
                text += f" [{self.consecutive_failures} consecutive failures]"
        return text


@dataclass
class RunCounts:
    terms: int = 0
    documents: int = 0  # source documents requested
    snapshots_recorded: int = 0
    not_modified: int = 0  # 304 answers to a conditional GET
    new_versions: int = 0
    unchanged: int = 0
    failed: int = 0
    blocked: int = 0  # terms failed because a block page was served
    interrupted: int = 0
    technical_upgrades: int = 0
    services_skipped: int = 0  # services left out because their files do not load


@dataclass
class SkippedService:
    """A service the run left out because its declaration, history or filters file does not load."""

    service_id: str
    errors: list[str]  # each "<file name>: <json path>: <reason>"

    def describe(self) -> str:
        return (f"{self.service_id}: skipped, its declarations do not load: "
                + "; ".join(self.errors[:5]) + (f" (and {len(self.errors) - 5} more)" if len(self.errors) > 5 else ""))


@dataclass
class RunSummary:
    """A tracking run's result (also stored in runs.sqlite)."""

    run_id: int
    status: str  # "completed" | "interrupted"
    started_at: datetime
    finished_at: datetime | None = None
    counts: RunCounts = field(default_factory=RunCounts)
    documents: list[TermsResult] = field(default_factory=list)
    new_versions: list[Version] = field(default_factory=list)  # the records, without their content
    errors: list[str] = field(default_factory=list)  # what listeners could not do (alerts, index)
    skipped: list[SkippedService] = field(default_factory=list)

    @property
    def seconds(self) -> float:
        end = self.finished_at or datetime.now(UTC)
        return (end - self.started_at).total_seconds()

    def to_json(self) -> dict[str, Any]:
        return {
            "run_id": self.run_id,
            "status": self.status,
            "started_at": iso(self.started_at),
            "finished_at": iso(self.finished_at),
            "seconds": round(self.seconds, 3),
            "counts": asdict(self.counts),
            "documents": [asdict(result) for result in self.documents],
            "errors": self.errors,
            "skipped_services": [asdict(skipped) for skipped in self.skipped],
        }

    def describe(self) -> str:
        """The closing report: one line per terms (failures first), then the totals."""
        order = {FAILED: 0, INTERRUPTED: 1, NEW_VERSION: 2, UNCHANGED: 3}
        lines = [result.describe() for result in sorted(
            self.documents, key=lambda r: (order.get(r.outcome, 9), r.service_id, r.terms_type))]
        lines.extend(skipped.describe() for skipped in self.skipped)
        lines.append(self.totals())
        lines.extend(f"error: {error}" for error in self.errors)
        return "\n".join(lines)

    def totals(self) -> str:
        """One line: status, duration and counts."""
        counts = self.counts
        totals = (
            f"Tracking run {self.run_id} {self.status} in {self.seconds:.1f} s: {counts.terms} terms "
            f"({counts.documents} documents): {counts.new_versions} new versions, {counts.unchanged} unchanged, "
            f"{counts.failed} failed ({counts.blocked} blocked)"
        )
        if counts.interrupted:
            totals += f", {counts.interrupted} interrupted"
        if counts.services_skipped:
            totals += f", {counts.services_skipped} services skipped (declarations do not load)"
        return totals + (f"; {counts.snapshots_recorded} snapshots recorded, {counts.not_modified} not modified "
                         f"(304), {counts.technical_upgrades} technical upgrades")


# -- selecting what to track -----------------------------------------------------------------


def select_terms(
    declarations_dir: Path, services: Iterable[str] | None, types: Iterable[str] | None
) -> tuple[list[tuple[Service, Terms]], list[SkippedService]]:
    """The (service, terms) to track (services sorted by id, terms types in declaration
    order), and the services skipped because their files do not load.

    Raises TrackConfigurationError for a missing folder, an unknown service asked for,
    or a terms type that no selected service declares.
    """
    declarations_dir = Path(declarations_dir)
    if not declarations_dir.is_dir():
        raise TrackConfigurationError([f"{declarations_dir}: no such declarations folder"])
    wanted_services = list(services) if services else None
    try:
        collection = load_collection(declarations_dir, service_ids=wanted_services)
    except OSError as error:
        raise TrackConfigurationError([f"{declarations_dir}: cannot be read: {error}"]) from None
    if collection.missing:
        raise TrackConfigurationError([error for error in collection.errors
                                       if error.file.name[:-len(".json")] in collection.missing])
    # File names, not paths: the summary is shown on the public /status page.
    skipped = [SkippedService(service_id, [f"{error.file.name}: {error.json_path}: {error.reason}"
                                           for error in errors])
               for service_id, errors in sorted(collection.skipped.items())]
    wanted_types = list(types) if types else None
    selected = [
        (service, terms)
        for _service_id, service in sorted(collection.services.items())
        for terms in service.terms.values()
        if wanted_types is None or terms.type in wanted_types
    ]
    if wanted_types:
        found = {terms.type for _service, terms in selected}
        missing = [f"--types: no selected service declares terms of type '{name}'"
                   for name in wanted_types if name not in found]
        if missing and not skipped:  # with skipped services, the type may be theirs: they are reported
            raise TrackConfigurationError(missing)
    return selected, skipped


def terms_fingerprint(service: Service, terms: Terms, declarations_dir: Path) -> str:
    """What the latest version of a terms depends on besides its snapshots.

    The declaration (documents, selectors, filters named), the service's filters file
    and the engine version: when none changed, re-extracting the latest snapshots
    gives the latest version back, and the technical-upgrade pass can skip the terms.
    (Code changes within one engine version are not seen: bump the version.)
    """
    digest = hashlib.sha256()
    digest.update(json.dumps(terms.to_declaration(), sort_keys=True, ensure_ascii=False).encode("utf-8"))
    digest.update(b"\0" + __version__.encode("ascii") + b"\0")
    files = ServiceFiles(Path(declarations_dir), service.id)
    for filters_file in (files.filters, files.javascript_filters, files.javascript_filters_history):
        if filters_file.is_file():
            digest.update(filters_file.read_bytes())
    return digest.hexdigest()


def _terms_key(terms: Terms) -> tuple[str, str]:
    return (terms.service_id, terms.type)


# -- state of one terms during the run -------------------------------------------------------


@dataclass
class _DocumentFetch:
    """One source document of a terms: its fetch result and what was recorded from it."""

    position: int
    file_id: str | None  # the document id in file names (combined terms only)
    validators: SourceValidators | None  # sent with the request
    result: FetchResult | None = None
    recorded: Snapshot | None = None  # the snapshot recorded from this fetch
    unchanged: bool = False  # 304, or a page identical to the latest snapshot
    error: TermshiftError | None = None
    blocked: bool = False
    snapshot_path: str | None = None  # where the fetched page lives in the snapshots repo

    @property
    def state_key(self) -> str:
        return self.file_id or ""


@dataclass
class _TermsJob:
    service: Service
    terms: Terms
    fingerprint: str
    documents: list[_DocumentFetch]
    arrived: int = 0

    @property
    def key(self) -> tuple[str, str]:
        return _terms_key(self.terms)

    @property
    def complete(self) -> bool:
        return self.arrived == len(self.documents)


PlannedTerms = _TermsJob  # what a ResultSource is handed: one terms, its documents and their validators


class ResultSource(Protocol):
    """Where a run's fetch results come from when not from `iter_fetch` (distributed mode).

    `select` may drop terms (already recorded by an earlier attempt at the same run);
    `results` yields, for each request (its `key` is the request's), the fetch result and
    the Markdown already extracted from its content (None: extracted here). Every document
    of a terms is yielded before the next terms' (the run records a terms once all are in).
    """

    def select(self, selected: list[tuple[Service, Terms]]) -> list[tuple[Service, Terms]]: ...

    def results(self, run_id: int, jobs: list[PlannedTerms], requests: list[FetchRequest],
                stop_event: threading.Event | None) -> Iterator[tuple[FetchResult, str | None]]: ...


# -- the run ---------------------------------------------------------------------------------


def run_tracking(
    settings: Settings,
    services: Iterable[str] | None = None,
    types: Iterable[str] | None = None,
    progress: bool = False,
    stop_event: threading.Event | None = None,
    listeners: Listeners = (),
    source: ResultSource | None = None,
) -> RunSummary:
    """Track every selected terms once; see the module docstring for the steps.

    `settings` is a `termshift.config.Settings` (declarations and data folders, fetcher,
    archive). `listeners` (objects with `termshift.trackers.events` hook implementations,
    or a plugin manager) are told what happens; `termshift.listeners.run_listeners(settings)`
    are those of `termshift track`. Raises TrackConfigurationError before anything is
    written when the declarations or the selection are wrong. Document failures do not
    raise: they are in the summary (and in runs.sqlite).
    """
    declarations_dir = Path(settings.declarations)
    data_dir = Path(settings.data)
    selected, skipped = select_terms(declarations_dir, services, types)
    if source is not None:
        selected = source.select(selected)
    data_dir.mkdir(parents=True, exist_ok=True)
    started_at = datetime.now(UTC)
    with RunStore(data_dir / RUNS_FILE) as store:
        run_id = store.start_run(started_at)
        summary = RunSummary(run_id=run_id, status="running", started_at=started_at, skipped=skipped)
        summary.counts.services_skipped = len(skipped)
        events = Emitter(listeners, summary.errors)
        for service in skipped:
            _log_skipped(service, run_id)
        try:
            events.emit("run_started", run_id=run_id, started_at=started_at)
            _run(settings, selected, store, summary, progress, stop_event, events, source)
        except BaseException as error:
            summary.finished_at = datetime.now(UTC)
            store.finish_run(run_id, "failed", summary.finished_at, asdict(summary.counts), summary.to_json(),
                             error=f"{type(error).__name__}: {error}")
            raise
        summary.finished_at = datetime.now(UTC)
        store.finish_run(run_id, summary.status, summary.finished_at, asdict(summary.counts), summary.to_json(),
                         heads=_heads(data_dir))
    log.info("%s", summary.totals())
    return summary


def _run(
    settings: Settings,
    selected: list[tuple[Service, Terms]],
    store: RunStore,
    summary: RunSummary,
    progress: bool,
    stop_event: threading.Event | None,
    events: Emitter,
    source: ResultSource | None = None,
) -> None:
    declarations_dir, data_dir = Path(settings.declarations), Path(settings.data)
    fingerprints = {_terms_key(terms): terms_fingerprint(service, terms, declarations_dir) for service, terms in selected}
    states = store.document_states()
    previous = store.previous_run(summary.run_id)
    # Decided before this run writes anything: did the archive stay as the last run left it?
    heads = _heads(data_dir)
    trusted = previous is not None and previous.status == "completed" and (
        previous.snapshots_head, previous.versions_head) == heads
    has_versions = heads[1] is not None
    summary.counts.technical_upgrades = _technical_upgrades(settings, selected, fingerprints, states, store,
                                                            has_versions, events, summary.run_id)
    states = store.document_states()
    with Archive.open(data_dir, settings.archive) as archive:
        tracker = _Tracker(settings, archive, store, summary, states, trusted, fingerprints, events, source)
        try:
            tracker.track(selected, store.validators(), progress, stop_event)
        finally:
            # Listeners holding a batch (the alerts) hand it over, whatever happens next.
            events.emit("records_written", run_id=summary.run_id)
        archive.snapshots.optimize()
        archive.versions.optimize()
    events.emit("run_finished", summary=summary)


def _technical_upgrades(
    settings: Settings,
    selected: list[tuple[Service, Terms]],
    fingerprints: dict[tuple[str, str], str],
    states: dict[tuple[str, str], DocumentState],
    store: RunStore,
    has_versions: bool,
    events: Emitter,
    run_id: int,
) -> int:
    """Re-extract the terms whose fingerprint changed; returns the versions recorded.

    The fingerprint is stored for each terms re-extracted without error, so the next run
    skips it. A failing one keeps its old fingerprint and is tried again next run (its
    tracking then reports the extraction error). Without any version yet (a first run)
    there is nothing to upgrade: the fingerprints are simply noted.
    """
    stale = [(service, terms) for service, terms in selected
             if (state := states.get(_terms_key(terms))) is None or state.fingerprint != fingerprints[_terms_key(terms)]]
    if not stale:
        return 0
    if not has_versions:
        store.set_fingerprints((*_terms_key(terms), fingerprints[_terms_key(terms)]) for _service, terms in stale)
        return 0
    started = time.perf_counter()
    report = apply_technical_upgrades(
        Path(settings.declarations), Path(settings.data),
        services=sorted({service.id for service, _terms in stale}),
        types=sorted({terms.type for _service, terms in stale}),
        settings=settings,
        listeners=events,
        run_id=run_id,
    )
    done = []
    for _service, terms in stale:
        key = _terms_key(terms)
        document = report.documents.get(key)
        if document is not None and document.failures:
            log.warning("%s / %s: technical upgrade failed: %s", *key, ", ".join(document.reasons))
        else:
            done.append((*key, fingerprints[key]))
    store.set_fingerprints(done)
    log.info("technical upgrades: %d terms re-extracted, %d versions recorded, in %.1f s",
             len(stale), report.versions_recorded, time.perf_counter() - started)
    return report.versions_recorded


class _WorkerMarkdown(Extractor):
    """The pipeline's extraction, taking a worker's Markdown when the snapshot is the very
    content the worker extracted it from (distributed mode); else extracting here."""

    def __init__(self, extracted: dict[int, tuple[Any, str]]) -> None:
        super().__init__(dated_filters=False, memo=False)
        self.extracted = extracted

    def __call__(self, snapshot: Snapshot, document: SourceDocument, service: Service) -> str:
        premade = self.extracted.get(id(document))
        if premade is not None and premade[0] == snapshot.content:
            return premade[1]
        return super().__call__(snapshot, document, service)


class _Tracker:
    """Records results as they arrive, and versions when a terms is complete."""

    def __init__(
        self,
        settings: Settings,
        archive: Archive,
        store: RunStore,
        summary: RunSummary,
        states: dict[tuple[str, str], DocumentState],
        trusted: bool,
        fingerprints: dict[tuple[str, str], str],
        events: Emitter,
        source: ResultSource | None = None,
    ) -> None:
        self.settings = settings
        self.source = source
        # id(source document) -> (the content it was extracted from, its Markdown), from the source.
        self.extracted: dict[int, tuple[Any, str]] = {}
        self.archive = archive
        self.store = store
        self.summary = summary
        self.states = states
        self.trusted = trusted
        self.fingerprints = fingerprints
        self.fetch_date = datetime.now(UTC)
        self.snapshots_dir = Path(settings.data) / "snapshots"
        self.events = events
        # The declarations and filters of now; in distributed mode, the workers' Markdown when it fits.
        self.extractor = (_WorkerMarkdown(self.extracted) if source is not None
                          else Extractor(dated_filters=False, memo=False))
        self.jobs: list[_TermsJob] = []

    # -- fetching ----------------------------------------------------------------------

    def track(
        self,
        selected: list[tuple[Service, Terms]],
        validators: dict[tuple[str, str, str], SourceValidators],
        progress: bool,
        stop_event: threading.Event | None,
    ) -> None:
        requests = self._plan(selected, validators)
        self.summary.counts.terms = len(self.jobs)
        self.summary.counts.documents = len(requests)
        bar = progress_bar(len(requests), progress, unit="doc", only_on_terminal=True)
        # iter_fetch watches `stop_event` itself: once it is set, it hands over the
        # results in hand and ends promptly, and the fetch worker is killed.
        results = (self.source.results(self.summary.run_id, self.jobs, requests, stop_event) if self.source
                   else iter_fetch(requests, self.settings.fetcher, stop_event=stop_event))
        try:
            for result in results:
                if self.source is not None:
                    result, markdown = result
                    if markdown is not None and result.content is not None:
                        job_index, position = result.key
                        self.extracted[id(self.jobs[job_index].terms.documents[position])] = (result.content, markdown)
                self._on_result(result)
                bar.update(1)
        finally:
            bar.close()
            results.close()
        interrupted = stop_event is not None and stop_event.is_set()
        incomplete = [job for job in self.jobs if not job.complete]
        for job in incomplete:
            self._interrupted(job)
        # A stop that came after the last result missed nothing: the run completed.
        self.summary.status = "interrupted" if interrupted and incomplete else "completed"

    def _plan(
        self, selected: list[tuple[Service, Terms]], validators: dict[tuple[str, str, str], SourceValidators]
    ) -> list[FetchRequest]:
        requests = []
        for service, terms in selected:
            documents = []
            for position, document in enumerate(terms.documents):
                file_id = document.id if terms.combined else None
                known = validators.get((service.id, terms.type, file_id or ""))
                if known is not None and not self._usable(known, document.location):
                    known = None
                documents.append(_DocumentFetch(position, file_id, known))
                requests.append(FetchRequest(
                    location=document.location,
                    execute_client_scripts=document.execute_client_scripts,
                    css_selectors=document.css_selectors,
                    key=(len(self.jobs), position),
                    etag=known.etag if known else None,
                    last_modified=known.last_modified if known else None,
                ))
            self.jobs.append(_TermsJob(service, terms, self.fingerprints[_terms_key(terms)], documents))
        return requests

    def _usable(self, validators: SourceValidators, location: str) -> bool:
        """Validators are sent only for the same URL, and only while their snapshot is in the
        archive (a data folder restored without runs.sqlite, or the reverse, must not earn a
        304 for a page that was never recorded)."""
        return (
            validators.location == location
            and bool(validators.etag or validators.last_modified)
            and validators.snapshot_path is not None
            and (self.snapshots_dir / validators.snapshot_path).is_file()
        )

    def _on_result(self, result: FetchResult) -> None:
        job_index, position = result.key
        job = self.jobs[job_index]
        document = job.documents[position]
        document.result = result
        job.arrived += 1
        if result.not_modified:
            document.unchanged = True
            document.snapshot_path = document.validators.snapshot_path if document.validators else None
            self.summary.counts.not_modified += 1
        elif result.blocked:
            document.blocked = True
            document.error = result.error
            self._record_snapshot(job, document, blocked=getattr(result.error, "signature", "blocked"))
        elif result.error is not None:
            document.error = result.error
        else:
            self._record_snapshot(job, document)
        if job.complete:
            self._finish(job)

    def _record_snapshot(self, job: _TermsJob, document: _DocumentFetch, blocked: str | None = None) -> None:
        result = document.result
        assert result is not None
        source = job.terms.documents[document.position]
        metadata = {"x-fetcher": result.fetcher or "", "x-source-document-location": source.location}
        if result.redirected_to:
            metadata[FINAL_LOCATION_TRAILER] = result.redirected_to  # visible in the archive
        if blocked is not None:
            metadata[BLOCKED_TRAILER] = blocked
        snapshot = Snapshot(
            service_id=job.service.id, terms_type=job.terms.type, document_id=document.file_id,
            fetch_date=self.fetch_date, content=result.content, mime_type=result.mime_type or "text/html",
            metadata=metadata,
        )
        try:
            document.snapshot_path = record_path(job.service.id, job.terms.type, document.file_id,
                                                 extension_for(snapshot.mime_type))
            recorded = self.archive.snapshots.record(snapshot)
        except (InvalidRecordError, ValueError) as error:
            # An answer that cannot be stored (unknown MIME type, empty body…) fails the document;
            # a block page keeps its own error.
            if blocked is None:
                document.error = FetchError(f"The page of '{source.location}' cannot be recorded: {error}",
                                            ErrorKind.PERMANENT)
            else:
                log.warning("the block page of '%s' cannot be recorded: %s", source.location, error)
            return
        if recorded is None:
            document.unchanged = blocked is None
        else:
            document.recorded = recorded
            self.summary.counts.snapshots_recorded += 1
            self.events.emit("snapshot_recorded", snapshot=recorded, run_id=self.summary.run_id)

    # -- versions ----------------------------------------------------------------------

    def _finish(self, job: _TermsJob) -> None:
        """Every document of the terms is in: record its version, or its failure."""
        seconds = sum(document.result.elapsed for document in job.documents if document.result)
        recorded = sum(1 for document in job.documents if document.recorded is not None)
        errors = [document.error for document in job.documents if document.error is not None]
        version = None
        if not errors:
            try:
                version = None if self._nothing_changed(job) else self._record_version(job)
            except (ExtractError, ValueError) as error:
                # Empty or missing snapshot, a version that cannot be recorded (InvalidRecordError),
                # text no parser takes: the extraction step failed.
                errors = [extraction_error(error)]
        result = TermsResult(job.service.id, job.terms.type, UNCHANGED, snapshots_recorded=recorded,
                             blocked=sum(1 for document in job.documents if document.blocked), seconds=seconds)
        if errors:
            error = errors[0] if len(errors) == 1 else InaccessibleContentError(errors)
            result.outcome, result.error_kind, result.error = FAILED, str(error.kind), str(error)
            result.consecutive_failures = self.store.record_failure(
                *job.key, self.summary.run_id, self.fetch_date, result.error_kind, result.error, blocked=result.blocked)
            self.summary.counts.failed += 1
            if error.kind is ErrorKind.BLOCKED:
                self.summary.counts.blocked += 1
            self.events.emit("terms_failed", result=result, run_id=self.summary.run_id)
        else:
            if version is not None:
                result.outcome, result.version_id = NEW_VERSION, version.id
                self.summary.counts.new_versions += 1
                # The summary keeps the light record: the text is in git (and went to the listeners).
                self.summary.new_versions.append(replace(version, content=None))
            else:
                self.summary.counts.unchanged += 1
            self.store.record_success(*job.key, self.summary.run_id, self.fetch_date, job.fingerprint,
                                      self._validators(job))
        _log_result(result, self.summary.run_id)
        self.summary.documents.append(result)
        for document in job.documents:  # the pages are in the archive now: free them
            document.result = None
            document.recorded = None
            self.extracted.pop(id(job.terms.documents[document.position]), None)

    def _nothing_changed(self, job: _TermsJob) -> bool:
        state = self.states.get(job.key)
        return (
            self.trusted
            and state is not None
            and state.succeeded_last
            and state.fingerprint == job.fingerprint
            and all(document.unchanged for document in job.documents)
        )

    def _record_version(self, job: _TermsJob) -> Version | None:
        """Extract every document from its latest usable snapshot; record the Markdown if it changed."""
        snapshots: list[Snapshot] = []

        def usable() -> Iterator[Snapshot | None]:  # looked up document by document, as they are extracted
            for document in job.documents:
                snapshot = document.recorded or latest_usable(self.archive.snapshots, job.service.id,
                                                              job.terms.type, document.file_id)
                if snapshot is not None:
                    snapshots.append(snapshot)
                yield snapshot

        markdown = assemble(job.service, job.terms, usable(), self.extractor)
        assert markdown is not None
        return record_version(self.archive.versions, job.service.id, job.terms.type, markdown, snapshots,
                              events=self.events, run_id=self.summary.run_id)

    def _validators(self, job: _TermsJob) -> list[tuple[str, SourceValidators]]:
        """Validators to keep for the next conditional GET of each document."""
        kept = []
        for document in job.documents:
            result = document.result
            assert result is not None
            etag, modified = result.etag, result.last_modified
            if result.not_modified and document.validators is not None:
                # A 304 need not repeat the validators: the previous ones still hold.
                etag = etag or document.validators.etag
                modified = modified or document.validators.last_modified
            source = job.terms.documents[document.position]
            kept.append((document.state_key, SourceValidators(source.location, etag, modified, document.snapshot_path)))
        return kept

    def _interrupted(self, job: _TermsJob) -> None:
        """A terms the run stopped before all its documents came: snapshots kept, no version."""
        recorded = sum(1 for document in job.documents if document.recorded is not None)
        self.store.forget_validators(*job.key)
        self.summary.counts.interrupted += 1
        result = TermsResult(job.service.id, job.terms.type, INTERRUPTED, snapshots_recorded=recorded)
        self.summary.documents.append(result)
        _log_result(result, self.summary.run_id)


def _log_skipped(skipped: SkippedService, run_id: int) -> None:
    """One ERROR line per service left out of the run, each problem named (file, JSON path, reason)."""
    fields = {"event": "service_skipped", "run_id": run_id, "service_id": skipped.service_id,
              "errors": skipped.errors}
    log.error("%s", skipped.describe(), extra=fields)


def _log_result(result: TermsResult, run_id: int) -> None:
    """The run's one log line per terms: WARNING when it failed, else INFO.

    Its fields (`event: "document"`, the run id, outcome, error, seconds) become keys
    of the JSON log line, so operators can filter on them (termshift.logs).
    """
    fields = {"event": "document", "run_id": run_id, "service_id": result.service_id,
              "terms_type": result.terms_type, "outcome": result.outcome, "error_kind": result.error_kind,
              "error": result.error, "seconds": result.seconds}
    log.log(logging.WARNING if result.outcome == FAILED else logging.INFO, "%s", result.describe(), extra=fields)


# -- after recording ------------------------------------------------------------------------


def _heads(data_dir: Path) -> tuple[str | None, str | None]:
    """The commits HEAD points at in the snapshots and versions repositories (None: no commit)."""
    heads = []
    for name in ("snapshots", "versions"):
        path = Path(data_dir) / name
        if not path.is_dir():
            heads.append(None)
            continue
        answer = subprocess.run(["git", "-C", str(path), "rev-parse", "--verify", "-q", "HEAD"],
                                capture_output=True, text=True, check=False)
        heads.append(answer.stdout.strip() or None)
    return heads[0], heads[1]
