"""The viewer's long-lived state: index, blob readers, caches, declarations, refreshes.

One `Viewer` per Flask app (in `app.extensions["termshift"]`). Request handlers reach it
with `viewer()`.
"""

from __future__ import annotations

import json
import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from cachetools import LRUCache
from flask import current_app, g, has_app_context, has_request_context, request

from termshift.archive_repo.blob_reader import BlobReader, MissingObject
from termshift.archive_repo.log_reader import head_commit, head_fingerprint
from termshift.web.background import BackgroundRefresh
from termshift.web.catalog import Catalog
from termshift.web.declared_services import Declarations, DeclaredService
from termshift.web.diffing import Comparison, compare
from termshift.web.index import Indexer, Sources, pending_versions
from termshift.web.render import RENDER_FORMAT, markdown_to_html

log = logging.getLogger(__name__)

FRESHNESS_WAIT = 2.0  # seconds a request waits for new commits to be indexed (see Viewer.ensure_fresh)
# Requests that never wait for the index: static files, and what monitoring polls.
NO_FRESHNESS_WAIT = ("/-/static/", "/favicon.ico", "/healthz", "/metrics", "/status")
# Drawn document timelines kept (compressed, a few kilobytes each): every language's of the
# documents drawn ahead after a refresh (pages.TIMELINES_AHEAD), and of some technical views.
TIMELINES_KEPT = 2500
DIFF_FORMAT = 7  # bump when Comparison's JSON form or its diff changes (it is cached by blob ids)


class LRU(LRUCache):
    """cachetools' least-recently-used cache of `size` entries, shared by request threads.

    cachetools' caches are not thread-safe: every read and write here holds the cache's lock.
    `get_or_compute` computes outside it, so a slow computation does not hold up the other
    keys (two threads may both compute a missing value; the last one stays).
    """

    def __init__(self, size: int) -> None:
        super().__init__(maxsize=size)
        self._lock = threading.Lock()

    def get(self, key, default=None):
        with self._lock:
            return super().get(key, default)

    def put(self, key, value) -> None:
        with self._lock:
            self[key] = value

    def get_or_compute(self, key, compute: Callable):
        with self._lock:
            if key in self:
                return self[key]
        value = compute()
        with self._lock:
            self[key] = value
        return value


@dataclass(frozen=True)
class IndexProgress:
    """How far the index is: what the banner, `/status` and `/status.json` show."""

    complete: bool  # every version of the archive is indexed (no refresh under way)
    versions_indexed: int
    versions_total: int
    archive: bool = True  # False: nothing recorded yet (no versions repository, or no commit)

    def to_json(self) -> dict:
        return {"complete": self.complete, "versions_indexed": self.versions_indexed,
                "versions_total": self.versions_total}

    @property
    def percent(self) -> int:
        return 100 if not self.versions_total else int(100 * self.versions_indexed / self.versions_total)


