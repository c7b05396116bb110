"""Server-side request forgery guard: which network addresses Termshift may contact.

Two kinds of untrusted party choose URLs that Termshift then contacts: a
subscriber chooses the URL we POST webhooks to (`termshift.alerts`), and a
tracked page chooses where its redirects, frames, scripts and images lead
(`termshift.trackers`). Without a guard either could make Termshift talk to the
cloud metadata service, the database on localhost or the office LAN. Both use
these rules (this module sits at the bottom layer so that both can):

- only `http` and `https`, no credentials in the URL;
- resolve the host and refuse when ANY address is loopback, private,
  link-local, multicast, reserved, unspecified, not globally routable, or a
  cloud metadata address (IPv4 inside IPv6 forms such as `::ffff:127.0.0.1`,
  NAT64, 6to4 and Teredo are unwrapped first);
- unless the host name, or the address (or a network containing it) is listed in
  the allow-list: `webhooks.allow_private_targets` for webhooks and Apprise
  channels, `fetcher.allow_private_targets` for the page fetchers.

Webhooks: the check runs when a subscription is created AND before every
delivery, and the delivery connects to the very address that was checked (see
`alerts/delivery.py`), so a DNS answer that changes in between (DNS rebinding)
cannot slip through. Redirects are never followed.

Fetchers: every request (each redirect hop, each browser subresource) is checked
before it is sent; see `trackers/fetch_http.py` and `trackers/fetch_browser.py`.
"""

from __future__ import annotations

import ipaddress
import socket
from collections.abc import Iterable
from dataclasses import dataclass
from urllib.parse import SplitResult, urlsplit

from termshift.errors import TermshiftError

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address

# Metadata services answer on addresses that are also link-local or private,
# but they are named explicitly so the refusal says what was at stake.
METADATA_ADDRESSES = {
    ipaddress.ip_address("169.254.169.254"),  # AWS, GCP, Azure, OpenStack…
    ipaddress.ip_address("fd00:ec2::254"),  # AWS over IPv6
    ipaddress.ip_address("100.100.100.200"),  # Alibaba Cloud
    ipaddress.ip_address("169.254.170.2"),  # AWS ECS task metadata
}
NAT64_PREFIX = ipaddress.ip_network("64:ff9b::/96")


WEBHOOKS_SETTING = "webhooks.allow_private_targets"
FETCHER_SETTING = "fetcher.allow_private_targets"


class UnsafeTargetError(TermshiftError, ValueError):
    """A target we refuse to contact; the message names the URL and the reason."""


class UnresolvableHostError(UnsafeTargetError):
    """The host name does not resolve: nothing can be contacted (a fetcher reports it as ENOTFOUND)."""


@dataclass(frozen=True)
class Target:
    """A checked URL and the address to connect to."""

    url: str
    scheme: str
    host: str
    port: int
    addresses: tuple[str, ...]  # every checked IP address, in resolver order


def parse_allow_list(entries: Iterable[str]) -> tuple[set[str], list[ipaddress.IPv4Network | ipaddress.IPv6Network]]:
    """Split the allow list into lower-cased host names and IP networks (an address is a /32 or /128)."""
    hosts: set[str] = set()
    networks = []
    for entry in entries:
        entry = str(entry).strip().strip("[]")
        if not entry:
            continue
        try:
            networks.append(ipaddress.ip_network(entry, strict=False))
        except ValueError:
            hosts.add(entry.lower().rstrip("."))
    return hosts, networks


def embedded_ipv4(address: IPAddress) -> ipaddress.IPv4Address | None:
    """The IPv4 address an IPv6 address stands for (mapped, NAT64, 6to4, Teredo client), if any."""
    if not isinstance(address, ipaddress.IPv6Address):
        return None
    if address.ipv4_mapped is not None:
        return address.ipv4_mapped
    if address in NAT64_PREFIX:
        return ipaddress.IPv4Address(int(address) & 0xFFFFFFFF)
    if address.sixtofour is not None:
        return address.sixtofour
    if address.teredo is not None:
        return address.teredo[1]
    return None


def refusal_reason(address: IPAddress) -> str | None:
    """Why `address` must not be contacted, or None when it is a public unicast address."""
    inner = embedded_ipv4(address)
    if inner is not None:
        reason = refusal_reason(inner)
        return f"{reason} ({inner}, inside an IPv6 address)" if reason else None
    checks = [
        (address in METADATA_ADDRESSES, "a cloud metadata address"),
        (address.is_unspecified, "an unspecified address"),
        (address.is_loopback, "a loopback address"),
        (address.is_link_local, "a link-local address"),
        (address.is_multicast, "a multicast address"),
        (address.is_reserved, "a reserved address"),
        (address.is_private, "a private address"),
        (not address.is_global, "not a globally routable address"),
    ]
    for refused, reason in checks:
        if refused:
            return reason
    return None


