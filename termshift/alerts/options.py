"""The alerts' settings, read from `termshift.config.Settings` (or plain nested dicts) with defaults.

The defaults and help texts live in one place, `termshift.config.DEFAULTS["webhooks"]`
(which also reads `TERMSHIFT_WEBHOOKS_<KEY>` environment variables). Reading them from
there here lets the alerts run from a plain dict too, as the tests and the benchmark do,
without a second copy that could drift.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from termshift.config import DEFAULTS

# section "webhooks": key -> (default, help); the same object as in termshift.config.
WEBHOOK_DEFAULTS: dict[str, tuple[Any, str]] = DEFAULTS["webhooks"]


def _default(key: str) -> Any:
    """The configured default of `webhooks.<key>` (a copy, so no caller can change it)."""
    default = WEBHOOK_DEFAULTS[key][0]
    return list(default) if isinstance(default, list) else default


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

    allow_private_targets: list[str] = field(default_factory=lambda: _default("allow_private_targets"))
    timeout: float = _default("timeout")
    concurrency: int = _default("concurrency")
    retry_base: float = _default("retry_base")
    retry_max: float = _default("retry_max")
    max_age: float = _default("max_age")
    include_diff_max_bytes: int = _default("include_diff_max_bytes")

    @classmethod
    def from_settings(cls, settings: Any) -> WebhookOptions:
        """Read `settings["webhooks"]`; missing keys keep their defaults; bad values raise ValueError."""
        given = _section(settings, "webhooks")
        values: dict[str, Any] = {}
        for key in WEBHOOK_DEFAULTS:
            default = _default(key)
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
