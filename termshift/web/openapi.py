"""OpenAPI 3.1 description of every JSON route: the page twins and the OTA API.

Schemas are JSON Schema 2020-12 (OpenAPI 3.1's dialect); the tests validate real answers
against them, so this document cannot drift from what the routes return.
"""

from __future__ import annotations

from functools import cache

from termshift import __version__
from termshift.schema import load_schema

DATE = {"type": "string", "format": "date-time", "examples": ["2024-03-18T18:30:09Z"]}
NULLABLE_DATE = {"type": ["string", "null"], "format": "date-time"}
URL = {"type": "string", "examples": ["/GitHub/Privacy%20Policy"]}
NULLABLE_URL = {"type": ["string", "null"]}
NULLABLE_TEXT = {"type": ["string", "null"]}
COUNT = {"type": "integer", "minimum": 0}


def _object(properties: dict, required: list[str] | None = None) -> dict:
    return {"type": "object", "properties": properties,
            "required": list(properties) if required is None else required}


def _ref(name: str) -> dict:
    return {"$ref": f"#/components/schemas/{name}"}


def _nullable(name: str) -> dict:
    return {"oneOf": [_ref(name), {"type": "null"}]}


def _array(item: dict) -> dict:
    return {"type": "array", "items": item}


SCHEMAS = {
    "Feeds": _object({"atom": URL, "rss": URL}),
    "Pagination": _object({"page": COUNT, "pages": COUNT, "per_page": COUNT, "total": COUNT}),
    "ServiceLink": _object({"id": {"type": "string"}, "name": {"type": "string"}, "url": URL}),
    "VersionSummary": _object({
        "id": {"type": "string", "description": "Commit id in the versions repository"},
        "service_id": {"type": "string"},
        "service_name": {"type": "string"},
        "terms_type": {"type": "string"},
        "date": DATE,
        "kind": {"enum": ["first", "change", "technical", "other"]},
        "is_first_record": {"type": "boolean"},
        "is_technical_upgrade": {"type": "boolean"},
        "size": COUNT,
        "size_delta": {"type": "integer"},
        "words": COUNT,
        "words_added": COUNT,
        "words_removed": COUNT,
        "words_approximate": {"type": "boolean", "description": "words added and removed are estimates: "
                              "the diff was too long to align word by word within its time budget"},
        "url": URL,
        "diff_url": URL,
        "markdown_url": URL,
        "json_url": URL,
    }),
    "LastChange": _object({
        "date": DATE, "kind": {"type": "string"}, "is_first_record": {"type": "boolean"},
        "words_added": COUNT, "words_removed": COUNT,
        "url": URL, "diff_url": URL,
    }),
    "Status": _object({
        "state": {"enum": ["ok", "failing", "blocked", "unknown"]},
        "last_success": NULLABLE_DATE,
        "failing_since": NULLABLE_DATE,
        "error_kind": {"type": ["string", "null"]},
        "error": {"type": ["string", "null"]},
        "consecutive_failures": COUNT,
    }),
    "DocumentSummary": _object({
        "terms_type": {"type": "string"},
        "url": URL,
        "json_url": URL,
        "versions": COUNT,
        "changes": COUNT,
        "first_date": DATE,
        "current_version_date": DATE,
        "current_version_id": {"type": "string"},
        "last_change": _nullable("LastChange"),
        "removed": {"type": "boolean"},
        "feeds": _ref("Feeds"),
        "status": _ref("Status"),
    }, required=["terms_type", "url", "json_url", "versions", "changes", "first_date", "current_version_date",
                 "current_version_id", "last_change", "removed", "feeds"]),
    "Home": _object({
        "totals": _object({"services": COUNT, "documents": COUNT, "versions": COUNT}),
        "collection": _nullable("Collection"),
        "services": _array(_object({"id": {"type": "string"}, "name": {"type": "string"}, "url": URL,
                                    "documents": _array(_ref("DocumentSummary"))})),
        "feeds": _nullable("Feeds"),
        "json_url": URL,
    }),
    "Collection": _object({
        "id": NULLABLE_TEXT, "name": NULLABLE_TEXT, "tagline": NULLABLE_TEXT,
        "description": {"type": ["string", "null"], "description": "Markdown, as written in metadata.yml"},
        "description_html": {"type": ["string", "null"], "description": "The description rendered and sanitised"},
        "languages": _array({"type": "string"}),
        "jurisdictions": _array({"type": "string"}),
        "links": _array(_object({"name": {"enum": ["dataset", "declarations", "versions", "snapshots",
                                                   "donations"]},
                                 "url": {"type": "string"}})),
        "governance": _array(_object({"name": {"type": "string"}, "url": NULLABLE_URL,
                                      "roles": _array({"type": "string"})})),
        "tracking_periods": _array(_object({"start_date": NULLABLE_TEXT, "end_date": NULLABLE_TEXT,
                                            "schedule": NULLABLE_TEXT, "server_location": NULLABLE_TEXT})),
        "metadata_url": URL,
    }),
    "Changes": _object({
        "filters": _object({"service": {"type": "string"}, "type": {"type": "string"},
                            "from": {"type": "string"}, "to": {"type": "string"},
                            "technical": {"type": "boolean"}}),
        "changes": _array(_ref("VersionSummary")),
        "pagination": _ref("Pagination"),
        "previous_page_url": NULLABLE_URL,
        "next_page_url": NULLABLE_URL,
        "json_url": URL,
        "service_options": _array({"type": "array", "items": {"type": "string"}}),
        "type_options": _array({"type": "string"}),
        "feeds": _nullable("Feeds"),
        "activity": {**_nullable("Activity"), "description": "Changes per service and month (these filters; first page only)"},
    }),
    "Search": _object({
        "query": {"type": "string"},
        "documents": _array(_object({"service_id": {"type": "string"}, "service_name": {"type": "string"},
                                     "terms_type": {"type": "string"}, "url": URL})),
        "full_text": _array(_object({
            "service_id": {"type": "string"}, "service_name": {"type": "string"},
            "terms_type": {"type": "string"}, "url": URL,
            "excerpt": _array(_object({"text": {"type": "string"}, "match": {"type": "boolean"}})),
        })),
        "json_url": URL,
    }),
    "Service": _object({
        "id": {"type": "string"},
        "name": {"type": "string"},
        "documents": _array(_ref("DocumentSummary")),
        "declared_without_versions": _array({"type": "string"}),
        "feeds": _nullable("Feeds"),
        "url": URL,
        "json_url": URL,
        "changes_url": URL,
    }),
    "Document": _object({
        "service": _ref("ServiceLink"),
        "terms_type": {"type": "string"},
        "document": _ref("DocumentSummary"),
        "technical": {"type": "boolean", "description": "Technical upgrades are listed"},
        "versions": _array(_ref("VersionSummary")),
        "pagination": _ref("Pagination"),
        "previous_page_url": NULLABLE_URL,
        "next_page_url": NULLABLE_URL,
        "toggle_technical_url": URL,
        "compare_url": URL,
        "feeds": _nullable("Feeds"),
        "url": URL,
        "json_url": URL,
        "timeline": {**_nullable("Timeline"), "description": "Every version on a time axis (all pages)"},
    }),
    "SnapshotLink": _object({
        "id": {"type": "string"},
        "url": {**NULLABLE_URL, "description": "This viewer's page of the snapshot, if it has it"},
        "reference": {**NULLABLE_URL, "description": "The reference written in the commit message"},
        "location": NULLABLE_URL,
    }),
    "Version": _object({
        "service": _ref("ServiceLink"),
        "terms_type": {"type": "string"},
        "document_url": URL,
        "version": {"allOf": [_ref("VersionSummary"), _object(
            {"engine_version": {"type": ["string", "null"]}, "path": {"type": "string"}})]},
        "requested_date": {**NULLABLE_DATE, "description": "The date asked for, when the URL named one"},
        "snapshots": _array(_ref("SnapshotLink")),
        "previous": _nullable("VersionSummary"),
        "next": _nullable("VersionSummary"),
        "content": {"type": "string", "description": "The Markdown of the version"},
    }),
    "Hunk": _object({
        "kind": {"enum": ["equal", "insert", "delete", "change"]},
        "section": {"type": ["string", "null"]},
        "whitespace_only": {"type": "boolean", "description": "Only spaces or line breaks differ"},
        "old_start": COUNT,
        "new_start": COUNT,
        "old_lines": _array({"type": "string"}),
        "new_lines": _array({"type": "string"}),
        "segments": _array({"type": "array", "prefixItems": [{"enum": [-1, 0, 1]}, {"type": "string"}]}),
        "approximate": {"type": "boolean", "description": "Too large to align word by word: shown as whole "
                        "lines, its words counted as a bag"},
    }, required=["kind", "section", "whitespace_only", "old_start", "new_start", "old_lines", "new_lines"]),
    "Diff": _object({
        "service": _ref("ServiceLink"),
        "terms_type": {"type": "string"},
        "document_url": URL,
        "old": _nullable("VersionSummary"),
        "new": _ref("VersionSummary"),
        "summary": _object({
            "words_added": COUNT, "words_removed": COUNT, "changes": COUNT,
            "words_approximate": {"type": "boolean", "description": "Word counts are estimates (see Hunk)"},
            "whitespace_only": {"type": "boolean", "description": "The versions differ only in whitespace"},
            "sections": _array(_object({"title": {"type": ["string", "null"]},
                                        "change": {"type": ["integer", "null"]}})),
        }),
        "previous_change_url": NULLABLE_URL,
        "next_change_url": NULLABLE_URL,
        "json_url": URL,
        "hunks": _array(_ref("Hunk")),
        "citation": _ref("Citation"),
        "rendered": {**_array(_object({
            "kind": {"enum": ["html", "skip"]}, "html": {"type": "string"}, "changes": _array(COUNT),
            "unchanged_lines": COUNT}, required=["kind"])),
            "description": "With ?view=rendered: the change as sanitised HTML with <ins>/<del>"},
    }, required=["service", "terms_type", "document_url", "old", "new", "summary", "previous_change_url",
                 "next_change_url", "json_url", "hunks", "citation"]),
    "Snapshot": _object({
        "id": {"type": "string"},
        "service": _ref("ServiceLink"),
        "terms_type": {"type": "string"},
        "document_url": URL,
        "document_id": {"type": ["string", "null"]},
        "date": DATE,
        "kind": {"type": "string"},
        "mime_type": {"type": "string"},
        "size": COUNT,
        "location": NULLABLE_URL,
        "fetcher": {"type": ["string", "null"]},
        "raw_url": URL,
        "json_url": URL,
        "versions": _array(_ref("VersionSummary")),
        "embeddable": {"type": "boolean"},
    }),
    "Timeline": _object({
        "start": DATE, "end": DATE,
        "largest_change": {**COUNT, "description": "Most words added or removed in one bar"},
        "bars": _array(_object({
            "start": DATE, "end": DATE, "versions": {**COUNT, "description": "Versions drawn as this bar"},
            "words_added": COUNT, "words_removed": COUNT, "first_record": {"type": "boolean"},
            "technical": {"type": "boolean"}, "url": {**URL, "description": "Diff across the bar's versions"},
        })),
    }),
    "Activity": _object({
        "months": _array({"type": "string", "examples": ["2024-03"]}),
        "truncated": {"type": "boolean", "description": "Earlier months were left out"},
        "totals": {"type": "object", "additionalProperties": COUNT, "description": "Changes per month"},
        "services": _array(_object({
            "id": {"type": "string"}, "name": {"type": "string"}, "changes": COUNT,
            "months": {"type": "object", "additionalProperties": _object(
                {"changes": COUNT, "words_added": COUNT, "words_removed": COUNT, "url": URL})},
        })),
    }),
    "CitedVersion": _object({
        "date": DATE, "version_id": {"type": "string"},
        "snapshot_ids": _array({"type": "string"}), "url": URL,
    }),
    "Citation": _object({
        "service": _object({"id": {"type": "string"}, "name": {"type": "string"}}),
        "terms_type": {"type": "string"},
        "old": _nullable("CitedVersion"),
        "new": _ref("CitedVersion"),
        "permalink": {"type": "string", "description": "Absolute URL naming both versions by commit id"},
        "consulted": DATE,
    }),
    "Error": _object({"error": {"type": "string"}, "status": COUNT}, required=["error"]),
    "OtaServices": _array(_object({
        "id": {"type": "string"}, "name": {"type": "string"},
        "terms": _array(_object({"type": {"type": "string"}})),
    })),
    "OtaService": _object({
        "id": {"type": "string"},
        "name": {"type": "string"},
        "terms": _array(_object({
            "type": {"type": "string"},
            "sourceDocuments": _array(_object({
                "location": {"type": "string"},
                "contentSelectors": {},
                "insignificantContentSelectors": {},
                "executeClientScripts": {"type": "boolean"},
                "filters": _array({"type": "string"}),
            }, required=["location"])),
        })),
    }),
    "OtaVersion": _object({"id": {"type": "string"}, "fetchDate": DATE, "content": {"type": "string"}}),
    # The collection's metadata.yml as written (OTA's Metadata fields) plus the computed figures.
    "OtaMetadata": {
        "type": "object",
        "description": "The collection's metadata.yml (fields of OTA's Metadata schema; absent without "
                       "the file) and totalServices, totalTerms and engineVersion, always present.",
        "properties": {**load_schema("metadata")["properties"],
                       "totalServices": COUNT, "totalTerms": COUNT, "engineVersion": {"type": "string"}},
        "required": ["totalServices", "totalTerms", "engineVersion"],
    },
}


