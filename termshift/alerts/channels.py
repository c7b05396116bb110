"""Apprise channels: which Apprise URLs may be subscribed, and guarding what Apprise connects to.

Apprise speaks to ~130 services. Two kinds matter here:

- **Vendor APIs** (`VENDOR_SCHEMES`: `discord://`, `slack://`, `tgram://`, …): the
  URL carries tokens, and Apprise sends to the vendor's fixed public endpoint. They
  are accepted as they are.
- **Everything else** is treated as self-hosted (`json://`, `ntfy://`, `bark://`,
  `rsyslog://`, `mastodon://`, `mailto://`…): the URL names the machine Apprise will
  contact, so that host must pass the same address rules as a webhook
  (`termshift.ssrf`, allow-list `webhooks.allow_private_targets`). A scheme without a
  host to check is refused.

When a notification is sent (`guarded_send`):
- redirects are switched off on the plugin, whatever the URL says (`?redirect=yes`);
- every name Apprise resolves while sending — the checked host again, an SMTP server,
  a vendor's API host — is checked at that moment against the same rules: a DNS
  answer that changed since the check (DNS rebinding) is refused before any
  connection is made. This is done by wrapping `socket.getaddrinfo` once per process;
  the wrapper does nothing unless the calling context is sending an Apprise
  notification (a `ContextVar`, which Apprise's own worker threads inherit).
"""

from __future__ import annotations

import contextlib
import contextvars
import ipaddress
import socket
import threading
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any

from termshift import ssrf
from termshift.errors import TermshiftError

__all__ = ["VENDOR_SCHEMES", "ChannelError", "check_channel_url", "guarded_send"]

# Services at a fixed public endpoint of their vendor (the "host" part of their URLs,
# if any, is a token, an account or an e-mail domain, not the machine contacted).
VENDOR_SCHEMES = frozenset({
    "discord", "slack", "tgram", "msteams", "gchat", "guilded", "revolt", "flock", "zoom",
    "wxteams", "webex", "line", "lark", "feishu", "dingtalk", "wecombot",
    "pover", "pbul", "psafer", "psafers", "pushed", "pushy", "prowl", "join", "spush", "simplepush",
    "opsgenie", "pagerduty", "pagertree", "splunk", "victorops", "signl4", "squadcast", "ilert",
    "twilio", "vonage", "nexmo", "sinch", "plivo", "msgbird", "clicksend", "bulksms", "d7sms", "seven",
    "sendgrid", "mailgun", "sparkpost", "postmark", "brevo", "resend", "mailersend", "smtp2go",
    "sns", "ses", "fcm", "ifttt", "strmlabs", "threema", "kumulos", "onesignal", "groupme",
})


class ChannelError(TermshiftError, ValueError):
    """An Apprise URL that cannot be subscribed or sent to; the message says why."""


def _scheme(url: str) -> str:
    return url.split("://", 1)[0].lower() if "://" in url else ""


def check_channel_url(url: str, allow: Iterable[str], apprise_asset: Any = None) -> Any:
    """The loaded Apprise plugin for `url`, once its target passed the rules; ChannelError otherwise."""
    import apprise  # imported here: Apprise loads all its plugins, which takes a moment

    plugin = apprise.Apprise.instantiate(url, asset=apprise_asset, suppress_exceptions=True)
    if plugin is None:
        raise ChannelError(f"{url!r} is not a URL Apprise understands")
    scheme = _scheme(url)
    if scheme in VENDOR_SCHEMES:
        return plugin
    host = getattr(plugin, "host", None)
    if not isinstance(host, str) or not host:
        raise ChannelError(
            f"{scheme}:// has no host Termshift can check; use a webhook (http/https) or a vendor service "
            f"({', '.join(sorted(VENDOR_SCHEMES)[:6])}, …)"
        )
    port = getattr(plugin, "port", None) or (443 if getattr(plugin, "secure", False) else 80)
    try:
        ssrf.check_host(url, host, int(port), allow)
    except ssrf.UnsafeTargetError as error:
        raise ChannelError(str(error)) from None
    return plugin


@dataclass
class _Guard:
    url: str
    allow: list[str]
    refused: list[str] = field(default_factory=list)


_CURRENT: contextvars.ContextVar[_Guard | None] = contextvars.ContextVar("termshift_apprise_guard", default=None)
_INSTALL_LOCK = threading.Lock()


def _install_resolver_guard() -> None:
    """Wrap socket.getaddrinfo (once) so that, while a notification is sent, every answer is checked."""
    with _INSTALL_LOCK:
        current: Callable[..., Any] = socket.getaddrinfo
        if getattr(current, "termshift_guard", False):
            return

        def guarded_getaddrinfo(host: Any, port: Any, *args: Any, **kwargs: Any) -> Any:
            answers = current(host, port, *args, **kwargs)
            guard = _CURRENT.get()
            if guard is None or host is None:
                return answers
            name = (host.decode() if isinstance(host, bytes) else str(host)).lower().rstrip(".")
            for answer in answers:
                try:
                    address = ipaddress.ip_address(str(answer[4][0]).split("%")[0])
                    ssrf.check_address(guard.url, name, address, guard.allow)
                except ssrf.UnsafeTargetError as error:
                    guard.refused.append(str(error))
                    raise socket.gaierror(socket.EAI_FAIL, f"refused: {error}") from None
                except ValueError:
                    continue
            return answers

        guarded_getaddrinfo.termshift_guard = True  # type: ignore[attr-defined]
        socket.getaddrinfo = guarded_getaddrinfo


@contextlib.contextmanager
def guarded_send(url: str, allow: Iterable[str]) -> Iterator[_Guard]:
    """Within the block, names resolved for Apprise are checked; `guard.refused` lists the refusals."""
    _install_resolver_guard()
    guard = _Guard(url, list(allow))
    token = _CURRENT.set(guard)
    try:
        yield guard
    finally:
        _CURRENT.reset(token)


def without_redirects(plugin: Any) -> Any:
    """The plugin with HTTP redirects off, whatever its URL asked for (`?redirect=yes`)."""
    plugin.redirects = False
    return plugin
