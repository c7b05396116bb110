"""Subscriptions: who hears about which changes, and how.

A subscription is either
- `webhook`: an http(s) URL that receives signed JSON (Standard Webhooks), or
- `apprise`: an Apprise URL (`json://…`, `mailto://…`, `tgram://…`, …) that
  receives a short text notification through the same outbox and retries.

Filters: `services` and `terms_types` (empty = all). Only active subscriptions
get new events; a paused one keeps its pending events until it is resumed.

Public functions take an open connection from `store.connect`; every check on
input raises `SubscriptionError` naming the field and the reason.
"""

from __future__ import annotations

import json
import secrets
import sqlite3
from collections.abc import Iterable, Mapping
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from typing import Any

from termshift import ssrf
from termshift.alerts.channels import ChannelError, check_channel_url
from termshift.alerts.signing import SecretError, generate_secret, secret_key
from termshift.alerts.store import transaction
from termshift.errors import TermshiftError

KINDS = ("webhook", "apprise")

class SubscriptionError(TermshiftError, ValueError):
    """Bad subscription input: `<field>: <reason>`."""


@dataclass(frozen=True)
class Subscription:
    id: int
    uid: str
    kind: str
    url: str
    secret: str
    services: tuple[str, ...]
    terms_types: tuple[str, ...]
    include_diff: bool
    active: bool
    created_at: str

    def matches(self, service_id: str, terms_type: str) -> bool:
        """Does this subscription want events about this document?"""
        return (not self.services or service_id in self.services) and (
            not self.terms_types or terms_type in self.terms_types
        )

    def public(self, reveal_secret: bool = False) -> dict[str, Any]:
        """A JSON-ready view; the secret is masked unless asked for (it is shown once, at creation)."""
        view = asdict(self)
        view["services"] = list(self.services)
        view["terms_types"] = list(self.terms_types)
        if not reveal_secret and self.secret:
            view["secret"] = self.secret[:10] + "…"
        return view


def _from_row(row: sqlite3.Row) -> Subscription:
    return Subscription(
        id=row["id"], uid=row["uid"], kind=row["kind"], url=row["url"], secret=row["secret"],
        services=tuple(json.loads(row["services"])), terms_types=tuple(json.loads(row["terms_types"])),
        include_diff=bool(row["include_diff"]), active=bool(row["active"]), created_at=row["created_at"],
    )


def _names(field: str, values: Iterable[str] | None) -> tuple[str, ...]:
    """Accept repeated values and comma-separated lists; refuse blanks."""
    if values is None:
        return ()
    if isinstance(values, str):
        values = [values]
    names: list[str] = []
    for value in values:
        if not isinstance(value, str):
            raise SubscriptionError(f"{field}: expected names as text, got {value!r}")
        for name in value.split(","):
            name = name.strip()
            if name and name not in names:
                names.append(name)
    return tuple(names)


def guess_kind(url: str) -> str:
    """http(s) URLs are webhooks; any other scheme is taken as an Apprise URL."""
    return "webhook" if url.lower().startswith(("http://", "https://")) else "apprise"


def check_apprise_url(url: str, allow: Iterable[str]) -> None:
    """The Apprise URL must load, and a self-hosted target must pass the SSRF guard (see channels.py)."""
    try:
        check_channel_url(url, allow)
    except ChannelError as error:
        raise SubscriptionError(f"url: {error}") from None


def check_url(kind: str, url: str, allow: Iterable[str]) -> None:
    """Subscription-time target check (delivery checks again: DNS answers change)."""
    if not isinstance(url, str) or not url.strip():
        raise SubscriptionError("url: required")
    if kind == "webhook":
        try:
            ssrf.check_target(url, allow)
        except ssrf.UnsafeTargetError as error:
            raise SubscriptionError(f"url: {error}") from None
    else:
        check_apprise_url(url, allow)


