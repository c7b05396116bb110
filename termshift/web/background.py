"""Refreshing shared state in the background, when what it is built from has changed.

The viewer keeps two things up to date while it serves: the index of the archive
(when a repository's HEAD moves) and the declared services (when the declarations
folder changes). Both follow the same pattern: `poke()`, called before requests,
compares a cheap fingerprint at most every `interval` seconds and, when it moved,
runs `refresh()` in a background thread, so that no request waits for it.
"""

from __future__ import annotations

import logging
import threading
import time
from typing import Any

log = logging.getLogger(__name__)


class BackgroundRefresh:
    """Subclasses give `fingerprint()` (cheap; None when it cannot be read) and `refresh()`."""

    name = "refresh"

    def __init__(self, interval: float) -> None:
        self.interval = interval  # seconds between two looks; 0: never refresh in the background
        self._lock = threading.Lock()
        self._checked = 0.0
        self._running = False
        self._fingerprint = self.fingerprint()

    def fingerprint(self) -> Any:
        raise NotImplementedError

    def refresh(self) -> Any:
        raise NotImplementedError

    def refreshed(self, result: Any) -> None:
        """Called after a successful background refresh, with what `refresh()` returned."""

    def remember(self, fingerprint: Any) -> None:
        """Record the fingerprint the state was last built from (refresh() calls it)."""
        self._fingerprint = fingerprint

    def start(self) -> bool:
        """Refresh now, in a background thread (False if a refresh is already running)."""
        with self._lock:
            if self._running:
                return False
            self._running = True
            self._checked = time.monotonic()
        threading.Thread(target=self._refresh_in_background, daemon=True, name=self.name).start()
        return True

    def poke(self) -> None:
        if self.interval <= 0:
            return
        now = time.monotonic()
        with self._lock:
            if self._running or now - self._checked < self.interval:
                return
            self._checked = now
            current = self.fingerprint()
            if current is None or current == self._fingerprint:
                return
            self._running = True
        threading.Thread(target=self._refresh_in_background, daemon=True).start()

    def _refresh_in_background(self) -> None:
        try:
            self.refreshed(self.refresh())
        except Exception:  # a failed refresh must not take the viewer down
            log.exception("%s failed", self.name)
        finally:
            with self._lock:
                self._running = False
