"""The alerts' settings, read from `termshift.config.Settings` (or plain nested dicts) with defaults.

`termshift.config.DEFAULTS` declares the same keys with the same defaults (and
reads `TERMSHIFT_WEBHOOKS_<KEY>` environment variables); the defaults here let
the alerts run from a plain dict too, as the tests and the benchmark do.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

# section "webhooks": key -> (default, help), as in termshift.config.DEFAULTS.
WEBHOOK_DEFAULTS: dict[str, tuple[Any, str]] = {
    "allow_private_targets": ([], "Hosts or addresses allowed although private or loopback."),
    "timeout": (10.0, "Seconds before a webhook request is abandoned (connect, send and answer)."),
    "concurrency": (8, "Webhook requests in flight at once."),
    "retry_base": (60.0, "Seconds before the first retry; doubled after each failure."),
    "retry_max": (86400.0, "Longest wait between two attempts, in seconds."),
    "max_age": (3 * 86400.0, "Seconds after which an undelivered event is marked failed."),
    "include_diff_max_bytes": (262144, "Largest unified diff put in a payload; longer ones are cut."),
}


def _section(settings: Any, name: str) -> Mapping[str, Any]:
    if settings is None:
        return {}
    try:
        section = settings[name]
    except (KeyError, TypeError):
        return {}
    return section if isinstance(section, Mapping) else {}


@dataclass(frozen=True)
class WebhookOptions:
    """Delivery settings. Durations in seconds."""

    allow_private_targets: list[str] = field(default_factory=list)
    timeout: float = 10.0
    concurrency: int = 8
    retry_base: float = 60.0
    retry_max: float = 86400.0
    max_age: float = 3 * 86400.0
    include_diff_max_bytes: int = 262144

    @classmethod
    def from_settings(cls, settings: Any) -> WebhookOptions:
        """Read `settings["webhooks"]`; missing keys keep their defaults; bad values raise ValueError."""
        given = _section(settings, "webhooks")
        values: dict[str, Any] = {}
        for key, (default, _help) in WEBHOOK_DEFAULTS.items():
            value = given.get(key, default)
            if isinstance(default, list):
                if isinstance(value, str):
                    value = [item.strip() for item in value.split(",") if item.strip()]
                if not isinstance(value, list):
                    raise ValueError(f"webhooks.{key}: expected a list, got {value!r}")
            else:
                try:
                    value = type(default)(value)
                except (TypeError, ValueError):
                    raise ValueError(f"webhooks.{key}: expected a number, got {value!r}") from None
                if value <= 0:
                    raise ValueError(f"webhooks.{key}: must be more than 0, got {value!r}")
            values[key] = value
        return cls(**values)

    @property
    def claim_lease(self) -> float:
        """How long a claimed delivery belongs to its worker before others may take it over.

        A request lasts about `timeout` at most (see delivery.py); twice that plus
        a second covers the bookkeeping around it, so a claim older than this was
        left by a worker that crashed.
        """
        return 2 * self.timeout + 1.0


def feed_length(settings: Any) -> int:
    """`feeds.length`: entries per feed (default 100)."""
    value = _section(settings, "feeds").get("length", 100)
    try:
        length = int(value)
    except (TypeError, ValueError):
        raise ValueError(f"feeds.length: expected a whole number, got {value!r}") from None
    if length < 1:
        raise ValueError(f"feeds.length: must be at least 1, got {length}")
    return length


def tag_authority(settings: Any, fallback_host: str) -> str:
    """`feeds.tag_authority`, the `<domain>,<date>` of entry tag URIs.

    Entry ids must never change, so set it once; by default the viewer's host is
    used (`web.base_url`, else the request's host) with the year 2026.
    """
    configured = str(_section(settings, "feeds").get("tag_authority", "") or "")
    return configured or f"{fallback_host or 'localhost'},2026"


def base_url(settings: Any) -> str:
    """`web.base_url` without its trailing slash (empty when not configured)."""
    return str(_section(settings, "web").get("base_url", "") or "").rstrip("/")
