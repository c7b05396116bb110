"""Archived snapshots: a page about one, and its raw content under a hostile-content policy.

The raw page is third-party HTML. It is served only by `/-/snapshot/<id>/raw`, whose
Content-Security-Policy forbids scripts and every network request and gives the page an
opaque origin (`sandbox`), and it is embedded in the snapshot page by an
`<iframe sandbox="">`. Its source is shown escaped, as text.

The raw page is shown in the browser only when the browser says it loads it into a frame
(`Sec-Fetch-Dest: iframe`): opened directly (a link, the address bar), it is downloaded
as an attachment, so nothing in it — a `<meta http-equiv="refresh">`, a form — ever acts as
a top-level page of the viewer's origin.
"""

from __future__ import annotations

from flask import Blueprint, Response, abort, request

from termshift import urls
from termshift.web.security import mark_as_snapshot
from termshift.web.state import viewer
from termshift.web.views import check_segment, respond, version_summary, wants_json

blueprint = Blueprint("snapshots", __name__)

SOURCE_LIMIT = 2_000_000  # characters of source shown on the page; the raw route has all
TEXT_TYPES = ("text/", "application/xhtml+xml", "application/xml", "application/json")
FRAME_DESTINATIONS = ("iframe", "frame")  # Sec-Fetch-Dest values of a page loaded into a frame


def _find(snapshot_id: str) -> dict:
    check_segment(snapshot_id)
    if viewer().snapshots is None:
        abort(404, description="This viewer was started without a snapshots repository.")
    snapshot = viewer().catalog.snapshot(snapshot_id)
    if snapshot is None:
        abort(404, description=f"No snapshot {snapshot_id} in this archive.")
    return snapshot


def _is_text(mime_type: str) -> bool:
    return mime_type.startswith(TEXT_TYPES)


def _decode(data: bytes) -> str:
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        return data.decode("latin-1")  # shown as text only; never rendered as HTML here


@blueprint.route("/-/snapshot/<snapshot_id>")
def snapshot(snapshot_id: str):
    as_json = snapshot_id.endswith(".json")
    if as_json:
        snapshot_id = snapshot_id[:-5]
    found = _find(snapshot_id)
    state = viewer()
    data = {
        "id": found["commit_id"],
        "service": {"id": found["service_id"], "name": state.service_name(found["service_id"]),
                    "url": urls.service_url(found["service_id"])},
        "terms_type": found["terms_type"],
        "document_url": urls.document_url(found["service_id"], found["terms_type"]),
        "document_id": found["document_id"],
        "date": found["date"],
        "kind": found["kind"],
        "mime_type": found["mime_type"],
        "size": found["size"],
        "location": found["location"],
        "fetcher": found["fetcher"],
        "raw_url": urls.snapshot_raw_url(found["commit_id"]),
        "json_url": urls.snapshot_url(found["commit_id"], json=True),
        "versions": [version_summary(v) for v in state.catalog.versions_from_snapshot(found["commit_id"])],
        "embeddable": found["mime_type"] in ("text/html", "application/xhtml+xml", "text/plain"),
    }
    if wants_json(as_json):
        return respond("snapshot.html", data, as_json=True)
    source = None
    if _is_text(found["mime_type"]):
        text = _decode(state.snapshot_bytes(found["blob"]))
        source = {"text": text[:SOURCE_LIMIT], "truncated": len(text) > SOURCE_LIMIT}
    return respond("snapshot.html", data | {"source": source}, as_json=False)


@blueprint.route("/-/snapshot/<snapshot_id>/raw")
def raw(snapshot_id: str) -> Response:
    """The archived bytes, unchanged, under the snapshot policy (see security.py); inline only
    into a frame, else as an attachment."""
    found = _find(snapshot_id)
    data = viewer().snapshot_bytes(found["blob"])
    mime_type = found["mime_type"]
    if mime_type in ("text/html", "application/xhtml+xml"):
        content_type = "text/html"  # the page's own <meta charset> decides its encoding
    elif _is_text(mime_type):
        content_type = "text/plain; charset=utf-8"
    else:
        content_type = mime_type
    response = Response(data, content_type=content_type)
    response.vary.add("Sec-Fetch-Dest")
    as_frame = request.headers.get("Sec-Fetch-Dest", "").lower() in FRAME_DESTINATIONS
    if not _is_text(mime_type) or request.args.get("download") or not as_frame:
        extension = found["extension"]
        response.headers["Content-Disposition"] = f'attachment; filename="snapshot-{found["commit_id"][:12]}.{extension}"'
    return mark_as_snapshot(response)