def add(
    db: sqlite3.Connection, url: str, *, secret: str | None = None, services: Iterable[str] | None = None,
    terms_types: Iterable[str] | None = None, include_diff: bool = False, kind: str | None = None,
    active: bool = True, allow_private_targets: Iterable[str] = (),
) -> Subscription:
    """Create a subscription (generating a `whsec_` secret for webhooks when none is given)."""
    url = (url or "").strip()
    kind = kind or guess_kind(url)
    if kind not in KINDS:
        raise SubscriptionError(f"kind: must be one of {', '.join(KINDS)}, got {kind!r}")
    check_url(kind, url, allow_private_targets)
    if kind == "webhook":
        secret = secret or generate_secret()
        try:
            secret_key(secret)
        except SecretError as error:
            raise SubscriptionError(str(error)) from None
    elif secret:
        raise SubscriptionError("secret: Apprise channels are not signed; leave the secret out")
    cursor = db.execute(
        "INSERT INTO subscriptions (uid, kind, url, secret, services, terms_types, include_diff, active, created_at)"
        " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
        (
            secrets.token_hex(8), kind, url, secret or "",
            json.dumps(list(_names("services", services))), json.dumps(list(_names("terms_types", terms_types))),
            int(bool(include_diff)), int(bool(active)),
            datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
        ),
    )
    return get(db, cursor.lastrowid)


def get(db: sqlite3.Connection, subscription_id: int) -> Subscription:
    row = db.execute("SELECT * FROM subscriptions WHERE id = ?", (subscription_id,)).fetchone()
    if row is None:
        raise LookupError(f"no subscription with id {subscription_id}")
    return _from_row(row)


def all_subscriptions(db: sqlite3.Connection, active_only: bool = False) -> list[Subscription]:
    query = "SELECT * FROM subscriptions" + (" WHERE active = 1" if active_only else "") + " ORDER BY id"
    return [_from_row(row) for row in db.execute(query)]


def update(
    db: sqlite3.Connection, subscription_id: int, changes: Mapping[str, Any], *,
    allow_private_targets: Iterable[str] = (),
) -> Subscription:
    """Change url, secret, services, terms_types, include_diff or active; checks as in `add`."""
    current = get(db, subscription_id)
    allowed = {"url", "secret", "services", "terms_types", "include_diff", "active"}
    unknown = set(changes) - allowed
    if unknown:
        raise SubscriptionError(f"{sorted(unknown)[0]}: not a field that can be changed")
    columns: dict[str, Any] = {}
    if "url" in changes:
        check_url(current.kind, changes["url"], allow_private_targets)
        columns["url"] = changes["url"].strip()
    if "secret" in changes:
        if current.kind != "webhook":
            raise SubscriptionError("secret: Apprise channels are not signed")
        try:
            secret_key(changes["secret"])
        except SecretError as error:
            raise SubscriptionError(str(error)) from None
        columns["secret"] = changes["secret"]
    for field in ("services", "terms_types"):
        if field in changes:
            columns[field] = json.dumps(list(_names(field, changes[field])))
    for field in ("include_diff", "active"):
        if field in changes:
            if not isinstance(changes[field], bool):
                raise SubscriptionError(f"{field}: expected true or false, got {changes[field]!r}")
            columns[field] = int(changes[field])
    if columns:
        assignments = ", ".join(f"{column} = ?" for column in columns)
        db.execute(f"UPDATE subscriptions SET {assignments} WHERE id = ?", (*columns.values(), subscription_id))
    return get(db, subscription_id)


def remove(db: sqlite3.Connection, subscription_id: int) -> Subscription:
    """Delete a subscription; its undelivered events are cancelled (the log is kept)."""
    removed = get(db, subscription_id)
    with transaction(db):
        db.execute("DELETE FROM subscriptions WHERE id = ?", (subscription_id,))
        db.execute(
            "UPDATE outbox SET status = 'cancelled', last_error = 'subscription removed'"
            " WHERE subscription_id = ? AND status IN ('pending', 'delivering')",
            (subscription_id,),
        )
    return removed
