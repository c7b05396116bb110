"""Cite a change: what a file or a legal brief needs to point at this diff as evidence.

Which service and document, when each version was recorded, the versions' commit ids and
the snapshots they were extracted from (what was published, as fetched), and a permalink
that names both versions by their full commit ids, made absolute with `web.base_url`
(else the request's own address).
"""

from __future__ import annotations

from datetime import UTC, datetime

from termshift import urls


def _side(version: dict | None) -> dict | None:
    if version is None:
        return None
    return {
        "date": version["date"],
        "version_id": version["commit_id"],
        "snapshot_ids": [reference["id"] for reference in version["snapshots"]],
        "url": urls.version_url(version),
    }


def build_citation(service: dict, terms_type: str, old: dict | None, new: dict, base_url: str,
                   consulted: datetime | None = None) -> dict:
    """The citation block's data (also the diff's JSON twin `citation`)."""
    return {
        "service": {"id": service["id"], "name": service["name"]},
        "terms_type": terms_type,
        "old": _side(old),
        "new": _side(new),
        "permalink": base_url.rstrip("/") + urls.diff_permalink(new, old),
        "consulted": (consulted or datetime.now(UTC)).replace(microsecond=0),
    }
