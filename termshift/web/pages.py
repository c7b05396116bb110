"""Collection pages: home, latest changes, search, a service, a document's timeline.

Each has a JSON twin (`.json` suffix or `Accept: application/json`).
"""

from __future__ import annotations

import re
import zlib
from datetime import UTC, datetime

from flask import Blueprint, abort, current_app, g, request, send_from_directory
from markupsafe import Markup

from termshift import urls
from termshift.collection_metadata import localised
from termshift.urls import is_http_url
from termshift.web import drawings
from termshift.web.activity import build_activity, month_bounds
from termshift.web.catalog import ChangeFilter
from termshift.web.declared_services import collection_metadata
from termshift.web.document_status import UNKNOWN, read_statuses
from termshift.web.i18n import CODES, current_language
from termshift.web.layout import STATIC_FOLDER
from termshift.web.render import markdown_to_html
from termshift.web.state import LRU, viewer
from termshift.web.timeline import build_timeline
from termshift.web.views import (
    Page,
    cached_page,
    check_segment,
    end_of_day,
    flag,
    page_number,
    parse_moment,
    respond,
    split_suffix,
    version_summary,
    wants_json,
)

blueprint = Blueprint("pages", __name__)

SEARCH_WORD = re.compile(r"\w+")
MAX_QUERY = 200
# Changes per service and month, by (index generation, filters): a scan of every version, so it
# is done once per refresh of the index, whatever page, language or format is asked for.
_activity_counts = LRU(16)
# Documents whose timelines `draw_timelines_ahead` draws after each refresh, in every language,
# the most recently changed first: their pages' first views then only render their rows.
TIMELINES_AHEAD = 1000


def _document_summary(document: dict) -> dict:
    service_id, terms_type = document["service_id"], document["terms_type"]
    last_change = None
    if document["last_change_commit"]:
        reference = {"service_id": service_id, "terms_type": terms_type, "date": document["last_change_date"],
                     "commit_id": document["last_change_commit"]}
        last_change = {
            "date": document["last_change_date"],
            "kind": document["last_change_kind"],
            # The latest non-technical record may be the first one: nothing changed since.
            "is_first_record": bool(document["last_change_is_first"]),
            "words_added": document["last_change_added"],
            "words_removed": document["last_change_removed"],
            "url": urls.version_url(reference),
            "diff_url": urls.diff_url(reference),
        }
    return {
        "terms_type": terms_type,
        "url": urls.document_url(service_id, terms_type),
        "json_url": urls.document_url(service_id, terms_type, json=True),
        "versions": document["versions"],
        "changes": document["changes"],
        "first_date": document["first_date"],
        "current_version_date": document["latest_date"],
        "current_version_id": document["latest_commit"],
        "last_change": last_change,
        "removed": document["removed"],
        "feeds": urls.feed_urls(service_id, terms_type),
    }


def _services(documents: list[dict]) -> list[dict]:
    """Documents grouped by service, services sorted by name."""
    services: dict[str, dict] = {}
    state = viewer()
    for document in documents:
        service_id = document["service_id"]
        if service_id not in services:
            services[service_id] = {
                "id": service_id,
                "name": state.service_name(service_id),
                "url": urls.service_url(service_id),
                "documents": [],
            }
        services[service_id]["documents"].append(_document_summary(document))
    return sorted(services.values(), key=lambda service: (service["name"].casefold(), service["id"]))


@blueprint.route("/favicon.ico")
def favicon():
    """Browsers ask for /favicon.ico whatever the pages' `<link rel="icon">` says."""
    return send_from_directory(STATIC_FOLDER, "favicon.ico", mimetype="image/vnd.microsoft.icon", max_age=86400)


@blueprint.route("/")
@blueprint.route("/index.json", endpoint="home_json")
@cached_page
def home():
    as_json = wants_json(request.path.endswith(".json"))
    catalog = viewer().catalog
    data = {
        "totals": catalog.totals(),
        "collection": _collection(),
        "services": _services(catalog.documents()),
        "feeds": urls.feed_urls(),
        "json_url": urls.home_url(json=True),
    }
    return respond("home.html", data, as_json=as_json)


METADATA_LINKS = ("dataset", "declarations", "versions", "snapshots", "donations")


