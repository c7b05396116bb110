"""The viewer's URLs, built in one place.

Service ids and terms types hold spaces, dots, `#`, non-ASCII letters…: every path
segment is percent-encoded. A version is addressed by its date when that date is
unambiguous (`/GitHub/Privacy%20Policy/2024-03-18T18:30:09Z`), otherwise by its
commit id; both stay valid forever (a date means "the version in force then").
"""

from __future__ import annotations

from datetime import UTC, datetime
from functools import lru_cache
from urllib.parse import quote, urlencode, urlsplit

# First path segments the viewer uses itself; a service with one of these ids is
# still reachable at /-/service/<id>.
RESERVED = {"-", "api", "feed", "feed.atom", "feed.rss", "index.json", "favicon.ico", "robots.txt",
            "status", "status.json", "healthz", "metrics", "declare"}


@lru_cache(maxsize=65536)
def segment(text: str) -> str:
    """A percent-encoded path segment (cached: the same ids are encoded on every page)."""
    return quote(text, safe="")


def iso(moment: datetime) -> str:
    """`2024-03-18T18:30:09Z` (seconds precision, UTC)."""
    return moment.astimezone(UTC).replace(tzinfo=None).isoformat(timespec="seconds") + "Z"


@lru_cache(maxsize=65536)
def _query_pair(key: str, value: object) -> str:
    """`key=value`, encoded (cached: a page of links repeats the same few)."""
    return urlencode({key: value})


def _with_query(path: str, query: dict) -> str:
    pairs = [_query_pair(key, value) for key, value in query.items() if value not in (None, "", False)]
    return f"{path}?{'&'.join(pairs)}" if pairs else path


def home_url(json: bool = False) -> str:
    return "/index.json" if json else "/"


def changes_url(json: bool = False, **query) -> str:
    return _with_query("/-/changes.json" if json else "/-/changes", query)


def search_url(json: bool = False, **query) -> str:
    return _with_query("/-/search.json" if json else "/-/search", query)


def service_url(service_id: str, json: bool = False) -> str:
    base = f"/-/service/{segment(service_id)}" if service_id in RESERVED else f"/{segment(service_id)}"
    return base + (".json" if json else "")


def document_url(service_id: str, terms_type: str, json: bool = False, **query) -> str:
    path = f"{service_url(service_id)}/{segment(terms_type)}" + (".json" if json else "")
    return _with_query(path, query)


def version_ref(version: dict) -> str:
    """The date of a version when it designates it unambiguously, else its commit id."""
    return version["commit_id"][:12] if version.get("shadowed") else iso(version["date"])


def version_url(version: dict, suffix: str = "") -> str:
    """Permalink of a version; `suffix` is "", ".json" or ".md"."""
    return (f"{document_url(version['service_id'], version['terms_type'])}/"
            f"{quote(version_ref(version), safe=':')}{suffix}")


def version_links(version: dict) -> dict[str, str]:
    """A version's page, its diff with the version before, its Markdown and its JSON: the
    four links of each row of a list, from one permalink (lists build them by the hundred)."""
    page = version_url(version)
    return {"url": page, "diff_url": f"{page}/diff", "markdown_url": f"{page}.md", "json_url": f"{page}.json"}


def diff_url(version: dict, against: dict | None = None, json: bool = False, **query) -> str:
    """Comparison of `version` with `against` (default: the version before it)."""
    path = version_url(version) + ("/diff.json" if json else "/diff")
    if against is not None:
        query["from"] = version_ref(against)
    return _with_query(path, query)


def compare_url(service_id: str, terms_type: str) -> str:
    return f"{document_url(service_id, terms_type)}/compare"


def snapshot_url(snapshot_id: str, json: bool = False) -> str:
    return f"/-/snapshot/{segment(snapshot_id)}" + (".json" if json else "")


def snapshot_raw_url(snapshot_id: str) -> str:
    return f"/-/snapshot/{segment(snapshot_id)}/raw"


def feed_urls(service_id: str | None = None, terms_type: str | None = None) -> dict[str, str]:
    """Atom and RSS feeds of the collection, a service or a document (served by web.feeds)."""
    if service_id is None:
        base = "/feed"
    elif terms_type is None:
        base = f"/feed/{segment(service_id)}"
    else:
        base = f"/feed/{segment(service_id)}/{segment(terms_type)}"
    return {"atom": f"{base}.atom", "rss": f"{base}.rss"}


def diff_permalink(version: dict, against: dict | None) -> str:
    """The diff of two versions named by their full commit ids: a link that never changes meaning."""
    path = f"{document_url(version['service_id'], version['terms_type'])}/{version['commit_id']}/diff"
    return _with_query(path, {"from": against["commit_id"] if against else None})


def is_http_url(value: str) -> bool:
    """An absolute http(s) URL with a host and no whitespace: what a fetcher can fetch."""
    if any(character.isspace() for character in value):
        return False
    try:
        parts = urlsplit(value)
        parts.port  # noqa: B018 - raises ValueError for a bad port
    except ValueError:
        return False
    return parts.scheme in ("http", "https") and bool(parts.hostname)
