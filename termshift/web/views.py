"""Helpers shared by the viewer's blueprints: HTML or JSON answers, paging, dates, rows.

Every page has a JSON twin: the same data, asked for with a `.json` suffix or with
`Accept: application/json`. A view builds one dict; `respond()` renders it with a
template or returns it as JSON.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from functools import wraps

from flask import Response, abort, current_app, g, jsonify, make_response, render_template, request

from termshift import urls
from termshift.web.declared_services import metadata_generation
from termshift.web.document_status import runs_stamp
from termshift.web.state import viewer

MAX_SEGMENT = 512  # longer path segments are not ids of anything (404)
DATE_ONLY = re.compile(r"^\d{4}-\d{2}-\d{2}$")


def wants_json(suffix: bool = False) -> bool:
    """True for a `.json` URL, or when the client prefers JSON to HTML."""
    if suffix:
        return True
    best = request.accept_mimetypes.best_match(["text/html", "application/json"])
    return best == "application/json" and request.accept_mimetypes["application/json"] > \
        request.accept_mimetypes["text/html"]


def cached_page(view):
    """Cache a collection page's answer until the index (or the tracking status) changes.

    Lists of thousands of documents take tens of milliseconds to render; they only change
    when new commits are indexed. The key holds everything the answer depends on: the
    index generation, the declarations' generation (service names), metadata.yml's, the tracking
    database's modification time, the language, the URL and whether JSON was asked for.
    """

    @wraps(view)
    def wrapper(*args, **kwargs):
        key = (viewer().catalog.generation(), viewer().index_progress().complete,
               viewer().declarations.generation, runs_stamp(viewer().runs_db), metadata_generation(),
               getattr(g, "lang", "en"), request.full_path, wants_json(), current_app.config.get("FEEDS", False))
        pages = viewer().pages
        cached = pages.get(key)
        if cached is not None:
            body, status, content_type = cached
            return Response(body, status=status, content_type=content_type)
        response = make_response(view(*args, **kwargs))
        if response.status_code == 200 and not response.direct_passthrough:
            pages.put(key, (response.get_data(), response.status_code, response.content_type))
        return response

    return wrapper


def respond(template: str, data: dict, *, as_json: bool, status: int = 200):
    if "feeds" in data and not current_app.config.get("FEEDS"):
        data["feeds"] = None  # no feeds blueprint: do not advertise feeds that would 404
    if as_json:
        response = jsonify(data)
        response.status_code = status
        return response
    return render_template(template, **data), status


def check_segment(*values: str) -> None:
    """Reject path segments that cannot name anything: control characters (400), too long (404)."""
    for value in values:
        if any(ord(char) < 32 or ord(char) == 127 for char in value):
            abort(400, description="Path segments must not contain control characters.")
        if len(value) > MAX_SEGMENT:
            abort(404)


def split_suffix(value: str, exists, suffixes: tuple[str, ...] = (".json",)) -> tuple[str, str]:
    """(name, suffix): `GitHub.json` → (`GitHub`, `.json`) unless `GitHub.json` itself exists."""
    if exists(value):
        return value, ""
    for suffix in suffixes:
        if value.endswith(suffix) and exists(value[: -len(suffix)]):
            return value[: -len(suffix)], suffix
    return value, ""


def parse_moment(text: str) -> datetime | None:
    """An ISO 8601 date or date-time (UTC if no offset); None if it is not one.

    A bare date means its first instant (00:00:00Z), as OTA's API reads it.
    """
    text = text.strip()
    if not text or len(text) > 40:
        return None
    try:
        if DATE_ONLY.match(text):
            return datetime.fromisoformat(text).replace(tzinfo=UTC)
        if not re.match(r"^\d{4}-\d{2}-\d{2}[T ]\d{2}:\d{2}", text):
            return None
        moment = datetime.fromisoformat(text.replace("Z", "+00:00").replace("z", "+00:00"))
    except ValueError:
        return None
    return (moment if moment.tzinfo else moment.replace(tzinfo=UTC)).astimezone(UTC)


def end_of_day(text: str) -> datetime | None:
    """For a `to` filter: a bare date includes that whole day."""
    moment = parse_moment(text)
    if moment is not None and DATE_ONLY.match(text.strip()):
        moment += timedelta(days=1)
    return moment


@dataclass(frozen=True)
class Page:
    """Pagination of a list: `page` is 1-based."""

    number: int
    size: int
    total: int

    @property
    def offset(self) -> int:
        return (self.number - 1) * self.size

    @property
    def count(self) -> int:
        return max(1, -(-self.total // self.size))

    def to_json(self) -> dict:
        return {"page": self.number, "pages": self.count, "per_page": self.size, "total": self.total}


def page_number() -> int:
    try:
        number = int(request.args.get("page", "1"))
    except ValueError:
        abort(400, description="page: expected a whole number")
    if number < 1 or number > 1_000_000:
        abort(400, description="page: expected a number from 1")
    return number


def flag(name: str) -> bool:
    return request.args.get(name, "").lower() in {"1", "true", "yes", "on"}


def version_summary(version: dict) -> dict:
    """A version as lists show it (and as its JSON twin gives it)."""
    return {
        "id": version["commit_id"],
        "service_id": version["service_id"],
        "service_name": viewer().service_name(version["service_id"]),
        "terms_type": version["terms_type"],
        "date": version["date"],
        "kind": version["kind"],
        "is_first_record": version["is_first"],
        "is_technical_upgrade": version["is_technical"],
        "size": version["size"],
        "size_delta": version["size_delta"],
        "words": version["words"],
        "words_added": version["words_added"],
        "words_removed": version["words_removed"],
        "words_approximate": bool(version["words_approximate"]),
        **urls.version_links(version),
    }


def query_args(**changes) -> dict:
    """The current query arguments with some changed (None removes one)."""
    values = {key: value for key, value in request.args.items()}
    for key, value in changes.items():
        if value is None:
            values.pop(key, None)
        else:
            values[key] = value
    return values
