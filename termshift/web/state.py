"""The viewer's long-lived state: index, blob readers, caches, declarations, refreshes.

One `Viewer` per Flask app (in `app.extensions["termshift"]`). Request handlers reach it
with `viewer()`.
"""

from __future__ import annotations

import json
import logging
import threading
import time
from collections import OrderedDict
from collections.abc import Callable
from pathlib import Path

from flask import current_app, g, has_app_context, has_request_context, request

from termshift.web import gitread
from termshift.web.background import BackgroundRefresh
from termshift.web.catalog import Catalog
from termshift.web.collection import Declarations, DeclaredService
from termshift.web.diffing import Comparison, compare
from termshift.web.index import Indexer, Sources
from termshift.web.render import RENDER_FORMAT, markdown_to_html

log = logging.getLogger(__name__)

FRESHNESS_WAIT = 2.0  # seconds a request waits for new commits to be indexed (see Viewer.ensure_fresh)
# Requests that never wait for the index: static files, and what monitoring polls.
NO_FRESHNESS_WAIT = ("/-/static/", "/favicon.ico", "/healthz", "/metrics", "/status")
DIFF_FORMAT = 3  # bump when Comparison's JSON form or its diff changes (it is cached by blob ids)


class LRU:
    """A small thread-safe least-recently-used cache."""

    def __init__(self, size: int):
        self.size = size
        self._items: OrderedDict = OrderedDict()
        self._lock = threading.Lock()

    def get(self, key):
        with self._lock:
            if key in self._items:
                self._items.move_to_end(key)
                return self._items[key]
        return None

    def put(self, key, value) -> None:
        with self._lock:
            self._items[key] = value
            while len(self._items) > self.size:
                self._items.popitem(last=False)

    def get_or_compute(self, key, compute: Callable):
        with self._lock:
            if key in self._items:
                self._items.move_to_end(key)
                return self._items[key]
        value = compute()
        with self._lock:
            self._items[key] = value
            while len(self._items) > self.size:
                self._items.popitem(last=False)
        return value


class Refresher(BackgroundRefresh):
    """Re-indexes when a repository's HEAD moves, at most every `interval` seconds.

    `poke()` is cheap (file modification times, no subprocess) and is called before
    requests; the refresh itself runs in a background thread so no request waits for it.
    """

    name = "index refresh"

    def __init__(self, sources: Sources, interval: float):
        self.sources = sources
        self.after_refresh: Callable[[], None] | None = None  # e.g. re-render the busiest pages
        self._indexing = threading.Lock()  # one Indexer at a time: background, catch-up or start-up
        self._catch_up_lock = threading.Lock()
        self._catch_up: threading.Thread | None = None
        self._catch_up_started = 0.0
        super().__init__(interval)
        self._fingerprint = None  # nothing indexed by this viewer yet: not fresh until a refresh ran

    def fingerprint(self) -> tuple:
        repos = [self.sources.versions, self.sources.snapshots]
        return tuple(gitread.head_fingerprint(repo) if repo else None for repo in repos)

    def refresh(self) -> dict:
        """Index new commits now (synchronously); returns the indexer's statistics."""
        with self._indexing:
            fingerprint = self.fingerprint()
            indexer = Indexer(self.sources)
            try:
                stats = indexer.refresh()
            finally:
                indexer.close()
            self.remember(fingerprint)
        return stats

    def is_fresh(self) -> bool:
        """True when no repository's HEAD moved since the last refresh (a few `stat`s)."""
        return self.fingerprint() == self._fingerprint

    def ensure_fresh(self, wait: float) -> bool:
        """Bring the index up to date if a HEAD moved; True when it is, within `wait` seconds.

        The catch-up runs in its own thread, shared by every request that arrives
        meanwhile; requests wait for it until `wait` seconds after it started (the
        catch-up goes on after that: a long one, say after a large `git pull`, makes
        each request wait once at most), then get False, so that they answer from git
        instead, or say that the index is catching up.
        """
        if self.is_fresh():
            return True
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
        self.refresher = Refresher(sources, refresh_interval)
        self.catalog = Catalog(sources.index)
        self.versions = gitread.BlobReader(sources.versions)
        self.snapshots = gitread.BlobReader(sources.snapshots) if sources.snapshots else None
        self.declarations = Declarations(declarations_dir, refresh_interval)
        self._texts = LRU(64)
        self._comparisons = LRU(32)
        self._renders = LRU(32)
        self.pages = LRU(256)  # rendered collection pages (see views.cached_page)

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
            raise gitread.MissingObject(blob)
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
            if cached is not None:
                return Comparison.from_json(json.loads(cached))
            old = self.version_text(old_blob) if old_blob else ""
            result = compare(old, self.version_text(new_blob))
            self.catalog.store("diff_cache", key, DIFF_FORMAT, json.dumps(result.to_json()).encode("utf-8"))
            return result

        return self._comparisons.get_or_compute(key, compute)


def viewer() -> Viewer:
    return current_app.extensions["termshift"]
