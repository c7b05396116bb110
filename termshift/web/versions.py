"""A version's page, its raw Markdown, and the diff between two versions.

Permalinks: `/<service>/<terms type>/<ref>` where `ref` is a commit id (full or
abbreviated) or a date (`2024-03-18T18:30:09Z`, or `2024-03-18`) meaning the version in
force at that date. `/diff` after it compares with the version before (or `?from=<ref>`).
"""

from __future__ import annotations

import dataclasses
import json
from datetime import UTC, datetime

from flask import Blueprint, Response, abort, current_app, redirect, request

from termshift import urls
from termshift.alerts import options
from termshift.web.catalog import HEX_REF
from termshift.web.citation import build_citation
from termshift.web.diffview import build_blocks, draws_whitespace_marks, section_links
from termshift.web.error_pages import DateInTheFuture
from termshift.web.rendered_diff import RENDERED_FORMAT, Stretch, render_comparison
from termshift.web.state import LRU, viewer
from termshift.web.views import check_segment, parse_moment, query_args, respond, version_summary, wants_json

blueprint = Blueprint("versions", __name__)

MAX_CONTEXT = 50
VIEWS = ("inline", "split", "rendered")
_rendered = LRU(32)  # formatted diffs, by (old blob, new blob, context)


def find_version(service_id: str, terms_type: str, ref: str) -> tuple[dict, object]:
    """(version, requested date or None); 404 when nothing matches, 400 for a malformed ref."""
    check_segment(service_id, terms_type, ref)
    catalog = viewer().catalog
    document = catalog.document(service_id, terms_type)
    if document is None:
        abort(404, description=f"No document {terms_type!r} of service {service_id!r} in this archive.")
    if HEX_REF.match(ref):
        version = catalog.version_by_id(service_id, terms_type, ref)
        if version is None:
            abort(404, description=f"No version {ref} of this document.")
        return version, None
    moment = parse_moment(ref)
    if moment is None:
        abort(400, description=f"{ref!r} is neither a version id nor a date like 2024-03-18T18:30:09Z.")
    version = catalog.version_at(service_id, terms_type, moment)
    if version is None:
        abort(404, description=f"No version of this document was in force on {urls.iso(moment)}.")
    # Nothing says what will be in force then (OTA's API answers 416). A version dated after
    # the clock (a skewed clock) still answers to its own date.
    if moment > datetime.now(UTC) and moment > document["latest_date"]:
        raise DateInTheFuture(moment, urls.version_url(version))
    return version, moment


def _snapshot_links(version: dict) -> list[dict]:
    """The snapshots a version names: a local page if the snapshots repository has it."""
    state = viewer()
    links = []
    for reference in version["snapshots"]:
        local = state.catalog.snapshot(reference["id"]) if state.snapshots is not None else None
        links.append({
            "id": reference["id"],
            "url": urls.snapshot_url(local["commit_id"]) if local else None,
            "reference": reference["url"],
            "location": local["location"] if local else None,
        })
    return links


def _service(service_id: str) -> dict:
    return {"id": service_id, "name": viewer().service_name(service_id), "url": urls.service_url(service_id)}


def version_page(service_id: str, terms_type: str, ref: str):
    suffix = ""
    for candidate in (".json", ".md"):
        if ref.endswith(candidate):
            ref, suffix = ref[: -len(candidate)], candidate
    if "diff" in request.args and not suffix:  # links written as `<version>?diff`
        version, _ = find_version(service_id, terms_type, ref)
        return redirect(urls.diff_url(version), 302)
    version, moment = find_version(service_id, terms_type, ref)
    state = viewer()
    if suffix == ".md":
        return _markdown_download(version)
    previous, following = state.catalog.neighbours(version, technical=True)
    data = {
        "service": _service(service_id),
        "terms_type": terms_type,
        "document_url": urls.document_url(service_id, terms_type),
        "version": version_summary(version) | {"engine_version": version["engine_version"],
                                               "path": version["path"]},
        "requested_date": moment,
        "snapshots": _snapshot_links(version),
        "previous": version_summary(previous) if previous else None,
        "next": version_summary(following) if following else None,
    }
    if wants_json(suffix == ".json"):
        data["content"] = state.version_text(version["blob"])
        return respond("version.html", data, as_json=True)
    data["html"] = state.version_html(version["blob"])
    data["canonical_url"] = urls.version_url(version)
    return respond("version.html", data, as_json=False)


def _markdown_download(version: dict) -> Response:
    text = viewer().version_text(version["blob"])
    name = f"{version['service_id']} - {version['terms_type']} - {urls.iso(version['date'])}.md"
    response = Response(text, mimetype="text/markdown")
    response.headers["Content-Disposition"] = "attachment; filename*=UTF-8''" + urls.segment(
        name.replace(":", "-"))
    return response


def _configured_base_url() -> str:
    """`web.base_url` of the app's settings (empty without settings)."""
    settings = current_app.config.get("SETTINGS")
    return options.base_url(settings.web) if settings is not None else ""


def _context() -> int | None:
    value = request.args.get("context", "")
    if value == "all":
        return None
    if not value:
        return current_app.config["DIFF_CONTEXT"]
    if not value.isdigit() or int(value) > MAX_CONTEXT:
        abort(400, description=f"context: expected a number of lines up to {MAX_CONTEXT}, or 'all'")
    return int(value)