def _parameter(name: str, description: str, location: str = "path", schema: dict | None = None) -> dict:
    return {"name": name, "in": location, "required": location == "path", "description": description,
            "schema": schema or {"type": "string"}}


SERVICE = _parameter("serviceId", "Service id, e.g. GitHub (percent-encoded)")
TERMS_TYPE = _parameter("termsType", "Terms type, e.g. Privacy Policy (percent-encoded)")
REF = _parameter("ref", "Commit id (7 to 64 hex digits) or a date: the version in force then")
PAGE = _parameter("page", "Page number, from 1", "query", {"type": "integer", "minimum": 1})


def _operation(summary: str, schema: str, parameters: list[dict] | None = None, errors=(404,),
               content_type: str = "application/json") -> dict:
    responses = {"200": {"description": "OK", "content": {content_type: {"schema": _ref(schema)}}}}
    # A 404 may only be a 503 (with Retry-After) while new commits are being indexed.
    for status in (*errors, 503) if 404 in errors else errors:
        responses[str(status)] = {"description": {400: "Malformed request", 404: "Not found",
                                                  416: "Requested version is in the future",
                                                  503: "The index is catching up with new commits; retry"
                                                       " after Retry-After seconds"}[status],
                                  "content": {"application/json": {"schema": _ref("Error")}}}
    return {"get": {"summary": summary, "parameters": parameters or [], "responses": responses}}


