"""Find the Chromium executable that renders JavaScript pages.

Termshift uses the system's Chromium (Debian's /usr/bin/chromium, a Chrome
install…) rather than downloading Playwright's own build, which needs internet
access at install time. `fetcher.browser_path` overrides the search.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

from termshift.errors import ErrorKind, FetchError

__all__ = ["BROWSER_NAMES", "find_chromium", "resolve_browser_path"]

# Searched on PATH, in this order.
BROWSER_NAMES = ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable", "chrome")
# Searched when PATH has none of them (e.g. a minimal PATH under cron or systemd).
_WELL_KNOWN = (
    "/usr/bin/chromium",
    "/usr/bin/chromium-browser",
    "/usr/lib/chromium/chromium",
    "/snap/bin/chromium",
    "/usr/bin/google-chrome",
    "/opt/google/chrome/chrome",
)


def _is_executable(path: Path) -> bool:
    return path.is_file() and os.access(path, os.X_OK)


def _playwright_chromium() -> Path | None:
    """Playwright's own Chromium, when `playwright install chromium` was run."""
    root = Path(os.environ.get("PLAYWRIGHT_BROWSERS_PATH") or Path.home() / ".cache" / "ms-playwright")
    if not root.is_dir():
        return None
    candidates = sorted(root.glob("chromium-*/chrome-linux*/chrome"), reverse=True)
    return next((path for path in candidates if _is_executable(path)), None)


def find_chromium() -> Path | None:
    """The first Chromium found on PATH, in well-known places, or Playwright's; None if none."""
    for name in BROWSER_NAMES:
        found = shutil.which(name)
        if found:
            return Path(found)
    for candidate in map(Path, _WELL_KNOWN):
        if _is_executable(candidate):
            return candidate
    return _playwright_chromium()


def resolve_browser_path(configured: str = "") -> Path | None:
    """The browser to launch: `fetcher.browser_path` when set (it must exist), else `find_chromium()`.

    Raises a configuration FetchError when the configured path is not an executable file:
    a wrong setting must be reported, not silently replaced by another browser.
    """
    if configured:
        path = Path(configured).expanduser()
        if not _is_executable(path):
            raise FetchError(
                f"fetcher.browser_path: {configured!r} is not an executable file",
                ErrorKind.CONFIGURATION,
            )
        return path
    return find_chromium()
