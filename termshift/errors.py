"""The one error root, `TermshiftError`, and the errors of fetching and extraction.

Every exception class defined in termshift derives from `TermshiftError` (some also from
the built-in class callers caught before, such as ValueError); `tests/test_errors.py`
checks it. Fetch and extraction errors follow OTA (reference §2.3) so that messages stay
familiar to its contributors, with one more kind: `blocked`, for block and challenge
pages that OTA records like any other page. The `*_message` functions are OTA's wording
of fetch failures (reference §2.2).
"""

from __future__ import annotations

from enum import StrEnum


class ErrorKind(StrEnum):
    TRANSIENT = "transient"  # worth retrying soon: 5xx, time-outs, resets, DNS hiccups, 429
    BOT_BLOCKING = "bot-blocking"  # 403/406/502/ECONNRESET: try the browser, then retry
    BLOCKED = "blocked"  # a challenge or block page was served: never a version
    PERMANENT = "permanent"  # 404, TLS, too many redirects, empty body: needs a human
    EXTRACTION = "extraction"  # the page came but the declaration no longer fits it
    CONFIGURATION = "configuration"  # a declaration or setting is wrong


class TermshiftError(Exception):
    """Base class: every error Termshift raises on purpose."""

    kind: ErrorKind = ErrorKind.PERMANENT


# Substrings of OTA's messages and their classification (reference §2.3).
_BOT_BLOCKING_MARKERS = ("HTTP code 403", "HTTP code 406", "HTTP code 502", "ECONNRESET")
_TRANSIENT_MARKERS = (
    "EAI_AGAIN",
    "ETIMEDOUT",
    "ERR_NAME_NOT_RESOLVED",
    "Timed out after",
    "HTTP code 500",
    "HTTP code 503",
    "HTTP code 504",
    # Unlike OTA, a 429 is retried (honouring Retry-After): rate limits pass.
    "HTTP code 429",
)


# -- OTA's wording of fetch failures (reference §2.2) ------------------------------------------


def format_seconds(seconds: float) -> str:
    """Seconds as OTA prints them (JavaScript number formatting): 30, 0.01, 2.5."""
    return f"{seconds:g}"


def timeout_message(seconds: float, location: str) -> str:
    return f"Timed out after {format_seconds(seconds)} seconds when trying to fetch '{location}'"


def http_code_message(status: int, location: str) -> str:
    return f"Received HTTP code {status} when trying to fetch '{location}'"


def empty_content_message(location: str) -> str:
    return f"Received an empty content when fetching '{location}'"


def network_error_message(code: str, location: str) -> str:
    """`code` is a Node system error code: ECONNRESET, ECONNREFUSED, ENOTFOUND, ETIMEDOUT…"""
    return f"Network system error {code} occurred when trying to fetch '{location}'"


def redirect_limit_message(location: str) -> str:
    return f"maximum redirect reached at: {location}"


def refused_target_message(reason: str, location: str) -> str:
    return f"Refused to contact a private network address when trying to fetch '{location}': {reason}"


class FetchError(TermshiftError):
    """A document could not be fetched. The message starts with `Fetch failed: ` as OTA's."""

    def __init__(
        self,
        message: str,
        kind: ErrorKind | None = None,
        *,
        status: int | None = None,
        retry_after: float | None = None,
    ) -> None:
        if not message.startswith("Fetch failed: "):
            message = f"Fetch failed: {message}"
        super().__init__(message)
        self.status = status
        self.retry_after = retry_after
        self.kind = kind or classify_fetch_message(message)

    @property
    def may_be_bot_blocking(self) -> bool:
        return self.kind is ErrorKind.BOT_BLOCKING

    @property
    def may_be_transient(self) -> bool:
        return self.kind in (ErrorKind.TRANSIENT, ErrorKind.BOT_BLOCKING)


def classify_fetch_message(message: str) -> ErrorKind:
    """OTA's substring classification of a fetch error message."""
    if any(marker in message for marker in _BOT_BLOCKING_MARKERS):
        return ErrorKind.BOT_BLOCKING
    if any(marker in message for marker in _TRANSIENT_MARKERS):
        return ErrorKind.TRANSIENT
    return ErrorKind.PERMANENT


class BlockedPageError(FetchError):
    """The server answered with a block, challenge or captcha page (any status)."""

    def __init__(self, location: str, signature: str, *, status: int | None = None) -> None:
        super().__init__(
            f"Blocked page ({signature}) received when trying to fetch '{location}'",
            ErrorKind.BLOCKED,
            status=status,
        )
        self.location = location
        self.signature = signature


class ExtractError(TermshiftError):
    """Content could not be extracted from a snapshot. Never retried."""

    kind = ErrorKind.EXTRACTION


class InaccessibleContentError(TermshiftError):
    """One or more documents of a terms failed; `errors` holds each one."""

    def __init__(self, errors: list[TermshiftError]) -> None:
        self.errors = errors
        super().__init__("; ".join(str(error) for error in errors))

    @property
    def kind(self) -> ErrorKind:  # type: ignore[override]
        kinds = [error.kind for error in self.errors]
        for kind in (ErrorKind.PERMANENT, ErrorKind.EXTRACTION, ErrorKind.BLOCKED,
                     ErrorKind.BOT_BLOCKING, ErrorKind.TRANSIENT):
            if kind in kinds:
                return kind
        return ErrorKind.PERMANENT
