"""What travels between the coordinator and the workers: jobs and their results, as plain JSON.

A **job** is one terms of one service: the fetch requests of its documents (with the
validators of their previous fetch, for a conditional GET), the fingerprint of its
declaration (`trackers.run.terms_fingerprint`: the worker's copy of the declarations
must give the same), and the coordinator's fetcher settings (politeness, time-outs,
languages: one policy for the whole fleet, as JSON: `fetcher_to_json` /
`fetcher_from_json`). Its id is stable — `job_id(service, type)`
— so that a job sent again (a coordinator restarted) lands on the same result.

A **result** holds, for each document, the fetch result as the fetcher gave it
(`fetcher.result_to_wire`, bytes in base64) and, for a page that was fetched (not a
304, not a block page, not an error), the Markdown extracted from it or the
extraction's error. A job that could not be run at all (the worker does not know the
service, its declaration differs) has `error` and no documents.

`to_json()` / `from_json()` give and take dicts of JSON types only.
"""

from __future__ import annotations

import base64
import dataclasses
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from typing import Any

from termshift.config import FetcherSettings
from termshift.trackers.fetcher import FetchRequest, FetchResult, result_from_wire, result_to_wire

__all__ = ["DocumentRequest", "DocumentResult", "JobResult", "TermsJob", "fetcher_from_json", "fetcher_to_json",
           "job_id"]

# The "fetcher" settings that belong to the worker's machine, not to the coordinator's policy.
WORKER_FETCHER_KEYS = ("browser_path", "browser_endpoint", "browser_pages")


def fetcher_to_json(fetcher: FetcherSettings) -> dict[str, Any]:
    """The coordinator's fetcher policy as JSON: every setting but those of a worker's machine."""
    return {key: list(value) if isinstance(value, tuple) else value
            for key, value in dataclasses.asdict(fetcher).items() if key not in WORKER_FETCHER_KEYS}


def fetcher_from_json(policy: Mapping[str, Any], machine: FetcherSettings | None = None) -> FetcherSettings:
    """The settings a worker fetches a job with: the job's policy, and its own machine's browser
    settings (`machine`; the defaults when None). Keys this version does not know are ignored."""
    machine = machine or FetcherSettings()
    known = {item.name for item in dataclasses.fields(FetcherSettings)} - set(WORKER_FETCHER_KEYS)
    values = {key: tuple(value) if isinstance(value, list) else value
              for key, value in policy.items() if key in known}
    return dataclasses.replace(machine, **values)


def job_id(service_id: str, terms_type: str) -> str:
    """The id of the job of a terms: stable across runs and coordinator restarts."""
    return f"{service_id}/{terms_type}"


@dataclass
class DocumentRequest:
    """One source document of the terms, as the coordinator planned its fetch."""

    position: int  # in the declaration's documents
    location: str
    execute_client_scripts: bool | None = None
    css_selectors: list[str] = field(default_factory=list)
    file_id: str | None = None  # the document id in file names (combined terms only)
    etag: str | None = None
    last_modified: str | None = None

    def fetch_request(self) -> FetchRequest:
        return FetchRequest(location=self.location, execute_client_scripts=self.execute_client_scripts,
                            css_selectors=list(self.css_selectors), key=self.position, etag=self.etag,
                            last_modified=self.last_modified)


@dataclass
class TermsJob:
    run_id: str
    job_id: str
    service_id: str
    terms_type: str
    fingerprint: str
    documents: list[DocumentRequest]
    fetcher: dict[str, Any] = field(default_factory=dict)  # the coordinator's policy (`fetcher_to_json`)

    def to_json(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> TermsJob:
        fields = dict(data)
        fields["documents"] = [DocumentRequest(**document) for document in fields["documents"]]
        return cls(**fields)


@dataclass
class DocumentResult:
    position: int
    fetch: dict[str, Any]  # fetcher.result_to_wire, JSON-safe (see `from_fetch`)
    markdown: str | None = None  # extracted from this fetch's page
    extract_error: str | None = None

    @classmethod
    def from_fetch(cls, position: int, result: FetchResult, markdown: str | None = None,
                   extract_error: str | None = None) -> DocumentResult:
        wire = result_to_wire(result)
        if isinstance(wire["content"], bytes):
            wire["content"] = base64.b64encode(wire["content"]).decode("ascii")
            wire["content_base64"] = True
        return cls(position, wire, markdown, extract_error)

    def fetch_result(self, key: Any = None) -> FetchResult:
        """The FetchResult as the worker's fetcher gave it (`key` is the caller's)."""
        wire = dict(self.fetch)
        if wire.pop("content_base64", False):
            wire["content"] = base64.b64decode(wire["content"])
        return result_from_wire(wire, key)


@dataclass
class JobResult:
    run_id: str
    job_id: str
    service_id: str
    terms_type: str
    documents: list[DocumentResult] = field(default_factory=list)
    error: str | None = None  # the job could not run at all
    error_kind: str | None = None  # an ErrorKind value
    worker: str = ""  # host:pid of the worker that produced it
    attempt: int = 1  # the delivery that produced it: above 1, the job was delivered again
    started_at: str = ""  # ISO 8601, UTC
    finished_at: str = ""

    def to_json(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> JobResult:
        fields = dict(data)
        fields["documents"] = [DocumentResult(**document) for document in fields["documents"]]
        return cls(**fields)
