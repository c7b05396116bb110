"""What the alerts derive from their settings.

The `[webhooks]`, `[feeds]` and `[web]` sections are typed dataclasses of
`termshift.config` (`WebhooksSettings`, `FeedsSettings`, `WebSettings`), checked once when
the configuration is loaded: the alerts read them as they are. A caller without a
configuration (a test, the benchmark) builds the dataclass, e.g.
`WebhooksSettings(timeout=1.0, allow_private_targets=("127.0.0.1",))`.
"""

from __future__ import annotations

from termshift.config import FeedsSettings, WebhooksSettings, WebSettings


def claim_lease(webhooks: WebhooksSettings) -> float:
    """How long a claimed delivery belongs to its worker before others may take it over.

    A request lasts about `timeout` at most (see delivery.py); twice that plus
    a second covers the bookkeeping around it, so a claim older than this was
    left by a worker that crashed.
    """
    return 2 * webhooks.timeout + 1.0


def tag_authority(feeds: FeedsSettings, fallback_host: str) -> str:
    """`feeds.tag_authority`, the `<domain>,<date>` of entry tag URIs.

    Entry ids must never change, so set it once; by default the viewer's host is
    used (`web.base_url`, else the request's host) with the year 2026.
    """
    return feeds.tag_authority or f"{fallback_host or 'localhost'},2026"


def base_url(web: WebSettings) -> str:
    """`web.base_url` without its trailing slash (empty when not configured)."""
    return web.base_url.rstrip("/")
