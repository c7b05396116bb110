"""Error answers: a readable page for people, `{"error", "status"}` for JSON clients.

A request that cannot name anything (unknown service, `..`, control characters, absurd
length) gets a 404 or 400, never a 500; an unexpected failure is logged and answered
with a 500 that reveals nothing internal.
"""

from __future__ import annotations

import logging
from datetime import datetime

from flask import Flask, current_app, jsonify, make_response, redirect, render_template, request, url_for
from werkzeug.exceptions import HTTPException, InternalServerError, RequestedRangeNotSatisfiable

from termshift.archive_repo.blob_reader import MissingObject
from termshift.errors import TermshiftError
from termshift.urls import iso
from termshift.web.declared_services import match_id
from termshift.web.state import viewer
from termshift.web.views import wants_json

log = logging.getLogger(__name__)


class DateInTheFuture(TermshiftError, RequestedRangeNotSatisfiable):
    """A version asked for at a date that has not come yet.

    416 with OTA's words, as its API (`/version/…/<date>`) answers; the page for people
    says which date and links the current version instead.
    """

    description = "Requested version is in the future"

    def __init__(self, moment: datetime, current_version_url: str):
        super().__init__()
        self.explanation = ("{date} is in the future: no version is known for it yet.", {"date": iso(moment)})
        self.link = (current_version_url, "See the current version")


def _json_wanted() -> bool:
    path = request.path
    return path.endswith(".json") or path.startswith("/api/") or wants_json()


def _answer(status: int, title: str, description: str, **page):
    """JSON `{"error", "status"}`, or the error page (`page` may add an `explanation`, whose
    text is translated, and a `link`: (url, text))."""
    if _json_wanted():
        return jsonify({"error": description, "status": status}), status
    return render_template("error.html", status=status, title=title, description=description, **page), status


# While a first build runs, what is not indexed yet is "not yet", not "not found".
RETRY_AFTER = 10  # seconds


def _not_indexed_yet():
    """503 with Retry-After, saying how far the index is (None when it is complete)."""
    viewer = current_app.extensions.get("termshift")
    if viewer is None or request.path.startswith("/-/static/"):
        return None
    progress = viewer.index_progress()
    if progress.complete:
        return None
    description = (f"This page's data is not indexed yet: {progress.versions_indexed} of "
                   f"{progress.versions_total} versions are. Try again in a few seconds.")
    if _json_wanted():
        response = jsonify({"error": description, "status": 503, "index": progress.to_json()})
    else:
        response = render_template(
            "error.html", status=503, title="Not indexed yet", description=description, retry_after=RETRY_AFTER,
            explanation=("This page's data is not indexed yet: {indexed} of {total} versions are. "
                         "This page reloads by itself in a few seconds.",
                         {"indexed": progress.versions_indexed, "total": progress.versions_total}))
    return response, 503, {"Retry-After": str(RETRY_AFTER), "Cache-Control": "no-store"}


def _canonical_location() -> str | None:
    """For a page naming a service with the wrong case (`/acme/...` for `Acme`), the same
    page under the service's real id (as OTA's API ignores the case of ids)."""
    requested = (request.view_args or {}).get("service_id")
    if not isinstance(requested, str) or request.endpoint is None or request.path.startswith("/api/"):
        return None
    state = viewer()
    known = set(state.catalog.service_ids()) | set(state.declared)
    name, suffix = (requested[:-5], ".json") if requested.endswith(".json") and requested not in known \
        else (requested, "")
    canonical = match_id(name, known)
    if canonical is None or canonical == name:
        return None
    location = url_for(request.endpoint, **{**request.view_args, "service_id": canonical + suffix})
    query = request.query_string.decode("latin-1")
    return f"{location}?{query}" if query else location


def _stale():
    """503 while new commits are being indexed (what the archive holds is never "not found");
    None when the index is up to date (a true 404)."""
    if not viewer().ensure_fresh():
        response = _answer(503, "Service Unavailable",
                           "The index is catching up with new commits in the archive; retry in a few seconds.")
        response = make_response(response)
        response.headers["Retry-After"] = "2"
        response.headers["Cache-Control"] = "no-store"
        return response
    return None


def register(app: Flask) -> None:
    @app.errorhandler(HTTPException)
    def _http_error(error: HTTPException):
        if error.code == 404:
            # A wrong-case service id, a first build under way, new commits being indexed:
            # each answers better than "not found".
            location = _canonical_location()
            if location is not None:
                return redirect(location, 302)
            pending = _not_indexed_yet() or _stale()
            if pending is not None:
                return pending
        page = {name: getattr(error, name) for name in ("explanation", "link") if hasattr(error, name)}
        return _answer(error.code or 500, error.name, error.description or error.name, **page)

    @app.errorhandler(MissingObject)
    def _missing_object(error: MissingObject):
        # The index names a blob the repository no longer has: its history was rewritten.
        # The next refresh rebuilds the index; until then, this record is gone.
        return _answer(404, "Not Found", "This record is no longer in the repository; the index is being updated.")

    @app.errorhandler(Exception)
    def _unexpected(error: Exception):
        log.exception("unexpected error on %s", request.path)
        generic = InternalServerError()
        return _answer(500, generic.name, "The viewer failed to answer; the error was logged.")
