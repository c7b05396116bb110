"""Render pages that need JavaScript, with Playwright driving Chromium (OTA's "fullDom" fetcher).

`BrowserFetcher` is an asyncio object: start it (or use `async with`), then
`await fetch(url, css_selectors)` from as many tasks as you like; at most
`pages` render at once. Each fetch gets a fresh browser context (no cookies,
storage or cache shared between documents), a 1920×1080 viewport and the
configured languages, as OTA does (reference §2.2).

The browser is the system's Chromium (`browser_path.py`), launched with flags
that stop it from calling Google's services (this machine, like many servers,
refuses them), or a remote browser reached at `fetcher.browser_endpoint`:
`http(s)://` and `ws://…/devtools/browser/…` speak the Chrome DevTools Protocol,
any other `ws://` is a Playwright browser server. Several endpoints (comma-separated,
or a list) make a browser farm, rendered on round-robin (`browser_farm.py`).

Beyond OTA: when the first load is a challenge page that a browser may pass
(Cloudflare's "Just a moment…", an empty JavaScript shell…), the fetcher gives
it up to `wait_for_selectors` seconds to reload itself into the real page.

A page is untrusted: every request the browser makes for it — the navigation,
each redirect, each frame, script, image, fetch() and WebSocket — is routed
through `fetcher.guard_request` first, and one that leads to a private or
loopback address (not in `fetcher.allow_private_targets`) is aborted and fails
the document (service workers are blocked, so none escapes the routing). The
rendered DOM and a captured PDF are capped at `fetcher.max_body_bytes`.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import logging
import os
import sys
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

from termshift.config import DEFAULTS, FetcherSettings
from termshift.errors import ErrorKind, FetchError, code_named_in, redirect_limit_message
from termshift.trackers.blocking import detect_block
from termshift.trackers.browser_farm import BrowserFarm, parse_endpoints
from termshift.trackers.fetcher import guard_request

log = logging.getLogger(__name__)

__all__ = [
    "CHROMIUM_ARGS",
    "BrowserFetcher",
    "BrowserPage",
    "accept_language",
    "parse_language",
]

# Always passed to a local Chromium. Without the background-networking ones Chromium
# keeps trying to reach Google's hosts (updates, sync, field trials).
CHROMIUM_ARGS = (
    "--headless",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-default-apps",
    "--disable-extensions",
    "--disable-features=Translate,OptimizationHints,MediaRouter",
    "--metrics-recording-only",
    # navigator.webdriver = false: some sites refuse automated browsers outright.
    "--disable-blink-features=AutomationControlled",
)

# Signatures of pages that a real browser can get past by waiting: a JavaScript
# challenge that reloads the page. An application shell that renders itself is
# waited for too, but only when there are no selectors (selectors are the better signal).
_PASSABLE = {"cloudflare-challenge", "aws-waf", "imperva-incapsula", "perimeterx"}

# True once `selector` matches an element with non-blank text (OTA's wait). An
# invalid selector ends the wait at once; extraction will report it.
_HAS_TEXT = """(selector) => {
  try {
    const element = document.querySelector(selector);
    return Boolean(element && element.textContent.trim());
  } catch (error) {
    return true;
  }
}"""

_PLATFORMS = {"linux": "X11; Linux x86_64", "darwin": "Macintosh; Intel Mac OS X 10_15_7", "win32": "Windows NT 10.0; Win64; x64"}

# Chromium navigation errors, as the Node system error codes OTA's messages use.
_NET_ERRORS = {
    "ERR_CONNECTION_RESET": "ECONNRESET",
    "ERR_CONNECTION_CLOSED": "ECONNRESET",
    "ERR_EMPTY_RESPONSE": "ECONNRESET",
    "ERR_CONNECTION_REFUSED": "ECONNREFUSED",
    "ERR_CONNECTION_TIMED_OUT": "ETIMEDOUT",
    "ERR_TIMED_OUT": "ETIMEDOUT",
    "ERR_NAME_NOT_RESOLVED": "ERR_NAME_NOT_RESOLVED",
    "ERR_ADDRESS_UNREACHABLE": "EHOSTUNREACH",
    "ERR_INTERNET_DISCONNECTED": "ENETUNREACH",
}


def parse_language(value: str) -> list[str]:
    """The language tags of `fetcher.language` ("fr-FR, fr" → ["fr-FR", "fr"]), as OTA's parseLanguage.

    Quality values are refused: the order of the tags already says the preference.
    """
    if not isinstance(value, str) or ";q=" in value.lower():
        raise FetchError(
            f"fetcher.language: expected comma-separated language tags without q-values, got {value!r}",
            ErrorKind.CONFIGURATION,
        )
    tags = [tag.strip() for tag in value.split(",") if tag.strip()]
    if not tags:
        raise FetchError(f"fetcher.language: no language tag in {value!r}", ErrorKind.CONFIGURATION)
    return tags


def accept_language(tags: Sequence[str]) -> str:
    """The Accept-Language header Chrome derives from a list: en-IE,en-GB;q=0.9,en;q=0.8."""
    parts = []
    for position, tag in enumerate(tags):
        quality = max(0.1, round(1 - position / 10, 1))
        parts.append(tag if position == 0 else f"{tag};q={quality:g}")
    return ",".join(parts)


@dataclass
class BrowserPage:
    """What the browser got: the main document's status and headers, and the rendered page.

    `content` is the serialised live DOM (`str`, `mime_type` "text/html"), or the
    PDF's bytes (`mime_type` "application/pdf").
    """

    status: int
    headers: dict[str, str]
    content: str | bytes
    mime_type: str
    final_url: str


@dataclass
class _Interception:
    """The page's requests, paused through the DevTools Fetch domain.

    - Request stage: every request of the page — each redirect hop included, which
      Playwright's routing does not see — goes through the address guard; a refused one
      is failed before it is sent.
    - Response stage, documents only, when `capture_pdf`: catches a PDF answer (Chromium
      shows PDFs in a viewer, so the page's own content is not the file). Only when there
      are no selectors, as OTA. A PDF over `max_bytes` is not kept (`too_large`).
    """

    session: Any
    guard: _RequestGuard
    capture_pdf: bool = True
    max_bytes: int = 20 * 1024 * 1024
    status: int | None = None
    headers: dict[str, str] = field(default_factory=dict)
    body: bytes | None = None
    too_large: int | None = None  # the size of a PDF refused for its size
    tasks: set[asyncio.Task[None]] = field(default_factory=set)

    async def attach(self) -> None:
        self.session.on("Fetch.requestPaused", self._on_paused)
        patterns = [{"urlPattern": "*", "requestStage": "Request"}]
        if self.capture_pdf:
            patterns.append({"urlPattern": "*", "resourceType": "Document", "requestStage": "Response"})
        await self.session.send("Fetch.enable", {"patterns": patterns})

    def _on_paused(self, event: dict[str, Any]) -> None:
        task = asyncio.ensure_future(self._handle(event))
        self.tasks.add(task)
        task.add_done_callback(self.tasks.discard)

    async def _handle(self, event: dict[str, Any]) -> None:
        from playwright.async_api import Error as PlaywrightError

        headers = {item["name"].lower(): item["value"] for item in event.get("responseHeaders") or []}
        try:
            if "responseStatusCode" not in event and "responseErrorReason" not in event:  # request stage
                if await self.guard.check(event["request"]["url"]) is not None:
                    await self.session.send(
                        "Fetch.failRequest", {"requestId": event["requestId"], "errorReason": "BlockedByClient"}
                    )
                else:
                    await self.session.send("Fetch.continueRequest", {"requestId": event["requestId"]})
                return
            if self.capture_pdf and "application/pdf" in headers.get("content-type", "").lower():
                self.status = event.get("responseStatusCode")
                self.headers = headers
                announced = headers.get("content-length", "")
                if announced.isdigit() and int(announced) > self.max_bytes:
                    self.too_large = int(announced)  # not even read
                elif self.status is not None and 200 <= self.status < 300:
                    answer = await self.session.send("Fetch.getResponseBody", {"requestId": event["requestId"]})
                    data = answer["body"]
                    body = base64.b64decode(data) if answer.get("base64Encoded") else data.encode("utf-8")
                    if len(body) > self.max_bytes:
                        self.too_large = len(body)
                    else:
                        self.body = body
            await self.session.send("Fetch.continueRequest", {"requestId": event["requestId"]})
        except PlaywrightError:
            pass  # the page was closed meanwhile

    async def settle(self) -> None:
        if self.tasks:
            await asyncio.gather(*self.tasks, return_exceptions=True)


class BrowserFetcher:
    """A shared Chromium that renders documents, `pages` at a time."""

    def __init__(
        self,
        *,
        executable: str | None = None,
        endpoint: str | Sequence[str] = "",
        language: str = "en",
        timeout: float = 30.0,
        wait_for_selectors: float = 10.0,
        pages: int = 2,
        max_body_bytes: int = 20 * 1024 * 1024,
        allow_private_targets: Iterable[str] | None = None,
    ) -> None:
        """`allow_private_targets` None: the default of `fetcher.allow_private_targets`.

        `endpoint`: one remote browser, or several (comma-separated, or a list) shared round-robin.
        """
        several = not isinstance(endpoint, str) or "," in endpoint
        self.endpoints = parse_endpoints(endpoint) if several else [endpoint] if endpoint else []
        if not executable and not self.endpoints:
            raise FetchError("BrowserFetcher needs a Chromium executable or an endpoint", ErrorKind.CONFIGURATION)
        self.executable = executable
        self.endpoint = self.endpoints[0] if len(self.endpoints) == 1 else ""  # several: self._farm
        self.languages = parse_language(language)
        self.timeout = timeout
        self.wait_for_selectors = wait_for_selectors
        self.pages = pages
        self.max_body_bytes = max_body_bytes
        if allow_private_targets is None:
            allow_private_targets = DEFAULTS["fetcher"]["allow_private_targets"][0]
        self.allow_private_targets = list(allow_private_targets)
        self._slots = asyncio.Semaphore(pages)
        self._start_lock = asyncio.Lock()
        self._playwright: Any = None
        self._browser: Any = None
        self._farm: BrowserFarm | None = None
        self._user_agent: str | None = None

    @classmethod
    def from_settings(cls, fetcher: FetcherSettings, executable: str | None = None) -> BrowserFetcher:
        """A fetcher configured by the "fetcher" settings section."""
        return cls(
            executable=executable,
            endpoint=fetcher.browser_endpoint,
            language=fetcher.language,
            timeout=fetcher.timeout,
            wait_for_selectors=fetcher.wait_for_selectors,
            pages=fetcher.browser_pages,
            max_body_bytes=fetcher.max_body_bytes,
            allow_private_targets=fetcher.allow_private_targets,
        )

    # -- life cycle -----------------------------------------------------------------------

    async def __aenter__(self) -> BrowserFetcher:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    async def start(self) -> None:
        """Launch (or connect to) the browser; later calls do nothing."""
        async with self._start_lock:
            if self._browser is not None or self._farm is not None:
                return
            from playwright.async_api import Error as PlaywrightError
            from playwright.async_api import async_playwright

            self._playwright = await async_playwright().start()
            if len(self.endpoints) > 1:  # connected to one by one, when pages need them
                chromium = self._playwright.chromium
                self._farm = BrowserFarm(self.endpoints, lambda endpoint: self._connect(chromium, endpoint))
                return
            try:
                self._browser = await self._open_browser(self._playwright.chromium)
            except PlaywrightError as error:
                await self._playwright.stop()
                self._playwright = None
                where = self.endpoint or self.executable
                raise FetchError(
                    f"Could not start the browser ({where}): {_first_line(error)}", ErrorKind.CONFIGURATION
                ) from None
            self._user_agent = _user_agent_for(self._browser)

    async def _connect(self, chromium: Any, endpoint: str) -> Any:
        timeout_ms = self.timeout * 1000
        if endpoint.startswith(("http://", "https://")) or "/devtools/browser/" in endpoint:
            return await chromium.connect_over_cdp(endpoint, timeout=timeout_ms)
        return await chromium.connect(endpoint, timeout=timeout_ms)

    async def _open_browser(self, chromium: Any) -> Any:
        timeout_ms = self.timeout * 1000
        if self.endpoint:
            return await self._connect(chromium, self.endpoint)
        running_as_root = hasattr(os, "geteuid") and os.geteuid() == 0
        if running_as_root:
            log.warning(
                "Chromium is started WITHOUT its sandbox (--no-sandbox) because Termshift runs as root: a page "
                "that exploits a browser bug would get root's rights on this machine. Run Termshift as an "
                "unprivileged user (see docs/fetching.md), or render on a remote browser (fetcher.browser_endpoint)."
            )
        args = list(CHROMIUM_ARGS) + (["--no-sandbox"] if running_as_root else [])
        return await chromium.launch(
            executable_path=self.executable,
            headless=True,
            args=args,
            chromium_sandbox=not running_as_root,
            timeout=timeout_ms,
        )

    async def close(self) -> None:
        """Close the browser (or disconnect from a remote one) and stop Playwright."""
        async with self._start_lock:
            browser, self._browser = self._browser, None
            farm, self._farm = self._farm, None
            driver, self._playwright = self._playwright, None
            if farm is not None:
                await farm.close()
            if browser is not None:
                # A browser that died or hangs is closed enough.
                with contextlib.suppress(Exception):
                    await asyncio.wait_for(browser.close(), 10)
            if driver is not None:
                await driver.stop()

    # -- fetching ---------------------------------------------------------------------------

    async def fetch(self, location: str, css_selectors: Iterable[str] = ()) -> BrowserPage:
        """Render `location`; raises FetchError when no page could be had.

        An HTTP error status is *not* raised here: the page comes back with its
        status, so that the caller can recognise a block page served as a 403.
        """
        await self.start()
        selectors = list(css_selectors)
        if self._farm is not None:
            return await self._fetch_on_farm(self._farm, location, selectors)
        return await self._fetch_with(self._browser, self._user_agent, location, selectors)

    async def _fetch_on_farm(self, farm: BrowserFarm, location: str, selectors: list[str]) -> BrowserPage:
        """Render on the farm's next browser; when that browser dies meanwhile, on the next one."""
        failure: BaseException | None = None
        for _endpoint in self.endpoints:
            endpoint, browser = await farm.acquire()  # raises when no endpoint is left
            try:
                return await self._fetch_with(browser, _user_agent_for(browser), location, selectors)
            except Exception as error:
                if await _still_usable(browser):
                    raise  # the page's own failure
                farm.leave_out(endpoint, f"its browser went away during a page ({_first_line(error)})")
                failure = error
        raise FetchError(f"Every browser endpoint went away while rendering '{location}' "
                         f"(last: {_first_line(failure) if failure else 'none'})", ErrorKind.TRANSIENT)

    async def _fetch_with(self, browser: Any, user_agent: str | None, location: str,
                          selectors: list[str]) -> BrowserPage:
        # A hard limit in case the browser stops answering: navigation, the selector
        # wait, the challenge wait and closing the context, with some margin.
        limit = self.timeout + 2 * self.wait_for_selectors + 10
        async with self._slots:
            context = await browser.new_context(
                viewport={"width": 1920, "height": 1080},
                locale=self.languages[0],
                user_agent=user_agent,
                # A service worker's requests would bypass the routing (the address guard).
                service_workers="block",
            )
            try:
                return await asyncio.wait_for(self._render(context, location, selectors, user_agent), limit)
            except TimeoutError:
                raise FetchError(location=location, timeout=self.timeout) from None
            finally:
                with contextlib.suppress(Exception):  # closing must not hide the result
                    await asyncio.wait_for(context.close(), 10)

    async def _render(self, context: Any, location: str, selectors: list[str], user_agent: str | None) -> BrowserPage:
        from playwright.async_api import Error as PlaywrightError
        from playwright.async_api import TimeoutError as PlaywrightTimeoutError

        guard = _RequestGuard(location, self.allow_private_targets)
        await guard.attach(context)
        page = await context.new_page()
        page.set_default_navigation_timeout(self.timeout * 1000)
        session = await context.new_cdp_session(page)
        # Given the whole list, Chromium derives both navigator.languages and the
        # Accept-Language header with q-values (en-IE,en-GB;q=0.9,en;q=0.8), as in OTA.
        await session.send(
            "Emulation.setUserAgentOverride",
            {"userAgent": user_agent, "acceptLanguage": ",".join(self.languages)},
        )
        interception = _Interception(session, guard, capture_pdf=not selectors, max_bytes=self.max_body_bytes)
        await interception.attach()
        capture = interception if not selectors else None
        documents: list[Any] = []  # the main frame's document answers, in order
        page.on("response", lambda response: _keep_document(page, response, documents))
        try:
            response = await page.goto(location, wait_until="load")
        except PlaywrightTimeoutError:
            guard.raise_if_refused()
            raise FetchError(location=location, timeout=self.timeout) from None
        except PlaywrightError as error:
            guard.raise_if_refused()
            if capture is not None:
                await capture.settle()
                self._check_pdf_size(capture, location)
                if capture.body is not None:  # Chromium may abort a PDF navigation after the capture
                    return _pdf_page(capture, page.url or location)
            raise navigation_error(error, location) from None
        guard.raise_if_refused()
        if capture is not None:
            await capture.settle()
            self._check_pdf_size(capture, location)
            if capture.body is not None:
                return _pdf_page(capture, response.url if response else location)
        if response is None:
            raise FetchError(f"Response is empty when trying to fetch '{location}'", location=location)
        passable = _PASSABLE if selectors else _PASSABLE | {"empty-shell"}
        await self._settle_challenge(page, documents, response, passable)
        await self._wait_for_selectors(page, selectors)
        content = await _content(page)
        guard.raise_if_refused()  # a subresource loaded while waiting counts too
        size = len(content.encode("utf-8"))
        if size > self.max_body_bytes:
            raise FetchError(_too_large_message(size, self.max_body_bytes, "rendered page", location),
                             ErrorKind.PERMANENT, location=location)
        final = documents[-1] if documents else response
        headers = await final.all_headers()
        return BrowserPage(final.status, headers, content, "text/html", page.url)

    def _check_pdf_size(self, capture: _Interception, location: str) -> None:
        if capture.too_large is not None:
            raise FetchError(_too_large_message(capture.too_large, self.max_body_bytes, "PDF", location),
                             ErrorKind.PERMANENT, location=location)

    async def _wait_for_selectors(self, page: Any, selectors: list[str]) -> None:
        """Wait until every selector holds text; each may time out (selectors can be stale)."""
        from playwright.async_api import Error as PlaywrightError

        async def wait_for(selector: str) -> None:
            with contextlib.suppress(PlaywrightError):  # a time-out is tolerated, as OTA
                await page.wait_for_function(_HAS_TEXT, arg=selector, timeout=self.wait_for_selectors * 1000)

        if selectors:
            await asyncio.gather(*(wait_for(selector) for selector in selectors))

    async def _settle_challenge(self, page: Any, documents: list[Any], response: Any, passable: set[str]) -> None:
        """Give a passable challenge (or a shell still rendering) time to turn into the page."""
        from playwright.async_api import Error as PlaywrightError

        deadline = time.monotonic() + self.wait_for_selectors
        while True:
            latest = documents[-1] if documents else response
            try:
                content = await page.content()
                headers = await latest.all_headers()
            except PlaywrightError:  # the page is navigating: look again
                content, headers = None, {}
            if content is not None and detect_block(latest.status, headers, content) not in passable:
                return
            if time.monotonic() >= deadline:
                return
            await asyncio.sleep(0.25)
            with contextlib.suppress(PlaywrightError):
                await page.wait_for_load_state("load", timeout=max(0.1, deadline - time.monotonic()) * 1000)


class _RequestGuard:
    """Checks every request of one page (navigations, redirects, subresources, WebSockets)
    against the address rules before the browser sends it; remembers the first refusal."""

    def __init__(self, location: str, allow: list[str]) -> None:
        self.location = location
        self.allow = allow
        self.refused: FetchError | None = None
        self._checked: dict[tuple[str, str], FetchError | None] = {}  # (scheme, netloc) -> refusal

    async def attach(self, context: Any) -> None:
        await context.route("**/*", self._on_request)
        if hasattr(context, "route_web_socket"):
            await context.route_web_socket("**/*", self._on_web_socket)

    async def check(self, url: str) -> FetchError | None:
        from urllib.parse import urlsplit

        parts = urlsplit(url)
        key = (parts.scheme, parts.netloc)
        if key not in self._checked:
            try:
                await asyncio.to_thread(guard_request, url, self.location, self.allow)
                self._checked[key] = None
            except FetchError as error:
                self._checked[key] = error
        refusal = self._checked[key]
        if refusal is not None and self.refused is None:
            self.refused = refusal
        return refusal

    async def _on_request(self, route: Any) -> None:
        from playwright.async_api import Error as PlaywrightError

        with contextlib.suppress(PlaywrightError):  # the page may be closed meanwhile
            if await self.check(route.request.url) is not None:
                await route.abort("blockedbyclient")
            else:
                await route.fallback()

    async def _on_web_socket(self, socket: Any) -> None:
        from playwright.async_api import Error as PlaywrightError

        with contextlib.suppress(PlaywrightError):
            if await self.check(socket.url) is not None:
                await socket.close()
            else:
                socket.connect_to_server()

    def raise_if_refused(self) -> None:
        if self.refused is not None:
            raise self.refused


def _too_large_message(size: int, limit: int, what: str, location: str) -> str:
    return f"The {what} is larger than the limit of {limit} bytes ({size} bytes) when trying to fetch '{location}'"


async def _content(page: Any, attempts: int = 20) -> str:
    """The serialised DOM; retried while a late navigation replaces the document."""
    from playwright.async_api import Error as PlaywrightError

    for _ in range(attempts - 1):
        try:
            return await page.content()
        except PlaywrightError:
            await page.wait_for_load_state("load")
    return await page.content()


def _keep_document(page: Any, response: Any, documents: list[Any]) -> None:
    try:
        if response.request.is_navigation_request() and response.frame == page.main_frame:
            documents.append(response)
    except Exception:  # noqa: BLE001 - a response without a frame (service worker) is not ours
        pass


def _pdf_page(capture: _Interception, url: str) -> BrowserPage:
    assert capture.body is not None and capture.status is not None
    return BrowserPage(capture.status, capture.headers, capture.body, "application/pdf", url)


async def _still_usable(browser: Any) -> bool:
    """Whether a browser still opens contexts (after a failure: was it the page, or the browser?).

    Playwright notices a remote browser's death some time after the calls fail, so
    `is_connected()` alone can still say yes.
    """
    if not browser.is_connected():
        return False
    try:
        context = await asyncio.wait_for(browser.new_context(), 5)
    except Exception:  # noqa: BLE001 - whatever the reason, it cannot render
        return False
    with contextlib.suppress(Exception):
        await asyncio.wait_for(context.close(), 5)
    return True


def _user_agent_for(browser: Any) -> str:
    """Chrome's own User-Agent for this browser's version (headless Chromium says "HeadlessChrome";
    many sites turn that away)."""
    major = (browser.version or "0").split(".")[0]
    platform = _PLATFORMS.get(sys.platform, _PLATFORMS["linux"])
    return f"Mozilla/5.0 ({platform}) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/{major}.0.0.0 Safari/537.36"


def _first_line(error: BaseException) -> str:
    return str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__


def navigation_error(error: BaseException, location: str) -> FetchError:
    """The FetchError for a failed navigation: the one place where Playwright's error text
    (Chromium's `net::ERR_…`) becomes fields (a network error code as Node names it) and a kind,
    with OTA's wording."""
    text = _first_line(error)
    for net_error, code in _NET_ERRORS.items():
        if net_error in text:
            return FetchError(location=location, code=code)
    if "ERR_TOO_MANY_REDIRECTS" in text:
        return FetchError(redirect_limit_message(location), ErrorKind.PERMANENT, location=location)
    if "ERR_ABORTED" in text:
        return FetchError(f"Navigation aborted when trying to fetch '{location}'", ErrorKind.PERMANENT,
                          location=location)
    if "ERR_CERT" in text or "ERR_SSL" in text:
        return FetchError(f"TLS error ({text.split()[0]}) when trying to fetch '{location}'", ErrorKind.PERMANENT,
                          location=location)
    # Another message (the browser's connection to Playwright failed, say): a code it names classifies it.
    return FetchError(f"{text} when trying to fetch '{location}'", location=location, code=code_named_in(text))
