"""What the viewer takes from the declarations: service names and, for the API, the terms.

Without a declarations folder the viewer still works: a service's name is its id and
its terms types are those found in the archive. With one, `Declarations` reloads it when
its files change, so a service declared while `serve` runs gets its pages and API answers.
The collection's `metadata.yml` (termshift.collection_metadata) is read from here too.

Reading the declarations never runs filter code (filters files are only read, see
termshift.filters), and a service whose files do not load is logged, listed in
`Declarations.skipped` (shown on /status) and left out; the others are served. One
exception: a service whose declaration is sound but whose filters do not load (OTA
JavaScript not ported yet) is still described by the API, as OTA does (and still listed
as skipped: it cannot be tracked).
"""

from __future__ import annotations

import logging
import os
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

from termshift.collection_metadata import CollectionMetadata, MetadataFile, metadata_path
from termshift.web.background import BackgroundRefresh

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class DeclaredService:
    id: str
    name: str
    # terms type -> list of source documents, in OTA's collection-API shape
    terms: dict[str, list[dict]] = field(default_factory=dict)


def _source_document(document) -> dict:
    """OTA's `/service/:id` shape of one source document; absent values are left out."""
    shape = {
        "location": document.location,
        "contentSelectors": document.select,
        "insignificantContentSelectors": document.remove,
        "executeClientScripts": document.execute_client_scripts,
        "filters": [call.name for call in document.filters] or None,
    }
    return {key: value for key, value in shape.items() if value is not None}


def load_declared_services(
    directory: Path | None, skipped: dict[str, list[str]] | None = None
) -> dict[str, DeclaredService]:
    """Services of a declarations folder; those that fail to load are logged and skipped
    (and put in `skipped`, when given: id -> `"<file name>: <json path>: <reason>"` lines)."""
    if directory is None:
        return {}
    # Only needed with --declarations.
    from termshift.declarations import ServiceLoadError, list_service_ids, load_collection, load_service

    collection = load_collection(Path(directory))
    services = dict(collection.services)
    for service_id in list_service_ids(Path(directory)):
        if service_id in services:
            continue
        # Its filters cannot run (say, OTA JavaScript not ported yet), but its declaration is
        # sound: it is part of the collection, and the API describes it as OTA does.
        try:
            services[service_id] = load_service(Path(directory), service_id, with_filters=False)
            log.info("%s: described without its filters (they do not load)", service_id)
        except ServiceLoadError:
            pass
    for error in collection.errors:
        log.warning("declaration problem: %s", error)
    if skipped is not None:
        skipped.update({service_id: [f"{error.file.name}: {error.json_path}: {error.reason}" for error in errors]
                        for service_id, errors in collection.skipped.items()})
    return {
        service_id: DeclaredService(
            service_id,
            service.name or service_id,
            {terms_type: [_source_document(d) for d in terms.documents] for terms_type, terms in service.terms.items()},
        )
        for service_id, service in sorted(services.items())
    }


def folder_fingerprint(directory: Path) -> tuple | None:
    """The folder's and its files' modification times and sizes (None when unreadable).

    One `scandir` and a `stat` per file: cheap enough to run every few seconds on a
    collection of thousands of services. Any added, removed, renamed or edited file
    changes it.
    """
    try:
        folder = os.stat(directory)
        with os.scandir(directory) as entries:
            files = sorted((entry.name, *_stamp(entry.stat())) for entry in entries)
    except OSError:  # missing folder, or a file removed between listing and stat
        return None
    return (folder.st_mtime_ns, tuple(files))


def _stamp(stat: os.stat_result) -> tuple[int, int]:
    return stat.st_mtime_ns, stat.st_size


class Declarations(BackgroundRefresh):
    """The declared services, reloaded when the declarations folder changes.

    `poke()` (called before requests) looks at the folder at most every `interval` seconds
    (0: never) and, when its fingerprint moved, reloads it in a background thread, as the
    index refresh does, so no request waits. `generation` grows with each reload, for
    caches of pages that show service names.
    """

    name = "declarations reload"

    def __init__(self, directory: Path | None, interval: float):
        self.directory = directory
        self.generation = 0
        super().__init__(interval)
        self.skipped: dict[str, list[str]] = {}  # services whose files do not load, with the reasons
        self.services: dict[str, DeclaredService] = load_declared_services(directory, self.skipped)

    def fingerprint(self) -> tuple | None:
        return folder_fingerprint(self.directory) if self.directory is not None else None

    def refresh(self) -> None:
        """Load the folder again now; on failure the services loaded before are kept."""
        fingerprint = self.fingerprint()
        skipped: dict[str, list[str]] = {}
        try:
            services = load_declared_services(self.directory, skipped)
        except OSError as error:
            log.warning("%s: declarations not reloaded: %s", self.directory, error)
            return
        self.services = services  # one assignment: readers see the old dict or the new one
        self.skipped = skipped
        self.remember(fingerprint)
        self.generation += 1
        log.info("declarations reloaded: %d services", len(services))



def match_id(requested: str, ids: Iterable[str]) -> str | None:
    """The id `requested` names: itself if it exists, else the first (sorted) equal to it
    ignoring case, as OTA's `/service/:serviceId` looks services up. None if none."""
    ids = sorted(ids)
    if requested in ids:
        return requested
    lowered = requested.lower()
    return next((candidate for candidate in ids if candidate.lower() == lowered), None)


def _metadata_file() -> MetadataFile:
    from flask import current_app

    from termshift.web.state import viewer

    file = current_app.extensions.get("termshift.metadata")
    if file is None:
        settings = current_app.config.get("SETTINGS")
        configured = settings.metadata if settings is not None else None
        file = MetadataFile(metadata_path(configured, viewer().declarations_dir))
        current_app.extensions["termshift.metadata"] = file
    return file


def collection_metadata() -> CollectionMetadata:
    """The collection's metadata.yml (re-read when it changes); empty without one.

    Its place: the `metadata` setting, else beside the viewer's declarations folder.
    A viewer started without declarations and without the setting has no metadata.
    """
    return _metadata_file().get()


def metadata_generation() -> int:
    """Grows each time metadata.yml is read again: part of the key of cached pages."""
    file = _metadata_file()
    file.get()  # looks at the file's modification time
    return file.generation
