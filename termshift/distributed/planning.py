"""The coordinator's first step: a job for each terms to track (what `trackers.run` plans locally).

`plan_job` mirrors `trackers.run._Tracker._plan` for one terms: a request per source
document, with the validators of its previous fetch when the caller found them usable
(same URL, snapshot still in the archive: the coordinator checks that, it owns the
archive). `fleet_fetcher(settings)` is the coordinator's fetcher policy that travels
with every job; a worker adds its machine's own browser settings.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

from termshift.config import Settings
from termshift.distributed.jobs import DocumentRequest, TermsJob, fetcher_to_json, job_id

__all__ = ["fleet_fetcher", "plan_job"]


def fleet_fetcher(settings: Settings) -> dict[str, Any]:
    """The coordinator's "fetcher" settings as JSON, without those that belong to a worker's machine."""
    return fetcher_to_json(settings.fetcher)


def plan_job(
    run_id: str,
    service: Any,
    terms: Any,
    declarations_dir: Path,
    fetcher: Mapping[str, Any],
    validators: Mapping[str, tuple[str | None, str | None]] | None = None,
) -> TermsJob:
    """The job of one terms. `validators`: document file id ("" for a single-document terms) →
    (etag, last modified) to send for a conditional GET."""
    from termshift.trackers.run import terms_fingerprint

    validators = validators or {}
    documents = []
    for position, document in enumerate(terms.documents):
        file_id = document.id if terms.combined else None
        etag, last_modified = validators.get(file_id or "", (None, None))
        documents.append(DocumentRequest(position=position, location=document.location,
                                         execute_client_scripts=document.execute_client_scripts,
                                         css_selectors=list(document.css_selectors), file_id=file_id,
                                         etag=etag, last_modified=last_modified))
    return TermsJob(run_id=str(run_id), job_id=job_id(service.id, terms.type), service_id=service.id,
                    terms_type=terms.type, fingerprint=terms_fingerprint(service, terms, Path(declarations_dir)),
                    documents=documents, fetcher=dict(fetcher))
