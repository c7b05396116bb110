"""The one error root, `TermshiftError`, and the errors of fetching, extraction and the archive.

Every exception class defined in termshift derives from `TermshiftError` (some also from
the built-in class callers caught before, such as ValueError); `tests/test_errors.py`
checks it. Fetch and extraction errors follow OTA (reference §2.3) so that messages stay
familiar to its contributors, with one more kind: `blocked`, for block and challenge
pages that OTA records like any other page. The `*_message` functions are OTA's wording
of fetch failures (reference §2.2).
"""

from __future__ import annotations

import difflib
from collections.abc import Iterable
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


# -- how a fetch failure is classified (reference §2.3), from what the error says -------------

# HTTP statuses and network error codes that may come from bot blocking: the browser may pass.
BOT_BLOCKING_STATUSES = frozenset({403, 406, 502})
BOT_BLOCKING_CODES = frozenset({"ECONNRESET"})
# Worth retrying soon. Unlike OTA, a 429 is retried (honouring Retry-After): rate limits pass.
TRANSIENT_STATUSES = frozenset({429, 500, 503, 504})
TRANSIENT_CODES = frozenset({"EAI_AGAIN", "ETIMEDOUT", "ERR_NAME_NOT_RESOLVED"})
# Every code that `code_named_in` looks for in a text from outside.
_KNOWN_CODES = tuple(sorted(BOT_BLOCKING_CODES | TRANSIENT_CODES))


def fetch_error_kind(status: int | None = None, code: str | None = None, *, timed_out: bool = False) -> ErrorKind:
    """OTA's classification of a failed fetch from its HTTP status, network error code, or time-out."""
    if status in BOT_BLOCKING_STATUSES or code in BOT_BLOCKING_CODES:
        return ErrorKind.BOT_BLOCKING
    if status in TRANSIENT_STATUSES or code in TRANSIENT_CODES or timed_out:
        return ErrorKind.TRANSIENT
    return ErrorKind.PERMANENT


def code_named_in(text: str) -> str | None:
    """The network error code (ECONNRESET, ETIMEDOUT, EAI_AGAIN, ERR_NAME_NOT_RESOLVED) that an
    error text from outside names, if any: for a failure known only by its message (a Playwright
    error, an unexpected exception), classified once where it enters Termshift."""
    return next((code for code in _KNOWN_CODES if code in text), None)


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
    """A document could not be fetched.

    The raiser says what happened in fields: `location`, `status` (the HTTP status of the
    answer, or None), `code` (a network error code as Node names it: ECONNRESET, ETIMEDOUT,
    ENOTFOUND…, or None), `timeout` (the seconds waited, when the fetch timed out) and
    `retry_after` (seconds, from the answer's Retry-After). `kind` is worked out from them
    (`fetch_error_kind`) unless given. Without a `message`, OTA's message is produced from
    the fields: `FetchError(location=url, status=503)` is "Received HTTP code 503 when
    trying to fetch '<url>'". Every message starts with `Fetch failed: ` as OTA's.
    """

    def __init__(
        self,
        message: str | None = None,
        kind: ErrorKind | None = None,
        *,
        location: str | None = None,
        status: int | None = None,
        code: str | None = None,
        timeout: float | None = None,
        retry_after: float | None = None,
    ) -> None:
        if message is None:
            message = _ota_message(location, status, code, timeout)
        if not message.startswith("Fetch failed: "):
            message = f"Fetch failed: {message}"
        super().__init__(message)
        self.location = location
        self.status = status
        self.code = code
        self.timeout = timeout
        self.retry_after = retry_after
        self.kind = kind or fetch_error_kind(status, code, timed_out=timeout is not None)

    @property
    def may_be_bot_blocking(self) -> bool:
        return self.kind is ErrorKind.BOT_BLOCKING

    @property
    def may_be_transient(self) -> bool:
        return self.kind in (ErrorKind.TRANSIENT, ErrorKind.BOT_BLOCKING)


def _ota_message(location: str | None, status: int | None, code: str | None, timeout: float | None) -> str:
    """OTA's message for a time-out, a network error or an HTTP status."""
    if location is None:
        raise TypeError("FetchError: give a message, or the location with a status, code or timeout")
    if timeout is not None:
        return timeout_message(timeout, location)
    if code is not None:
        return network_error_message(code, location)
    if status is not None:
        return http_code_message(status, location)
    raise TypeError("FetchError: give a message, or a status, code or timeout")


class BlockedPageError(FetchError):
    """The server answered with a block, challenge or captcha page (any status)."""

    def __init__(self, location: str, signature: str, *, status: int | None = None) -> None:
        super().__init__(
            f"Blocked page ({signature}) received when trying to fetch '{location}'",
            ErrorKind.BLOCKED,
            location=location,
            status=status,
        )
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


def suggest(word: str, candidates: Iterable[str]) -> str | None:
    """The candidate `word` was most likely meant to be, if any is close enough."""
    candidates = list(candidates)
    for candidate in candidates:
        if candidate.casefold() == word.casefold():
            return candidate
    matches = difflib.get_close_matches(word, candidates, n=1, cutoff=0.6)
    return matches[0] if matches else None


# --- the archive (termshift.archive_repo) ----------------------------------------------------

class ArchiveError(TermshiftError):
    """A repository cannot be used (not a git repository, git failed…); the message names it."""


class InvalidRecordError(ArchiveError, ValueError):
    """A record misses a required field (`Snapshot is not valid; "content" is missing`)."""


class ArchiveLockedError(ArchiveError):
    """Another process kept the repository's writer lock longer than we were willing to wait."""