def diff_page(service_id: str, terms_type: str, ref: str, as_json: bool):
    new, _ = find_version(service_id, terms_type, ref)
    state = viewer()
    if request.args.get("from"):
        old, _ = find_version(service_id, terms_type, request.args["from"])
    else:
        old = state.catalog.version_by_rowid(new["previous_id"])
    comparison = state.comparison(old["blob"] if old else None, new["blob"])
    view = request.args.get("view", "inline")
    if view not in VIEWS:
        abort(400, description="view: expected 'inline', 'split' or 'rendered'")
    # Navigation between changes of the document (technical upgrades skipped).
    earlier, later = state.catalog.neighbours(new, technical=False)
    summary = {
        "words_added": comparison.words_added,
        "words_removed": comparison.words_removed,
        "words_approximate": comparison.approximate,
        "changes": len(comparison.changes),
        "whitespace_only": comparison.whitespace_only,
        "sections": section_links(comparison),
    }
    data = {
        "service": _service(service_id),
        "terms_type": terms_type,
        "document_url": urls.document_url(service_id, terms_type),
        "old": version_summary(old) if old else None,
        "new": version_summary(new),
        "summary": summary,
        "previous_change_url": urls.diff_url(earlier) if earlier else None,
        "next_change_url": urls.diff_url(later) if later else None,
        "json_url": urls.diff_url(new, old if request.args.get("from") else None, json=True,
                                  view="rendered" if view == "rendered" else None),
        "citation": build_citation(_service(service_id), terms_type, old, new,
                                   _configured_base_url() or request.url_root),
    }
    if as_json or wants_json():
        data["hunks"] = [hunk.to_json() for hunk in comparison.hunks]
        if view == "rendered":
            data["rendered"] = [stretch.to_json() for stretch in _rendered_stretches(old, new, comparison, None)]
        return respond("diff.html", data, as_json=True)
    context = _context()
    summary["whitespace_changes"] = draws_whitespace_marks(comparison)
    if view == "rendered":
        stretches = _rendered_stretches(old, new, comparison, context)
        anchors = {number: stretch.anchor for stretch in stretches for number in stretch.changes}
        data |= {"stretches": stretches, "blocks": [],
                 "anchors": {number: anchor for number, anchor in anchors.items() if anchor}}
    else:
        data["blocks"] = build_blocks(comparison, side_by_side=view == "split", context=context)
    data |= {
        "view": view,
        "context": context,
        "inline_url": "?" + _query(view=None),
        "split_url": "?" + _query(view="split"),
        "rendered_url": "?" + _query(view="rendered"),
        "all_context_url": "?" + _query(context="all"),
        "less_context_url": "?" + _query(context=None),
        "canonical_url": urls.diff_url(new, old if request.args.get("from") else None),
    }
    return respond("diff.html", data, as_json=False)


def _rendered_stretches(old: dict | None, new: dict, comparison, context: int | None) -> list[Stretch]:
    """The formatted diff; kept in memory and in the index's render cache (a reflowed 200 KB
    document takes seconds to render)."""
    key = f"diff:{old['blob'] if old else ''}:{new['blob']}:{'all' if context is None else context}"
    catalog = viewer().catalog

    def compute() -> list[Stretch]:
        cached = catalog.cached("render_cache", (key,), RENDERED_FORMAT)
        if cached is not None:
            return [Stretch(**item) for item in json.loads(cached)]
        stretches = render_comparison(comparison, context)
        catalog.store("render_cache", (key,), RENDERED_FORMAT,
                      json.dumps([dataclasses.asdict(stretch) for stretch in stretches]).encode("utf-8"))
        return stretches

    return _rendered.get_or_compute(key, compute)


def _query(**changes) -> str:
    from urllib.parse import urlencode

    return urlencode(query_args(**changes))


def compare(service_id: str, terms_type: str):
    """The document page's "compare" form: redirect to the diff of the two chosen versions."""
    first, second = request.args.get("from", ""), request.args.get("to", "")
    if not first or not second:
        abort(400, description="from and to: choose two versions to compare")
    old, _ = find_version(service_id, terms_type, first)
    new, _ = find_version(service_id, terms_type, second)
    if (old["date"], old["id"]) > (new["date"], new["id"]):
        old, new = new, old
    return redirect(urls.diff_url(new, old), 303)


# Versions of services whose id is reserved live under /-/service/<id>/… (see urls.RESERVED).
for prefix, name in (("", ""), ("/-/service", "reserved_")):
    blueprint.add_url_rule(f"{prefix}/<service_id>/<terms_type>/compare", f"{name}compare", compare)
    blueprint.add_url_rule(f"{prefix}/<service_id>/<terms_type>/<ref>", f"{name}version", version_page)
    blueprint.add_url_rule(f"{prefix}/<service_id>/<terms_type>/<ref>/diff", f"{name}diff",
                           diff_page, defaults={"as_json": False})
    blueprint.add_url_rule(f"{prefix}/<service_id>/<terms_type>/<ref>/diff.json", f"{name}diff_json",
                           diff_page, defaults={"as_json": True})
