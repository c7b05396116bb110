"""Recognise block, challenge and captcha pages, whatever their HTTP status.

A page served by an anti-bot system is not the document: recording it as a
version would show a "change" that is only the crawler being turned away
(peers.md: EDGI's `estimate_snapshot_quality`, changedetection.io #2198).
`detect_block()` names the system that answered, or returns None.

Precision matters more than recall: a real terms page that mentions "captcha",
loads a reCAPTCHA widget in a form, or carries Cloudflare's bot-management
beacon must never be flagged. So every rule needs a marker that only the block
page carries, and most rules also require the page to be nearly empty of
visible text, which a real terms page never is. The real snapshots of the demo
corpus are all checked against these rules (tests/test_blocking.py).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from functools import cached_property

__all__ = ["SIGNATURES", "detect_block", "visible_text_length"]

# A challenge or block page carries a few sentences at most; terms run to pages.
CHALLENGE_TEXT_LIMIT = 1_000
# Past this much visible text no page is a block page: the content rules are skipped,
# which keeps detection well under a millisecond on real documents.
BLOCK_PAGE_TEXT_MAX = 3_000
# A page "made only of scripts": fewer visible characters than a short paragraph.
SHELL_TEXT_LIMIT = 200

# Elements whose content is never visible text.
_HIDDEN = ("script", "style", "noscript", "template", "svg", "head", "iframe", "object")
# One scan matches the next piece of markup: a hidden element with its content, a
# comment, a doctype or processing instruction, or any other tag. Element contents
# are matched as "runs without '<', or a '<' that does not close the element" rather
# than with a lazy `.*?`: the same result, ten times faster on large inline scripts.
_MARKUP = re.compile(
    "|".join(rf"<{tag}\b[^>]*>[^<]*(?:<(?!/{tag}\b)[^<]*)*</{tag}\s*>" for tag in _HIDDEN)
    + r"|<!--[^-]*(?:-(?!->)[^-]*)*-->|<![^>]*>|<\?[^>]*>|<[^>]*>",
    re.IGNORECASE,
)
_ENTITY = re.compile(r"&(#\d+|#x[0-9a-f]+|[a-z]+);", re.IGNORECASE)
_SPACE = re.compile(r"\s+")
_TITLE = re.compile(r"<title[^>]*>(.*?)</title", re.IGNORECASE | re.DOTALL)


def visible_text_length(html: str, limit: int | None = None) -> int:
    """Characters of visible text (whitespace runs count as one), scanning no further than `limit`.

    A regular-expression scan rather than a parse: it runs on every fetched
    page, and stopping as soon as `limit` is reached keeps it to a fraction of
    a millisecond on real pages.
    """
    total = 0
    position = 0
    for match in _MARKUP.finditer(html):
        total += _text_length(html[position : match.start()], None if limit is None else limit - total)
        if limit is not None and total >= limit:
            return total
        position = match.end()
    return total + _text_length(html[position:], None if limit is None else limit - total)


def _text_length(text: str, enough: int | None = None) -> int:
    """Visible characters of a piece of text; stops early once `enough` is certain."""
    if not text or text.isspace():
        return 0
    if enough is not None and len(text) > 8 * enough + 64:
        start = _text_length(text[: 8 * enough + 64])
        if start >= enough:  # a long text node: its beginning already says enough
            return start
    return len(_SPACE.sub(" ", _ENTITY.sub("x", text)).strip())


@dataclass
class _Page:
    """What a rule looks at; the costly views are computed once, on demand."""

    status: int | None
    headers: dict[str, str]  # names lower-cased
    raw: str

    @cached_property
    def text(self) -> str:
        """The page in lower case, for marker searches."""
        return self.raw.lower()

    @cached_property
    def title(self) -> str:
        match = _TITLE.search(self.raw, 0, 200_000)
        return _SPACE.sub(" ", match.group(1)).strip().lower() if match else ""

    @cached_property
    def is_html(self) -> bool:
        return bool(self.raw) and any(tag in self.text for tag in ("<html", "<body", "<head", "<div", "<p"))

    def header(self, name: str) -> str:
        return self.headers.get(name, "").strip().lower()

    def has(self, *markers: str) -> bool:
        return any(marker in self.text for marker in markers)

    @cached_property
    def visible(self) -> int:
        """Visible characters, counted up to BLOCK_PAGE_TEXT_MAX."""
        return visible_text_length(self.raw, BLOCK_PAGE_TEXT_MAX)

    def nearly_empty(self, limit: int = CHALLENGE_TEXT_LIMIT) -> bool:
        return self.visible < min(limit, BLOCK_PAGE_TEXT_MAX)


# -- the rules, one per anti-bot system ------------------------------------------------


def _cloudflare_challenge(page: _Page) -> bool:
    if page.header("cf-mitigated") == "challenge":
        return True
    if not page.is_html:
        return False
    # `_cf_chl_opt` and the /h/ orchestrate path belong to the interstitial only; normal
    # pages behind Cloudflare load /cdn-cgi/challenge-platform/scripts/jsd/main.js instead.
    challenge_script = page.has("window._cf_chl_opt", "/cdn-cgi/challenge-platform/h/", "cf-chl-widget")
    waiting_title = page.title.startswith(("just a moment", "un instant", "einen moment", "attention required"))
    return (challenge_script or (waiting_title and page.has("cloudflare", "cf-ray"))) and page.nearly_empty()


def _cloudflare_block(page: _Page) -> bool:
    return (
        page.is_html
        and page.has("cf-error-details", "cf-wrapper")
        and page.has(
            "sorry, you have been blocked",
            "used cloudflare to restrict access",
            "attention required! | cloudflare",
        )
        and page.nearly_empty(3_000)
    )


def _akamai(page: _Page) -> bool:
    if not page.is_html or not page.nearly_empty():
        return False
    reference = page.has("reference #", "reference&#32;&#35;", "errors.edgesuite.net")
    return page.title == "access denied" and page.has("you don't have permission to access") and reference


def _aws_waf(page: _Page) -> bool:
    if page.header("x-amzn-waf-action") in {"captcha", "challenge", "block"}:
        return True
    return page.is_html and page.has("awswafintegration", "awswafcookiedomainlist") and page.nearly_empty()


def _imperva(page: _Page) -> bool:
    if not page.is_html:
        return False
    if page.has("incapsula incident id", "_incapsula_resource?cwudnsai") and page.nearly_empty(3_000):
        return True
    # Imperva injects `_Incapsula_Resource` scripts into ordinary pages too: only an
    # otherwise empty page is its challenge.
    return page.has("_incapsula_resource") and page.nearly_empty(SHELL_TEXT_LIMIT)


def _datadome(page: _Page) -> bool:
    # `x-datadome: protected` is on every answer of a protected site; only an error
    # status or the captcha frame means this answer is the block.
    if "x-datadome" in page.headers and page.status in {401, 403, 405, 429}:
        return True
    return page.is_html and page.has("captcha-delivery.com") and page.nearly_empty()


def _perimeterx(page: _Page) -> bool:
    return (
        page.is_html
        and page.has('id="px-captcha"', "id='px-captcha'", "_pxcaptcha", "px-captcha-wrapper")
        and page.nearly_empty()
    )


_CAPTCHA_WIDGETS = (
    'class="g-recaptcha"',
    "class='g-recaptcha'",
    'class="h-captcha"',
    "class='h-captcha'",
    'class="cf-turnstile"',
    "hcaptcha.com/1/api.js",
    "google.com/recaptcha/api.js",
    "recaptcha/enterprise.js",
    "challenges.cloudflare.com/turnstile",
)


def _captcha_only(page: _Page) -> bool:
    # A captcha widget is fine inside a real page (a contact form); a page that is
    # *only* a captcha is a block. 404/410 keep their own, clearer, error.
    if page.status in {404, 410} or not page.is_html:
        return False
    return page.has(*_CAPTCHA_WIDGETS) and page.nearly_empty(300)


def _empty_shell(page: _Page) -> bool:
    # Only for successful answers: an error page keeps its HTTP error.
    if page.status is not None and not 200 <= page.status < 300:
        return False
    # A meta-refresh page ("You should be redirected quickly") is a redirect, not a shell.
    return (
        page.is_html
        and "<script" in page.text
        and 'http-equiv="refresh"' not in page.text
        and page.nearly_empty(SHELL_TEXT_LIMIT)
    )


# Most specific first: the first rule that matches names the page.
SIGNATURES: dict[str, Callable[[_Page], bool]] = {
    "cloudflare-block": _cloudflare_block,
    "cloudflare-challenge": _cloudflare_challenge,
    "akamai-access-denied": _akamai,
    "aws-waf": _aws_waf,
    "imperva-incapsula": _imperva,
    "datadome": _datadome,
    "perimeterx": _perimeterx,
    "captcha-only": _captcha_only,
    "empty-shell": _empty_shell,
}


def detect_block(
    status: int | None,
    headers: Mapping[str, str] | None,
    content: str | bytes | None,
) -> str | None:
    """The signature name of a block or challenge page, or None for a real page.

    `headers` are the response headers (any case); `content` the body, decoded
    or not (bytes are scanned as latin-1: every marker is ASCII). Non-HTML
    bodies (PDF, text) are judged on their headers only.
    """
    header_map = {name.lower(): str(value) for name, value in (headers or {}).items()}
    page = _Page(status, header_map, _markup(content))
    if page.raw and page.visible >= BLOCK_PAGE_TEXT_MAX:
        # Far too much text for a block page: only the headers can still tell.
        page = _Page(status, header_map, "")
    for name, rule in SIGNATURES.items():
        if rule(page):
            return name
    return None


def _markup(content: str | bytes | None) -> str:
    """The body as text when it looks like markup, else "" (a PDF is never a block page)."""
    if not content:
        return ""
    if isinstance(content, bytes):
        start = content[:512].removeprefix(b"\xef\xbb\xbf").lstrip()
        return content.decode("latin-1") if start.startswith(b"<") else ""
    return content if content[:512].lstrip("\ufeff \t\r\n").startswith("<") else ""
