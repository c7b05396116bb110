"""The Open Terms Archive Collection API (ota-behaviour.md §3.7), at `/api/v1`.

Same routes, shapes and error answers as OTA's `ota serve`, so existing clients keep
working: `/services`, `/service/<id>` (id matched ignoring case; 404 `Service not found`
as text/html, as Express sends it), `/version/<id>/<type>/<date>` (200, 404
`No version found for date <date>`, 416 `Requested version is in the future`, 400 for a
malformed date where OTA fails with a 500), `/metadata` (the collection's metadata.yml
plus totalServices, totalTerms and engineVersion: the OTA release whose API this is),
`/docs` (OTA's: the OpenAPI description of these routes, relative to /api/v1, when JSON
is asked for, else a page) and `/openapi.json` describing every JSON route of the viewer.

Answers are as fresh as the archive: a request that follows a commit waits for the
index to take it in (`Viewer.ensure_fresh`), or reads git itself when that takes too long.
"""

from __future__ import annotations

from datetime import UTC, datetime

from flask import Blueprint, Response, jsonify, request

from termshift import urls
from termshift.archive_repo import RecordRepository
from termshift.web.declared_services import collection_metadata, match_id
from termshift.web.openapi import openapi_document, ota_api_document
from termshift.web.state import viewer
from termshift.web.views import check_segment, parse_moment

blueprint = Blueprint("api", __name__, url_prefix="/api/v1")

# The release of OTA's engine (npm @opentermsarchive/engine) whose collection API, record
# format and metadata schema this API implements. `/metadata` gives it as `engineVersion`:
# OTA clients read that field to know which routes and fields an instance has, and would
# take Termshift's own version (0.x) for an ancient OTA engine. Termshift's own version is
# in /api/v1/openapi.json (info.version). Bump it with what Termshift follows of OTA.
OTA_ENGINE_VERSION = "9.1.0"

WELCOME = (
    "Welcome to an instance of the Open Terms Archive API. Documentation is available at /docs. "
    "Learn more on Open Terms Archive on https://opentermsarchive.org."
)


def _service_ids() -> list[str]:
    """Declared services when a declarations folder is given (OTA's behaviour), else archived ones."""
    state = viewer()
    if state.declared:
        return sorted(state.declared)
    return state.catalog.service_ids()


def _terms_types(service_id: str) -> list[str]:
    state = viewer()
    declared = state.declared.get(service_id)
    if declared is not None:
        return list(declared.terms)
    return [document["terms_type"] for document in state.catalog.documents(service_id)]


@blueprint.route("/")
def welcome():
    return jsonify({"message": WELCOME})


DOCS_PAGE = """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>Collection API</title></head>
<body><h1>Open Terms Archive collection API</h1>
<p>Routes: <code>/services</code>, <code>/service/{serviceId}</code>,
<code>/version/{serviceId}/{termsType}/{date}</code>, <code>/metadata</code>, under /api/v1.</p>
<p>OpenAPI 3.1 descriptions: of this API, here with <code>Accept: application/json</code>;
of <a href="/api/v1/openapi.json">every JSON route of the viewer</a>.</p></body></html>
"""


@blueprint.route("/docs")
@blueprint.route("/docs/")
def docs():
    """OTA's `/docs`: the OpenAPI description when JSON is asked for, else a page."""
    if "json" in request.headers.get("Accept", ""):
        return jsonify(ota_api_document())
    return Response(DOCS_PAGE, mimetype="text/html")


@blueprint.route("/openapi.json")
def openapi():
    return jsonify(openapi_document())


@blueprint.route("/metadata")
def metadata():
    """The collection's metadata.yml as it is written, plus the three computed fields (as OTA)."""
    services = _service_ids()
    body = dict(collection_metadata().data or {})
    body.update({
        "totalServices": len(services),
        "totalTerms": sum(len(_terms_types(service_id)) for service_id in services),
        "engineVersion": OTA_ENGINE_VERSION,
    })
    return jsonify(body)


@blueprint.route("/services")
def services():
    state = viewer()
    return jsonify([
        {"id": service_id, "name": state.service_name(service_id),
         "terms": [{"type": terms_type} for terms_type in _terms_types(service_id)]}
        for service_id in _service_ids()
    ])


@blueprint.route("/service/<service_id>")
def service(service_id: str):
    """A declared service, looked up ignoring case (`service%20b!` finds `Service B!`), as OTA."""
    check_segment(service_id)
    state = viewer()
    found = match_id(service_id, state.declared or state.catalog.service_ids())
    if found is None:
        if not state.declared and not state.ensure_fresh():
            return _catching_up()
        # OTA's words and content type (Express's `send` of a string: text/html).
        return Response("Service not found", status=404, content_type="text/html; charset=utf-8")
    declared = state.declared.get(found)
    if declared is not None:
        terms = [{"type": terms_type, "sourceDocuments": documents}
                 for terms_type, documents in declared.terms.items()]
    else:
        # Without declarations, the archive tells only where each document was fetched.
        terms = [{"type": terms_type, "sourceDocuments": []} for terms_type in _terms_types(found)]
    return jsonify({"id": found, "name": state.service_name(found), "terms": terms})


@blueprint.route("/version/<service_id>/<terms_type>/<date>")
def version(service_id: str, terms_type: str, date: str):
    """The version in force at `date`: from the index, brought up to date first when the
    repository moved; from git itself when that takes longer than the request may wait."""
    check_segment(service_id, terms_type, date)
    moment = parse_moment(date)
    if moment is None:
        return jsonify({"error": f"Invalid date {date}: expected ISO 8601, like 2024-03-18T18:30:09Z"}), 400
    if moment > datetime.now(UTC):
        return jsonify({"error": "Requested version is in the future"}), 416
    state = viewer()
    if state.ensure_fresh():
        found = state.catalog.version_at(service_id, terms_type, moment)
        answer = found and {"id": found["commit_id"], "date": found["date"],
                            "content": lambda: state.version_text(found["blob"])}
    else:
        answer = _version_from_git(service_id, terms_type, moment)
    if not answer:
        return jsonify({"error": f"No version found for date {date}"}), 404
    # OTA's git storage hands contents back trimmed.
    return jsonify({"id": answer["id"], "fetchDate": urls.iso(answer["date"]),
                    "content": answer["content"]().strip()})


def _version_from_git(service_id: str, terms_type: str, moment: datetime) -> dict | None:
    """The version at `moment` read from the versions repository (the index is catching up)."""
    repository = RecordRepository(viewer().sources.versions, "versions", read_only=True)
    try:
        record = repository.find_by_date(service_id, terms_type, moment)
        if record is None:
            return None
        content = record.content if isinstance(record.content, str) else record.content.decode("utf-8", "replace")
        return {"id": record.id, "date": record.fetch_date, "content": lambda: content}
    finally:
        repository.close()


def _catching_up() -> Response:
    response = jsonify({"error": "The index is catching up with new commits in the archive; retry shortly."})
    response.status_code = 503
    response.headers["Retry-After"] = "2"
    return response