def split_url(url: str) -> tuple[SplitResult, str, int]:
    """Parse a webhook URL; UnsafeTargetError when it is not a plain http(s) URL."""
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError as error:
        raise UnsafeTargetError(f"{url}: not a valid URL ({error})") from None
    if parts.scheme not in ("http", "https"):
        raise UnsafeTargetError(f"{url}: only http and https URLs can receive webhooks")
    if not parts.hostname:
        raise UnsafeTargetError(f"{url}: the URL has no host")
    if parts.username is not None or parts.password is not None:
        raise UnsafeTargetError(f"{url}: credentials in the URL are not supported; the signature authenticates us")
    port = port or (443 if parts.scheme == "https" else 80)
    return parts, parts.hostname.lower().rstrip("."), port


def resolve(host: str, port: int) -> list[tuple[int, IPAddress]]:
    """Every (family, address) the host name resolves to, in resolver order, without duplicates."""
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except (socket.gaierror, UnicodeError) as error:
        raise UnresolvableHostError(f"{host}: cannot resolve the host name ({error})") from None
    seen: list[tuple[int, IPAddress]] = []
    for family, _type, _proto, _name, sockaddr in infos:
        address = ipaddress.ip_address(sockaddr[0].split("%")[0])
        if (family, address) not in seen:
            seen.append((family, address))
    return seen


def check_address(
    url: str, host: str, address: IPAddress, allow: Iterable[str], setting: str = WEBHOOKS_SETTING,
) -> None:
    """Raise UnsafeTargetError unless `address` is public or allowed for `host` (`setting` names the allow-list)."""
    hosts, networks = parse_allow_list(allow)
    if host in hosts or any(address in network for network in networks if network.version == address.version):
        return
    inner = embedded_ipv4(address)
    if inner is not None and any(inner in network for network in networks if network.version == 4):
        return
    reason = refusal_reason(address)
    if reason:
        raise UnsafeTargetError(
            f"{url}: {host} resolves to {address}, {reason}; add it to {setting} to allow it"
        )


def check_target(url: str, allow: Iterable[str] = ()) -> Target:
    """Resolve and check `url`; return the addresses to connect to, or raise UnsafeTargetError.

    All resolved addresses must pass, not just the first: otherwise a host that
    resolves to one public and one private address would be a way in.
    """
    allow = list(allow)
    parts, host, port = split_url(url)
    addresses = resolve(host, port)
    if not addresses:
        raise UnsafeTargetError(f"{url}: {host} has no address")
    for _family, address in addresses:
        check_address(url, host, address, allow)
    return Target(
        url=url, scheme=parts.scheme, host=host, port=port,
        addresses=tuple(str(address) for _family, address in addresses),
    )


def check_host(
    url: str, host: str, port: int, allow: Iterable[str] = (), setting: str = WEBHOOKS_SETTING,
) -> tuple[str, ...]:
    """The same check for a URL whose connection someone else makes (Apprise, Scrapy, Chromium).

    Every address `host` resolves to must pass; returns them (as strings, resolver order).
    """
    allow = list(allow)
    host = host.lower().rstrip(".").strip("[]")
    addresses = resolve(host, port)
    if not addresses:
        raise UnsafeTargetError(f"{url}: {host} has no address")
    for _family, address in addresses:
        check_address(url, host, address, allow, setting)
    return tuple(str(address) for _family, address in addresses)


def check_fetch_url(url: str, allow: Iterable[str] = ()) -> tuple[str, ...]:
    """Check a URL a fetcher is about to request (a declared page, a redirect hop, a subresource).

    Only http(s) URLs are checked (other schemes — data:, blob:, about: — do not reach
    the network through a host); raises UnsafeTargetError naming `fetcher.allow_private_targets`.
    """
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError as error:
        raise UnsafeTargetError(f"{url}: not a valid URL ({error})") from None
    if parts.scheme not in ("http", "https", "ws", "wss"):
        return ()
    if not parts.hostname:
        raise UnsafeTargetError(f"{url}: the URL has no host")
    port = port or (443 if parts.scheme in ("https", "wss") else 80)
    return check_host(url, parts.hostname, port, allow, FETCHER_SETTING)
