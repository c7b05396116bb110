"""Real Playwright browser servers for tests: `chromium.launchServer()` in Node, on loopback.

Playwright's Python package has no `launch_server`; its bundled driver does (Node and
the playwright-core package it ships), so a server is that Node running a few lines of
JavaScript, driving the system's Chromium:

    with PlaywrightBrowserServer(chromium_path) as server:
        BrowserFetcher(endpoint=server.ws_endpoint)

Each server runs in a process group of its own; `kill()` SIGKILLs the group (Node and
its Chromium), as a machine of a browser farm that dies.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import tempfile
import threading
from pathlib import Path
from typing import Any

__all__ = ["PlaywrightBrowserServer", "playwright_driver"]

_LAUNCH = """
// node -e: process.argv is [node, package, chromium, args as JSON]
const { chromium } = require(process.argv[1]);
(async () => {
  const server = await chromium.launchServer({
    executablePath: process.argv[2], headless: true, host: '127.0.0.1', port: 0,
    args: JSON.parse(process.argv[3]),
  });
  console.log(server.wsEndpoint());
})().catch((error) => { console.error(error); process.exit(1); });
"""


def playwright_driver() -> tuple[Path, Path] | None:
    """(node, playwright-core package) of Playwright's bundled driver, or None."""
    try:
        import playwright
    except ImportError:
        return None
    driver = Path(playwright.__file__).parent / "driver"
    node, package = driver / "node", driver / "package"
    return (node, package) if node.is_file() and (package / "index.js").is_file() else None


class PlaywrightBrowserServer:
    """One Playwright browser server (`ws://127.0.0.1:<port>/<id>`) until `kill()` or exit."""

    def __init__(self, chromium: str, args: list[str] | None = None) -> None:
        self.chromium = chromium
        self.args = list(args or [])
        self.process: subprocess.Popen[str] | None = None
        self.ws_endpoint = ""
        self._errors: Any = None

    def start(self, timeout: float = 30.0) -> PlaywrightBrowserServer:
        import json

        found = playwright_driver()
        if found is None:
            raise FileNotFoundError("Playwright's bundled driver (node, playwright-core) is missing")
        node, package = found
        self._errors = tempfile.TemporaryFile(mode="w+")  # noqa: SIM115 - open while the server runs
        self.process = subprocess.Popen(
            [str(node), "-e", _LAUNCH, str(package), self.chromium, json.dumps(self.args)],
            stdout=subprocess.PIPE, stderr=self._errors, text=True, start_new_session=True,
        )
        assert self.process.stdout is not None
        timer = threading.Timer(timeout, self.kill)  # a server that never says where it is
        timer.start()
        try:
            line = self.process.stdout.readline().strip()  # blocks until the server says where it is
        finally:
            timer.cancel()
        if not line.startswith("ws://"):
            self.kill()
            self._errors.seek(0)
            raise RuntimeError(f"the Playwright browser server did not start: {self._errors.read().strip()!r}")
        self.ws_endpoint = line
        return self

    def kill(self) -> None:
        """SIGKILL the server and its browser (its whole process group)."""
        if self.process is not None and self.process.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait()
        if self.process is not None and self.process.stdout is not None:
            self.process.stdout.close()
        if self._errors is not None:
            self._errors.close()
            self._errors = None

    def __enter__(self) -> PlaywrightBrowserServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.kill()