def _collection() -> dict | None:
    """What the home page shows of the collection's metadata.yml (None without one).

    The file is text written by whoever runs the collection, shown to everyone: only
    strings are kept, links only when they are http(s), and the description (Markdown,
    as in OTA) is rendered and sanitised like an archived version.
    """
    data = collection_metadata().data
    if not data:
        return None
    data = localised(data, getattr(g, "lang", "en"))

    def text(value) -> str | None:
        return value.strip() if isinstance(value, str) and value.strip() else None

    def link(value) -> str | None:
        return value if isinstance(value, str) and is_http_url(value) else None

    def texts(value) -> list[str]:
        return [item for item in map(text, value) if item] if isinstance(value, list) else []

    governance = data.get("governance") if isinstance(data.get("governance"), dict) else {}
    periods = [period for period in data.get("trackingPeriods") or [] if isinstance(period, dict)]
    description = text(data.get("description"))
    return {
        "id": text(data.get("id")),
        "name": text(data.get("name")),
        "tagline": text(data.get("tagline")),
        "description": description,
        "description_html": markdown_to_html(description) if description else None,
        "languages": texts(data.get("languages")),
        "jurisdictions": texts(data.get("jurisdictions")),
        "links": [{"name": name, "url": link(data.get(name))} for name in METADATA_LINKS if link(data.get(name))],
        "governance": [
            {"name": str(name), "url": link(entry.get("url")), "roles": texts(entry.get("roles"))}
            for name, entry in governance.items() if isinstance(entry, dict)
        ],
        "tracking_periods": [
            {key: text(period.get(field)) for key, field in (("start_date", "startDate"), ("end_date", "endDate"),
                                                             ("schedule", "schedule"),
                                                             ("server_location", "serverLocation"))}
            for period in periods
        ],
        "metadata_url": "/api/v1/metadata",
    }


def _change_filter() -> tuple[ChangeFilter, dict]:
    """Filters from the query string; a malformed date is a 400 naming the field."""
    arguments = {name: request.args.get(name, "").strip() for name in ("service", "type", "from", "to")}
    since = until = None
    if arguments["from"]:
        since = parse_moment(arguments["from"])
        if since is None:
            abort(400, description="from: expected a date like 2024-03-18 or 2024-03-18T18:30:09Z")
    if arguments["to"]:
        until = end_of_day(arguments["to"])
        if until is None:
            abort(400, description="to: expected a date like 2024-03-18 or 2024-03-18T18:30:09Z")
    check_segment(arguments["service"], arguments["type"])
    technical = flag("technical")
    filters = ChangeFilter(arguments["service"] or None, arguments["type"] or None, since, until, technical)
    return filters, {**arguments, "technical": technical}


@blueprint.route("/-/changes")
@blueprint.route("/-/changes.json", endpoint="changes_json")
@cached_page
def changes():
    as_json = wants_json(request.path.endswith(".json"))
    filters, arguments = _change_filter()
    catalog = viewer().catalog
    size = current_app.config["PAGE_SIZE"]
    number = page_number()
    rows, total = catalog.latest_changes(filters, limit=size, offset=(number - 1) * size)
    page = Page(number, size, total)
    query = {"service": arguments["service"], "type": arguments["type"], "from": arguments["from"],
             "to": arguments["to"], "technical": "1" if arguments["technical"] else None}
    data = {
        "filters": arguments,
        "changes": [version_summary(row) for row in rows],
        "pagination": page.to_json(),
        "previous_page_url": urls.changes_url(**query, page=number - 1) if number > 1 else None,
        "next_page_url": urls.changes_url(**query, page=number + 1) if number < page.count else None,
        "json_url": urls.changes_url(json=True, **query, page=number if number > 1 else None),
        "service_options": [(sid, viewer().service_name(sid)) for sid in catalog.service_ids()],
        "type_options": catalog.terms_types(),
        "feeds": urls.feed_urls(filters.service_id, filters.terms_type if filters.service_id else None),
    }
    # The grid sums the whole selection: drawn above the first page of the list only.
    data["activity"] = None
    if number == 1 and as_json:
        activity = _activity(filters, arguments)
        data["activity"] = activity.to_json() if activity else None
    elif number == 1:
        data["activity_picture"], data["activity_svg"] = _picture(
            ("activity", filters), lambda: _activity(filters, arguments), drawings.activity_svg)
    return respond("changes.html", data, as_json=as_json)