class Refresher(BackgroundRefresh):
    """Re-indexes when a repository's HEAD moves, at most every `interval` seconds.

    `poke()` is cheap (file modification times, no subprocess) and is called before
    requests; the refresh itself runs in a background thread so no request waits for it.
    A first build of a large archive also runs in the background (`start()`): pages answer
    at once with what is indexed so far, and `progress()` says how far it is.
    """

    name = "index refresh"

    def __init__(self, sources: Sources, interval: float, count_versions: Callable[[], int] | None = None):
        self.sources = sources
        self.after_refresh: Callable[[], None] | None = None  # e.g. re-render the busiest pages
        self._progress_lock = threading.Lock()
        self._indexing: tuple[int, int] | None = None  # (indexed, total) while a refresh runs
        self._behind = False  # the running refresh found versions missing from the index
        self._building = False  # a large build runs in the background (`start()`): no request waits for it
        self._archive = self._archive_present()
        self._count = count_versions or (lambda: 0)  # versions in the index
        self._indexed: int | None = None  # versions in the index after the last refresh
        self._index_lock = threading.Lock()  # one Indexer at a time: start-up, background or catch-up
        self._catch_up_lock = threading.Lock()
        self._catch_up: threading.Thread | None = None
        self._catch_up_started = 0.0
        super().__init__(interval)
        self._fingerprint = None  # nothing indexed by this viewer yet: not fresh until a refresh ran

    def fingerprint(self) -> tuple:
        repos = [self.sources.versions, self.sources.snapshots]
        return tuple(head_fingerprint(repo) if repo else None for repo in repos)

    def _archive_present(self) -> bool:
        versions = Path(self.sources.versions)
        return versions.is_dir() and head_commit(versions) is not None

    def pending(self) -> int:
        """New versions a refresh would index now (an estimate from the commit count)."""
        return pending_versions(self.sources) if self._archive_present() else 0

    def start(self, pending: int = 0) -> bool:
        """Index in the background now; `pending` (new versions expected) sizes the progress
        shown until the indexer counts them exactly."""
        indexed = self.progress().versions_indexed
        with self._progress_lock:
            if self._indexing is None:
                self._indexing = (indexed, indexed + pending)
            self._building = True
        if super().start():
            return True
        with self._progress_lock:  # a refresh already runs: not a build of this call's
            self._building = False
        return False

    def _on_progress(self, indexed: int, total: int) -> None:
        with self._progress_lock:
            self._indexing = (indexed, total)
            # A refresh that found versions missing stays incomplete until it has finished
            # (committed and remembered), also after its last version is counted.
            self._behind = self._behind or total > indexed

    def refresh(self) -> dict:
        """Index new commits now (synchronously); returns the indexer's statistics.

        Before the first tracking run recorded anything (no versions repository yet, or
        one without commits) there is nothing to index: the viewer says so, and the
        fingerprint picks the archive up when it appears.
        """
        with self._index_lock:
            try:
                if self._fingerprint is not None and self.is_fresh():
                    return {}  # another thread's refresh, which this one waited for, did it all
                return self._refresh()
            finally:
                with self._progress_lock:  # whichever way it ended, no build runs now
                    self._building = False

    def _refresh(self) -> dict:
        fingerprint = self.fingerprint()
        self._archive = self._archive_present()
        if not self._archive:
            with self._progress_lock:
                self._indexing = None
            self.remember(fingerprint)
            return {}
        started = time.perf_counter()
        try:
            indexer = Indexer(self.sources, progress=self._on_progress)
            try:
                stats = indexer.refresh()
                self._indexed = indexer.versions_indexed()
            finally:
                indexer.close()
            # Fresh before complete: a request that sees the index complete must also find
            # it fresh, or it would start a catch-up of its own and answer 503 meanwhile.
            self.remember(fingerprint)
        finally:
            with self._progress_lock:
                self._indexing = None
                self._behind = False
        new = sum(part.get("new", 0) for part in stats.values())
        if new:
            log.info("index ready in %.1f s (%d new records): %s", time.perf_counter() - started, new, stats)
        return stats

    def is_fresh(self) -> bool:
        """True when no repository's HEAD moved since the last refresh (a few `stat`s)."""
        return self.fingerprint() == self._fingerprint

    def ensure_fresh(self, wait: float) -> bool:
        """Bring the index up to date if a HEAD moved; True when it is, within `wait` seconds.

        The catch-up runs in its own thread, shared by every request that arrives
        meanwhile; requests wait for it until `wait` seconds after it started (the
        catch-up goes on after that: a long one, say after a large `git pull`, makes each
        request wait once at most), then get False, so that they answer from git instead,
        or say that the index is catching up. While a build started in the background runs
        (`start()`: a first build), none waits.
        """
        if self.is_fresh():
            return True
        with self._progress_lock:
            if self._building:
                # A large build under way (a first build, say) takes minutes: a request would
                # wait for it in vain. It answers from what is indexed, and pages say how far.
                return False
        with self._catch_up_lock:
            if self._catch_up is None or not self._catch_up.is_alive():
                self._catch_up = threading.Thread(target=self._catch_up_now, name="index catch-up", daemon=True)
                self._catch_up_started = time.monotonic()
                self._catch_up.start()
            catch_up, started = self._catch_up, self._catch_up_started
        if catch_up is threading.current_thread():
            return False  # a page rendered by the catch-up itself (warm_pages)
        catch_up.join(max(0.0, started + wait - time.monotonic()))
        return not catch_up.is_alive() and self.is_fresh()

    def _catch_up_now(self) -> None:
        try:
            if not self.is_fresh():
                stats = self.refresh()
                # Waiting requests go on now; re-rendering the busiest pages can follow.
                threading.Thread(target=self.refreshed, args=(stats,), name="after refresh", daemon=True).start()
        except Exception:  # the request answers from git; the next one tries again
            log.exception("index catch-up failed")

    def progress(self) -> IndexProgress:
        """Cheap (memory only while indexing; one count query otherwise)."""
        with self._progress_lock:
            indexing, behind = self._indexing, self._behind
        if indexing is not None and (indexing[1] > indexing[0] or behind):
            # Versions known to be missing from the index, or a refresh that found some and
            # has not finished. (A refresh that has not counted its new versions yet, or is
            # waiting for another process's, shows as complete.)
            return IndexProgress(False, *indexing, True)
        if not self._archive:
            return IndexProgress(True, 0, 0, False)
        if indexing is not None and indexing[0]:
            return IndexProgress(True, indexing[0], indexing[0], True)
        if self._indexed is None:
            self._indexed = self._count()
        return IndexProgress(True, self._indexed, self._indexed, True)

    def refreshed(self, stats: dict) -> None:
        log.info("index refreshed: %s", stats)
        if self.after_refresh is not None:
            self.after_refresh()