PATHS = {
    "/index.json": _operation("The collection: services, their documents and last changes", "Home", errors=()),
    "/-/changes.json": _operation("Latest changes across the collection, newest first", "Changes", [
        _parameter("service", "Only this service id", "query"),
        _parameter("type", "Only this terms type", "query"),
        _parameter("from", "From this date (inclusive), e.g. 2024-01-01", "query"),
        _parameter("to", "Until this date (a bare date includes that day)", "query"),
        _parameter("technical", "1 to include technical upgrades", "query"),
        PAGE,
    ], errors=(400,)),
    "/-/search.json": _operation("Documents by name, and full-text search of the versions in force", "Search",
                                 [_parameter("q", "Words to look for", "query")], errors=()),
    "/{serviceId}.json": _operation("A service and the tracking status of its documents", "Service", [SERVICE]),
    "/{serviceId}/{termsType}.json": _operation("A document's timeline, newest first", "Document", [
        SERVICE, TERMS_TYPE, PAGE, _parameter("technical", "1 to list technical upgrades", "query")]),
    "/{serviceId}/{termsType}/{ref}.json": _operation("A version and its Markdown", "Version",
                                                      [SERVICE, TERMS_TYPE, REF], errors=(400, 404)),
    "/{serviceId}/{termsType}/{ref}/diff.json": _operation(
        "Diff of a version with the one before (or with ?from=<ref>)", "Diff",
        [SERVICE, TERMS_TYPE, REF, _parameter("from", "The version to compare with", "query"),
         _parameter("view", "rendered: also the change as formatted HTML (`rendered`)", "query",
                    {"enum": ["inline", "split", "rendered"]})], errors=(400, 404)),
    "/-/snapshot/{snapshotId}.json": _operation(
        "An archived snapshot and the versions extracted from it", "Snapshot",
        [_parameter("snapshotId", "Commit id in the snapshots repository (5 to 64 hex digits)")]),
    "/api/v1/services": _operation("Services (OTA Collection API)", "OtaServices", errors=()),
    "/api/v1/service/{serviceId}": _operation(
        "One service and its declared terms (OTA); the id is matched ignoring case", "OtaService", [SERVICE]),
    "/api/v1/version/{serviceId}/{termsType}/{date}": _operation(
        "The version in force at a date (OTA)", "OtaVersion",
        [SERVICE, TERMS_TYPE, _parameter("date", "ISO 8601 date, e.g. 2024-03-18T18:30:09Z")],
        errors=(400, 404, 416)),
    "/api/v1/metadata": _operation("The collection's metadata.yml and figures (OTA)", "OtaMetadata", errors=()),
}
# OTA answers an unknown service with the text "Service not found" (as text/html, like Express).
PATHS["/api/v1/service/{serviceId}"]["get"]["responses"]["404"] = {
    "description": "Service not found", "content": {"text/html": {"schema": {"const": "Service not found"}}}}
# The version route never waits for the index longer than a moment: it reads git instead.
del PATHS["/api/v1/version/{serviceId}/{termsType}/{date}"]["get"]["responses"]["503"]


@cache
def openapi_document() -> dict:
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "Termshift viewer",
            "version": __version__,
            "description": (
                "Every page of the viewer has a JSON twin (append .json or send Accept: application/json). "
                "The /api/v1 routes are compatible with Open Terms Archive's Collection API. "
                "Dates are ISO 8601 in UTC."
            ),
        },
        "paths": PATHS,
        "components": {"schemas": SCHEMAS},
    }


API_BASE = "/api/v1"


@cache
def ota_api_document() -> dict:
    """The OTA collection API alone, as OTA's `/docs` describes it: paths relative to a
    server at /api/v1 (`/services`, `/service/{serviceId}`, …), so OTA's clients find theirs."""
    document = openapi_document()
    return {
        "openapi": document["openapi"],
        "info": {**document["info"], "title": "Open Terms Archive collection API (Termshift)"},
        "servers": [{"url": API_BASE}],
        "paths": {path.removeprefix(API_BASE): item for path, item in document["paths"].items()
                  if path.startswith(API_BASE + "/")},
        "components": document["components"],
    }