def _picture(key: tuple, build, draw_svg) -> tuple:
    """(picture, its SVG) drawn by `draw_svg` (one of `drawings`), or (None, None) when there is
    nothing to draw. Rendered once per index generation, language and `key`: a picture
    sums a whole selection (all the changes of the collection), the same for every page
    and query that shows it, and costs milliseconds to draw."""
    state = viewer()

    def draw() -> tuple:
        picture = build()
        return (picture, draw_svg(picture)) if picture else (None, None)

    return state.pictures.get_or_compute((state.catalog.generation(), current_language(), *key), draw)


def _activity(filters: ChangeFilter, arguments: dict):
    """The services × months picture of the changes these filters select."""
    state = viewer()
    key = (state.catalog.generation(), filters)
    counts = _activity_counts.get_or_compute(key, lambda: state.catalog.monthly_activity(filters))
    names = {count["service_id"]: state.service_name(count["service_id"]) for count in counts}

    def link(service_id: str | None, month: str | None) -> str:
        since, until = month_bounds(month) if month else (arguments["from"], arguments["to"])
        return urls.changes_url(service=service_id or arguments["service"], type=arguments["type"],
                                technical="1" if arguments["technical"] else None, **{"from": since, "to": until})

    first = filters.since.strftime("%Y-%m") if filters.since else None
    last = arguments["to"][:7] if filters.until else None
    return build_activity(counts, names, link, first, last)


@blueprint.route("/-/search")
@blueprint.route("/-/search.json", endpoint="search_json")
def search():
    as_json = wants_json(request.path.endswith(".json"))
    text = request.args.get("q", "").strip()[:MAX_QUERY]
    state = viewer()
    names = []
    hits = []
    if text:
        folded = text.casefold()
        for document in state.catalog.documents():
            name = state.service_name(document["service_id"])
            haystack = f"{name} {document['service_id']} {document['terms_type']}".casefold()
            if all(word in haystack for word in folded.split()):
                names.append({"service_id": document["service_id"], "service_name": name,
                              "terms_type": document["terms_type"],
                              "url": urls.document_url(document["service_id"], document["terms_type"])})
        for hit in state.catalog.search(SEARCH_WORD.findall(text)[:12]):
            hits.append({
                "service_id": hit["service_id"],
                "service_name": state.service_name(hit["service_id"]),
                "terms_type": hit["terms_type"],
                "url": urls.document_url(hit["service_id"], hit["terms_type"]),
                "excerpt": _excerpt_parts(hit["snippet"]),
            })
    data = {"query": text, "documents": names, "full_text": hits,
            "json_url": urls.search_url(json=True, q=text)}
    return respond("search.html", data, as_json=as_json)


def _excerpt_parts(snippet: str) -> list[dict]:
    """FTS snippet with \\x02…\\x03 around matches → [{"text", "match"}] (escaped by the template)."""
    parts = []
    for index, piece in enumerate(re.split(r"[\x02\x03]", snippet)):
        if piece:
            parts.append({"text": piece, "match": index % 2 == 1})
    return parts


def _status_of(statuses: dict, service_id: str, terms_type: str) -> dict:
    return statuses.get((service_id, terms_type), UNKNOWN).to_json()


def service_page(service_id: str):
    check_segment(service_id)
    catalog = viewer().catalog
    state = viewer()

    def exists(name: str) -> bool:
        return catalog.has_service(name) or name in state.declared

    service_id, suffix = split_suffix(service_id, exists)
    if not exists(service_id):
        abort(404, description=f"No service {service_id!r} in this archive.")
    statuses = read_statuses(state.runs_db, service_id)
    documents = [_document_summary(d) | {"status": _status_of(statuses, service_id, d["terms_type"])}
                 for d in catalog.documents(service_id)]
    declared = state.declared.get(service_id)
    recorded = {d["terms_type"] for d in documents}
    data = {
        "id": service_id,
        "name": state.service_name(service_id),
        "documents": documents,
        "declared_without_versions": sorted(set(declared.terms) - recorded) if declared else [],
        "feeds": urls.feed_urls(service_id),
        "url": urls.service_url(service_id),
        "json_url": urls.service_url(service_id, json=True),
        "changes_url": urls.changes_url(service=service_id),
    }
    return respond("service.html", data, as_json=wants_json(bool(suffix)))


@blueprint.route("/<service_id>")
@cached_page
def service(service_id: str):
    return service_page(service_id)


@blueprint.route("/-/service/<service_id>")
def reserved_service(service_id: str):
    """Services whose id is one of the viewer's own first path segments."""
    return service_page(service_id)


