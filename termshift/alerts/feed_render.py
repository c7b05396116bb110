"""Atom 1.0 and RSS 2.0 feeds of new versions, rendered with feedgen.

`render(kind, feed, entries)` turns a `FeedInfo` and a list of `FeedItem`s
(newest first) into bytes; the HTTP side (routes, 404s, conditional GET) is in
`termshift.web.feed_routes`. Identifiers follow Open Terms Archive's feeds (reference
§3.6): tag URIs that never change for a given entry,
`tag:<authority>:version:<version id>` for an entry and
`tag:<authority>:feed[:<service>[:<terms type>]]` for a feed, so a feed
reader never shows the same change twice.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from datetime import UTC, datetime
from urllib.parse import quote

from feedgen.feed import FeedGenerator

from termshift import __version__
from termshift.alerts import links
from termshift.alerts.payloads import DiffStats
from termshift.archive_repo.listing import VersionEntry

EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
MEDIA_TYPES = {"atom": "application/atom+xml; charset=utf-8", "rss": "application/rss+xml; charset=utf-8"}
RENDERING_VERSION = "2"  # part of the ETag: bump when the rendered XML changes for the same entries


@dataclass(frozen=True)
class FeedInfo:
    """Which feed: the collection (no service), one service, or one document."""

    base_url: str
    authority: str  # `<domain>,<date>` of the tag URIs
    service_id: str | None = None
    terms_type: str | None = None

    @property
    def feed_id(self) -> str:
        parts = [self.service_id, self.terms_type]
        return f"tag:{self.authority}:feed" + "".join(f":{quote(part, safe='')}" for part in parts if part is not None)

    @property
    def title(self) -> str:
        if self.service_id is None:
            return "Termshift: changes to all tracked terms"
        if self.terms_type is None:
            return f"Termshift: changes to {self.service_id} terms"
        return f"Termshift: changes to {self.service_id} {self.terms_type}"

    def self_url(self, kind: str) -> str:
        return links.feed_url(self.base_url, self.service_id, self.terms_type, kind)


@dataclass(frozen=True)
class FeedItem:
    version: VersionEntry
    stats: DiffStats | None


def entry_id(authority: str, version_id: str) -> str:
    return f"tag:{authority}:version:{version_id}"


def entry_title(item: FeedItem) -> str:
    version = item.version
    name = f"{version.service_id} {version.terms_type}"
    if version.is_first_record:
        return f"{name}: first record"
    if item.stats is None:
        return f"{name} changed"
    return f"{name} changed (+{item.stats.words_added}/−{item.stats.words_removed} words)"


def entry_summary(item: FeedItem) -> str:
    if item.stats is None:
        return "Changed (statistics unavailable)."
    return item.stats.summary(item.version.is_first_record)


def entry_link(base_url: str, version: VersionEntry) -> str:
    """The diff page, or the version itself for a first record (nothing to compare it with)."""
    if version.is_first_record:
        return links.version_url(base_url, version.service_id, version.terms_type, version.id)
    return links.diff_url(base_url, version.service_id, version.terms_type, version.id)


def last_modified(versions: list[VersionEntry]) -> datetime:
    """The newest entry's date; the epoch for an empty feed (so conditional GET still works)."""
    return max((v.fetch_date for v in versions), default=EPOCH).replace(microsecond=0)


def etag(kind: str, feed: FeedInfo, versions: list[VersionEntry]) -> str:
    """A strong validator that changes whenever the rendered bytes would."""
    digest = hashlib.sha256()
    for part in (RENDERING_VERSION, kind, feed.feed_id, feed.self_url(kind), *(v.id for v in versions)):
        digest.update(part.encode("utf-8") + b"\0")
    return digest.hexdigest()[:32]


def _categories(entry, feed: FeedInfo, version: VersionEntry, kind: str) -> None:
    record_type = "First record" if version.is_first_record else "Change"
    values = (("service", version.service_id), ("terms-type", version.terms_type), ("record-type", record_type))
    for scheme, term in values:
        if kind == "atom":
            entry.category(term=term, scheme=f"tag:{feed.authority}:scheme:{scheme}", label=term)
        else:
            entry.category(term=term, scheme=f"tag:{feed.authority}:scheme:{scheme}")


def render(kind: str, feed: FeedInfo, items: list[FeedItem]) -> bytes:
    """The feed document (`kind` = atom or rss), entries in the given (newest-first) order."""
    if kind not in MEDIA_TYPES:
        raise ValueError(f"kind: expected atom or rss, got {kind!r}")
    updated = last_modified([item.version for item in items])
    generator = FeedGenerator()
    generator.id(feed.feed_id)
    generator.title(feed.title)
    generator.subtitle("New versions of terms of service and privacy policies, as Termshift recorded them.")
    generator.author({"name": "Termshift"})
    generator.generator("Termshift", version=__version__, uri="https://github.com/termshift/termshift")
    generator.link(href=feed.self_url(kind), rel="self", type=MEDIA_TYPES[kind].split(";")[0])
    generator.link(href=feed.base_url + "/", rel="alternate")
    generator.updated(updated)
    generator.lastBuildDate(updated)  # RSS: feedgen would put "now" here, changing the bytes on every request
    generator.language("en")
    for item in items:
        version = item.version
        entry = generator.add_entry(order="append")
        entry.id(entry_id(feed.authority, version.id))
        entry.guid(entry_id(feed.authority, version.id), permalink=False)
        entry.title(entry_title(item))
        entry.link(href=entry_link(feed.base_url, version), rel="alternate", type="text/html")
        entry.updated(version.fetch_date)
        entry.published(version.fetch_date)
        entry.summary(entry_summary(item))
        _categories(entry, feed, version, kind)
    if kind == "atom":
        return generator.atom_str(pretty=True)
    return generator.rss_str(pretty=True)
