"""Several remote browsers shared by one fetcher: the browser farm.

`fetcher.browser_endpoint` may name several endpoints — comma-separated
("ws://render-1:3000/…, ws://render-2:3000/…") or a list — Playwright browser servers
(`launchServer`, `npx playwright run-server`) or CDP endpoints (`http://…`,
`ws://…/devtools/browser/…`), mixed as one likes. `BrowserFetcher` then renders on
them round-robin (`BrowserFarm.acquire`, one endpoint per page), starting at a random
one so that the fetch processes of a fleet do not all begin on the first:

- an endpoint is connected to on first use, and again when its browser went away;
- an endpoint that fails to connect, or whose browser dies during a page, is left out
  for `cooldown` seconds and the page goes to the next one;
- with every endpoint left out, the page fails with a transient error naming each
  endpoint and why (the document is retried like any transient failure).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import time
from collections import Counter
from collections.abc import Awaitable, Callable, Sequence
from typing import Any

from termshift.errors import ErrorKind, FetchError

__all__ = ["DEFAULT_COOLDOWN", "BrowserFarm", "parse_endpoints"]

log = logging.getLogger(__name__)

# Seconds an endpoint that failed is left out before it is tried again.
DEFAULT_COOLDOWN = 30.0


def parse_endpoints(value: str | Sequence[str] | None) -> list[str]:
    """The endpoints of `fetcher.browser_endpoint`: one URL, comma-separated URLs, or a list of them."""
    if not value:
        return []
    items = value.split(",") if isinstance(value, str) else [part for item in value for part in str(item).split(",")]
    endpoints = [item.strip() for item in items if item.strip()]
    for endpoint in endpoints:
        if not endpoint.startswith(("ws://", "wss://", "http://", "https://")):
            raise FetchError(f"fetcher.browser_endpoint: expected ws:// or http:// URLs, got {endpoint!r}",
                             ErrorKind.CONFIGURATION)
    return list(dict.fromkeys(endpoints))


class BrowserFarm:
    """Round-robin over remote browsers; `connect(endpoint)` opens one (a Playwright Browser)."""

    def __init__(self, endpoints: Sequence[str], connect: Callable[[str], Awaitable[Any]], *,
                 cooldown: float = DEFAULT_COOLDOWN) -> None:
        if not endpoints:
            raise ValueError("a browser farm needs at least one endpoint")
        self.endpoints = list(endpoints)
        self.cooldown = cooldown
        self._connect = connect
        self._browsers: dict[str, Any] = {}
        self._left_out: dict[str, tuple[float, str]] = {}  # endpoint -> (until, monotonic; why)
        self._locks = {endpoint: asyncio.Lock() for endpoint in self.endpoints}
        self._next = random.randrange(len(self.endpoints))
        self.pages: Counter[str] = Counter()  # pages handed to each endpoint

    async def acquire(self) -> tuple[str, Any]:
        """The next endpoint in turn that answers, and its browser; FetchError when none does."""
        problems = []
        start, self._next = self._next, self._next + 1  # the next page starts one further, whatever happens here
        for offset in range(len(self.endpoints)):
            endpoint = self.endpoints[(start + offset) % len(self.endpoints)]
            left_out = self._left_out.get(endpoint)
            if left_out is not None and left_out[0] > time.monotonic():
                problems.append(f"{endpoint}: {left_out[1]}")
                continue
            try:
                browser = await self._browser(endpoint)
            except Exception as error:  # noqa: BLE001 - any failure to connect leaves the endpoint out
                reason = _first_line(error)
                self.leave_out(endpoint, reason)
                problems.append(f"{endpoint}: {reason}")
                continue
            self.pages[endpoint] += 1
            return endpoint, browser
        raise FetchError(
            f"No browser endpoint could render the page ({'; '.join(problems)}); each is tried again "
            f"{self.cooldown:g} s after it failed", ErrorKind.TRANSIENT)

    async def _browser(self, endpoint: str) -> Any:
        async with self._locks[endpoint]:  # pages starting together connect once
            browser = self._browsers.get(endpoint)
            if browser is not None and browser.is_connected():
                return browser
            browser = await self._connect(endpoint)
            self._browsers[endpoint] = browser
            if self._left_out.pop(endpoint, None) is not None:
                log.info("browser endpoint %s is back", endpoint)
            return browser

    def leave_out(self, endpoint: str, reason: str) -> None:
        """Leave `endpoint` out for `cooldown` seconds (it failed to connect, or its browser died)."""
        self._left_out[endpoint] = (time.monotonic() + self.cooldown, reason)
        self._browsers.pop(endpoint, None)
        log.warning("browser endpoint %s left out for %g s: %s", endpoint, self.cooldown, reason)

    def left_out(self) -> list[str]:
        now = time.monotonic()
        return [endpoint for endpoint, (until, _reason) in self._left_out.items() if until > now]

    async def close(self) -> None:
        """Disconnect from every browser (the remote browsers keep running)."""
        browsers, self._browsers = list(self._browsers.values()), {}
        for browser in browsers:
            with contextlib.suppress(Exception):  # a browser that died is closed enough
                await asyncio.wait_for(browser.close(), 10)


def _first_line(error: BaseException) -> str:
    text = str(error).strip()
    return text.splitlines()[0] if text else type(error).__name__