class Viewer:
    """Everything a request needs besides the request itself."""

    def __init__(self, sources: Sources, declarations_dir: Path | None, runs_db: Path | None,
                 refresh_interval: float):
        self.sources = sources
        self.declarations_dir = declarations_dir
        self.runs_db = runs_db
        self.catalog = Catalog(sources.index)
        self.refresher = Refresher(sources, refresh_interval, self.catalog.versions_count)
        self.versions = BlobReader(sources.versions)
        self.snapshots = BlobReader(sources.snapshots) if sources.snapshots else None
        self.declarations = Declarations(declarations_dir, refresh_interval)
        self._texts = LRU(64)
        self._comparisons = LRU(32)
        self._renders = LRU(32)
        self.pages = LRU(256)  # rendered collection pages (see views.cached_page)
        self.pictures = LRU(128)  # drawn activity grids (see pages._picture)
        self.timelines = LRU(TIMELINES_KEPT)  # drawn document timelines (see pages._timeline_svg)

    def close(self) -> None:
        self.versions.close()
        if self.snapshots:
            self.snapshots.close()
        self.catalog.close()

    def poke(self) -> None:
        """Before each request: pick up new commits (now: see `ensure_fresh`) and changed
        declarations (throttled)."""
        if not (has_request_context() and request.path.startswith(NO_FRESHNESS_WAIT)):
            self.ensure_fresh()
        self.refresher.poke()
        self.declarations.poke()

    def ensure_fresh(self) -> bool:
        """Index what was committed since the last refresh before answering, within the
        app's FRESHNESS_WAIT seconds; False when that was not enough (answer from git, or
        say so: never "not found" for what the archive holds). Once per request."""
        if has_request_context() and "index_fresh" in g:
            return g.index_fresh
        wait = float(current_app.config.get("FRESHNESS_WAIT", FRESHNESS_WAIT)) if has_app_context() \
            else FRESHNESS_WAIT
        fresh = self.refresher.ensure_fresh(wait)
        if has_request_context():
            g.index_fresh = fresh
        return fresh

    def index_progress(self) -> IndexProgress:
        """How far the index is (the banner and the status page show it)."""
        return self.refresher.progress()

    @property
    def declared(self) -> dict[str, DeclaredService]:
        """Declared services by id (empty without a declarations folder); follows its changes."""
        return self.declarations.services

    # --- names

    def service_name(self, service_id: str) -> str:
        declared = self.declared.get(service_id)
        return declared.name if declared else service_id

    # --- contents

    def version_text(self, blob: str) -> str:
        return self._texts.get_or_compute(blob, lambda: self.versions.read(blob).decode("utf-8", "replace"))

    def snapshot_bytes(self, blob: str) -> bytes:
        if self.snapshots is None:
            raise MissingObject(blob)
        return self.snapshots.read(blob)

    def version_html(self, blob: str) -> str:
        """The version rendered and sanitised; cached in memory and in the index."""

        def render() -> str:
            cached = self.catalog.cached("render_cache", (blob,), RENDER_FORMAT)
            if cached is not None:
                return cached.decode("utf-8")
            html = markdown_to_html(self.version_text(blob))
            self.catalog.store("render_cache", (blob,), RENDER_FORMAT, html.encode("utf-8"))
            return html

        return self._renders.get_or_compute(blob, render)

    def comparison(self, old_blob: str | None, new_blob: str) -> Comparison:
        """The diff of two blobs (None: the empty text); cached in memory and in the index."""
        key = (old_blob or "", new_blob)

        def compute() -> Comparison:
            cached = self.catalog.cached("diff_cache", key, DIFF_FORMAT)
            old = self.version_text(old_blob) if old_blob else ""
            if cached is not None:
                return Comparison.from_json(json.loads(cached), old)
            result = compare(old, self.version_text(new_blob))
            self.catalog.store("diff_cache", key, DIFF_FORMAT, json.dumps(result.to_json()).encode("utf-8"))
            return result

        return self._comparisons.get_or_compute(key, compute)


def viewer() -> Viewer:
    return current_app.extensions["termshift"]
