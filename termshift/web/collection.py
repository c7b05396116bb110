"""What the viewer takes from the declarations: service names and, for the API, the terms.

Without a declarations folder the viewer still works: a service's name is its id and
its terms types are those found in the archive.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from pathlib import Path

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


def load_declared_services(directory: Path | None) -> dict[str, DeclaredService]:
    """Services of a declarations folder; those that fail to load are logged and skipped."""
    if directory is None:
        return {}
    from termshift.declarations import load_collection  # only needed with --declarations

    collection = load_collection(Path(directory))
    for error in collection.errors:
        log.warning("declaration skipped: %s", error)
    return {
        service_id: DeclaredService(
            service_id,
            service.name or service_id,
            {terms_type: [_source_document(d) for d in terms.documents] for terms_type, terms in service.terms.items()},
        )
        for service_id, service in collection.services.items()
    }
