"""Public URLs that feeds and webhook payloads point to, built in one place.

The viewer (termshift.web) owns these routes: a version is
`/<service>/<terms type>/<commit id>` and its comparison with the version
before it is that URL plus `/diff` (termshift.web.versions). Service ids the
viewer reserves for itself (`feed`, `api`, `-`…) live under `/-/service/`; the
viewer's own `termshift.web.urls.document_url` decides, when installed. Path
segments are percent-encoded (ids and types hold spaces and other characters).
"""

from __future__ import annotations

from urllib.parse import quote


def _segment(text: str) -> str:
    return quote(text, safe="")


def document_path(service_id: str, terms_type: str) -> str:
    """`/<service>/<terms type>`, as the viewer builds it."""
    try:
        from termshift.web.urls import document_url
    except ImportError:  # alerts without the viewer: its default layout
        return f"/{_segment(service_id)}/{_segment(terms_type)}"
    return document_url(service_id, terms_type)


def version_url(base: str, service_id: str, terms_type: str, version_id: str) -> str:
    """The viewer's permalink of one version."""
    return f"{base}{document_path(service_id, terms_type)}/{_segment(version_id)}"


def diff_url(base: str, service_id: str, terms_type: str, version_id: str) -> str:
    """The viewer's page comparing a version with the one before it."""
    return version_url(base, service_id, terms_type, version_id) + "/diff"


def feed_url(base: str, service_id: str | None = None, terms_type: str | None = None, kind: str = "atom") -> str:
    """A feed of the whole collection, one service, or one document (`kind` is atom or rss)."""
    if service_id is None:
        return f"{base}/feed.{kind}"
    if terms_type is None:
        return f"{base}/feed/{_segment(service_id)}.{kind}"
    return f"{base}/feed/{_segment(service_id)}/{_segment(terms_type)}.{kind}"
