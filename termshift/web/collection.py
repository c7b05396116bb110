"""What the viewer takes from the declarations: service names and, for the API, the terms.

Without a declarations folder the viewer still works: a service's name is its id and
its terms types are those found in the archive. With one, `Declarations` reloads it when
its files change, so a service declared while `serve` runs gets its pages and API answers.

Reading the declarations never runs filter code (filters files are only read, see
termshift.filters), and a service whose files do not load is logged, listed in
`Declarations.skipped` (shown on /status) and left out; the others are served.
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass, field
from pathlib import Path

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
    from termshift.declarations import load_collection  # only needed with --declarations

    collection = load_collection(Path(directory))
    for error in collection.errors:
        log.warning("declaration skipped: %s", error)
    if skipped is not None:
        skipped.update({service_id: [f"{error.file.name}: {error.json_path}: {error.reason}" for error in errors]
                        for service_id, errors in collection.skipped.items()})
    return {
        service_id: DeclaredService(
            service_id,
            service.name or service_id,
            {terms_type: [_source_document(d) for d in terms.documents] for terms_type, terms in service.terms.items()},
        )
        for service_id, service in collection.services.items()
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

