"""Diff statistics of archived versions, computed once and cached in alerts.sqlite.

Feeds show them for up to `feeds.length` entries per request and webhooks send
them; a version never changes, so its statistics are computed once (from the texts
a tracking run hands over in memory, else read from git in one batch) and then read
from the `version_stats` table, until the way sentences are picked changes
(`SENTENCES_FORMAT`).
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

from termshift.alerts.payloads import DiffStats, diff_stats
from termshift.alerts.store import transaction
from termshift.archive_repo.listing import VersionEntry, read_texts

# How `changed_sentences` were picked, stored with them: rows written by an older way (a bare
# JSON list, before sentences were plain text) are computed again rather than served.
SENTENCES_FORMAT = 2


def as_entry(version: Any) -> VersionEntry:
    """Any object with archive_repo Version's attributes, as a VersionEntry."""
    if isinstance(version, VersionEntry):
        return version
    return VersionEntry(
        service_id=version.service_id, terms_type=version.terms_type, id=version.id,
        fetch_date=version.fetch_date, is_first_record=bool(version.is_first_record),
        is_technical_upgrade=bool(getattr(version, "is_technical_upgrade", False)),
    )


def compute(entry: VersionEntry, previous: str | None, text: str | None) -> DiffStats | None:
    """Statistics from the two texts (the figures the viewer's diff page shows: one diff
    engine, termshift.textdiff); None when a needed text is missing."""
    if text is None:
        return None
    if entry.is_first_record:
        return diff_stats(None, text)
    if previous is None:
        return None
    return diff_stats(previous, text)


def _cached(db: sqlite3.Connection, ids: list[str]) -> dict[str, DiffStats]:
    found: dict[str, DiffStats] = {}
    for start in range(0, len(ids), 500):  # stay under SQLite's variable limit
        chunk = ids[start: start + 500]
        rows = db.execute(
            f"SELECT * FROM version_stats WHERE version_id IN ({','.join('?' * len(chunk))})", chunk,
        )
        for row in rows:
            stored = json.loads(row["changed_sentences"])
            if isinstance(stored, dict) and stored.get("format") == SENTENCES_FORMAT:
                found[row["version_id"]] = DiffStats(
                    row["words_added"], row["words_removed"], tuple(stored["sentences"]),
                )
    return found


def _stored_sentences(stats: DiffStats) -> str:
    return json.dumps({"format": SENTENCES_FORMAT, "sentences": list(stats.changed_sentences)}, ensure_ascii=False)


def remember(db: sqlite3.Connection, stats: dict[str, DiffStats | None]) -> None:
    rows = [
        (version_id, item.words_added, item.words_removed, _stored_sentences(item))
        for version_id, item in stats.items()
        if item is not None
    ]
    if rows:
        with transaction(db):  # one commit for all, not one per row
            db.executemany("INSERT OR REPLACE INTO version_stats VALUES (?, ?, ?, ?)", rows)


def _computed(
    data_dir: Path, entries: list[VersionEntry], texts: Mapping[str, tuple[str | None, str]],
) -> dict[str, DiffStats | None]:
    """Statistics computed from the texts given in memory, else from the texts read from git."""
    stats = {entry.id: compute(entry, *texts[entry.id]) for entry in entries if entry.id in texts}
    unread = [entry for entry in entries if entry.id not in texts]
    if unread:
        for entry, (previous, text) in zip(unread, read_texts(data_dir, unread), strict=True):
            stats[entry.id] = compute(entry, previous, text)
    return stats


def stats_for(
    data_dir: Path, db: sqlite3.Connection | None, versions: Iterable[Any],
    texts: Mapping[str, tuple[str | None, str]] | None = None,
) -> dict[str, DiffStats | None]:
    """Statistics per version id, from the cache or computed (then cached).

    `texts` maps version ids to (previous text, text) already in memory (a tracking run's
    new versions); the others are read from git. `db=None` (the alerts database cannot be
    read): computed, not cached."""
    entries = [as_entry(version) for version in versions]
    texts = texts or {}
    if db is None:
        return _computed(data_dir, entries, texts)
    known = _cached(db, [entry.id for entry in entries])
    fresh = _computed(data_dir, [entry for entry in entries if entry.id not in known], texts)
    remember(db, fresh)
    return {**fresh, **known}
