"""The Open Terms Archive Collection API (ota-behaviour.md §3.7), at `/api/v1`.

Same routes, shapes and error answers as OTA's `ota serve`, so existing clients keep
working: `/services`, `/service/<id>`, `/version/<id>/<type>/<date>` (200, 404
`No version found for date <date>`, 416 `Requested version is in the future`). Also
`/metadata` (the dynamic fields) and `/openapi.json` describing every JSON route of
the viewer (`/docs` gives it too when JSON is asked for).
"""

from __future__ import annotations

from datetime import UTC, datetime

from flask import Blueprint, Response, jsonify, request

from termshift import __version__
from termshift.web import urls
from termshift.web.openapi import openapi_document
from termshift.web.state import viewer
from termshift.web.views import check_segment, parse_moment

blueprint = Blueprint("api", __name__, url_prefix="/api/v1")

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


@blueprint.route("/docs")
def docs():
    if "json" in request.headers.get("Accept", ""):
        return jsonify(openapi_document())
    return Response(
        "The OpenAPI 3.1 description of this API is at /api/v1/openapi.json.\n", mimetype="text/plain"
    )


@blueprint.route("/openapi.json")
def openapi():
    return jsonify(openapi_document())


@blueprint.route("/metadata")
def metadata():
    services = _service_ids()
    return jsonify({
        "totalServices": len(services),
        "totalTerms": sum(len(_terms_types(service_id)) for service_id in services),
        "engineVersion": __version__,
    })


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
    check_segment(service_id)
    state = viewer()
    declared = state.declared.get(service_id)
    if declared is None and (state.declared or not state.catalog.has_service(service_id)):
        return Response("Service not found", status=404, mimetype="text/plain")
    if declared is not None:
        terms = [{"type": terms_type, "sourceDocuments": documents}
                 for terms_type, documents in declared.terms.items()]
    else:
        # Without declarations, the archive tells only where each document was fetched.
        terms = [{"type": terms_type, "sourceDocuments": []} for terms_type in _terms_types(service_id)]
    return jsonify({"id": service_id, "name": state.service_name(service_id), "terms": terms})


@blueprint.route("/version/<service_id>/<terms_type>/<date>")
def version(service_id: str, terms_type: str, date: str):
    check_segment(service_id, terms_type, date)
    moment = parse_moment(date)
    if moment is None:
        return jsonify({"error": f"Invalid date {date}: expected ISO 8601, like 2024-03-18T18:30:09Z"}), 400
    if moment > datetime.now(UTC):
        return jsonify({"error": "Requested version is in the future"}), 416
    state = viewer()
    found = state.catalog.version_at(service_id, terms_type, moment)
    if found is None:
        return jsonify({"error": f"No version found for date {date}"}), 404
    # OTA's git storage hands contents back trimmed.
    content = state.version_text(found["blob"]).strip()
    return jsonify({"id": found["commit_id"], "fetchDate": urls.iso(found["date"]), "content": content})