def document_page(service_id: str, terms_type: str):
    check_segment(service_id, terms_type)
    state = viewer()
    catalog = state.catalog
    terms_type, suffix = split_suffix(terms_type, lambda name: catalog.document(service_id, name) is not None)
    document = catalog.document(service_id, terms_type)
    if document is None:
        abort(404, description=f"No document {terms_type!r} of service {service_id!r} in this archive.")
    technical = flag("technical")
    size = current_app.config["PAGE_SIZE"]
    number = page_number()
    rows, total = catalog.timeline(service_id, terms_type, technical=technical, limit=size,
                                   offset=(number - 1) * size)
    page = Page(number, size, total)
    query = {"technical": "1" if technical else None}
    status = _status_of(read_statuses(state.runs_db, service_id), service_id, terms_type)
    data = {
        "service": {"id": service_id, "name": state.service_name(service_id),
                    "url": urls.service_url(service_id)},
        "terms_type": terms_type,
        "document": _document_summary(document) | {"status": status},
        "technical": technical,
        "versions": [version_summary(row) for row in rows],
        "pagination": page.to_json(),
        "previous_page_url": urls.document_url(service_id, terms_type, **query, page=number - 1)
        if number > 1 else None,
        "next_page_url": urls.document_url(service_id, terms_type, **query, page=number + 1)
        if number < page.count else None,
        "toggle_technical_url": urls.document_url(service_id, terms_type,
                                                  technical=None if technical else "1"),
        "compare_url": urls.compare_url(service_id, terms_type),
        "feeds": urls.feed_urls(service_id, terms_type),
        "url": urls.document_url(service_id, terms_type),
        "json_url": urls.document_url(service_id, terms_type, json=True, **query,
                                      page=number if number > 1 else None),
    }
    as_json = wants_json(bool(suffix))
    removed = document["removed"]
    if as_json:
        timeline = _timeline(service_id, terms_type, technical, removed)
        data["timeline"] = timeline.to_json() if timeline else None
    else:
        data["timeline_svg"] = _timeline_svg(document, technical)
    return respond("document.html", data, as_json=as_json)


def _timeline_svg(document: dict, technical: bool) -> Markup | None:
    """A document's timeline picture (None: nothing to draw), drawn once per state of the
    document (its number of versions and latest one), language, filter and day (the axis
    runs on to today while it is tracked). A refresh of the index that brings other
    documents' versions keeps it. Kept compressed: a picture of hundreds of bars is tens of
    kilobytes of SVG, and every document's is kept (see `draw_timelines_ahead`)."""
    service_id, terms_type, removed = document["service_id"], document["terms_type"], document["removed"]
    key = (current_language(), service_id, terms_type, technical, removed, datetime.now(UTC).date(),
           document["versions"], document["latest_commit"])

    def draw() -> bytes | None:
        timeline = _timeline(service_id, terms_type, technical, removed)
        return zlib.compress(drawings.timeline_svg(timeline, "timeline-heading").encode(), 1) if timeline else None

    drawn = viewer().timelines.get_or_compute(key, draw)
    return Markup(zlib.decompress(drawn).decode()) if drawn else None


def draw_timelines_ahead(limit: int = TIMELINES_AHEAD) -> int:
    """Draw the timelines of the `limit` most recently changed documents in every language,
    unless already drawn for their current state (within an app context; after a refresh of
    the index, in the background). A timeline is a quarter of a document page's first view.
    Returns how many documents' timelines are ready."""
    documents = sorted(viewer().catalog.documents(), key=lambda d: d["latest_date"], reverse=True)[:limit]
    for code in CODES:
        g.lang = code
        for document in documents:
            _timeline_svg(document, technical=False)
    g.pop("lang", None)
    return len(documents)


def _timeline(service_id: str, terms_type: str, technical: bool, removed: bool):
    """Every version of the document on a time axis (on to today while it is tracked)."""
    points = viewer().catalog.timeline_points(service_id, terms_type, technical=technical)

    def link(version: dict, against: dict | None) -> str:
        if against is None:
            return urls.version_url(version)
        return urls.diff_url(version, against if against["id"] != version["previous_id"] else None)

    return build_timeline(points, link, now=None if removed else datetime.now(UTC))


@blueprint.route("/<service_id>/<terms_type>")
@cached_page
def document(service_id: str, terms_type: str):
    return document_page(service_id, terms_type)


@blueprint.route("/-/service/<service_id>/<terms_type>")
def reserved_document(service_id: str, terms_type: str):
    return document_page(service_id, terms_type)
