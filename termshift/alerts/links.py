"""Absolute public URLs that feeds and webhook payloads point to.

The paths come from `termshift.urls`, where the viewer builds every URL: a version is
`/<service>/<terms type>/<commit id>` and its comparison with the version before it is
that URL plus `/diff`. Here they are only prefixed with the public base URL.
"""

from __future__ import annotations

from termshift.urls import document_url, feed_urls, segment


def document_path(service_id: str, terms_type: str) -> str:
    """`/<service>/<terms type>`, as the viewer builds it."""
    return document_url(service_id, terms_type)


def version_url(base: str, service_id: str, terms_type: str, version_id: str) -> str:
    """The viewer's permalink of one version."""
    return f"{base}{document_path(service_id, terms_type)}/{segment(version_id)}"


def diff_url(base: str, service_id: str, terms_type: str, version_id: str) -> str:
    """The viewer's page comparing a version with the one before it."""
    return version_url(base, service_id, terms_type, version_id) + "/diff"


def feed_url(base: str, service_id: str | None = None, terms_type: str | None = None, kind: str = "atom") -> str:
    """A feed of the whole collection, one service, or one document (`kind` is atom or rss)."""
    return base + feed_urls(service_id, terms_type)[kind]
