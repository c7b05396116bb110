"""The persistent outbox: every (event, subscription) is a row that survives restarts.

Life of a row (see store.py for the table):

    pending ──claim──▶ delivering ──2xx──▶ delivered
       ▲                  │
       └──── retry ◀──────┤ (non-2xx, timeout, refused; backoff with jitter)
                          └──────▶ failed (older than webhooks.max_age)

Guarantees, and their limits:
- Nothing is lost: a row is written (durably) before anyone is told anything,
  and leaves `pending`/`delivering` only as delivered, failed (after
  `max_age`, logged) or cancelled (subscription removed).
- Exactly once to a receiver that answers 2xx, as far as a sender can: a row is
  claimed in a write transaction (two workers never send the same row at the
  same time) and marked delivered in its own transaction right after the 2xx.
  A crash in between (after the receiver answered, before the mark is on disk)
  leaves the row `delivering`; once its lease runs out (2 × `timeout` + 1 s) it is
  sent again with the SAME `webhook-id`, which receivers use to drop the repeat.
  That window is the time of one SQLite commit.
- Duplicate suppression at the source: the event id is derived from the
  subscription and the version, and is the primary key, so enqueueing the same
  versions twice creates nothing new.

The public functions: `enqueue_new_versions` (called after each tracking run),
`enqueue_test_event`, `claim`, `record_success`, `record_failure`,
`backoff_delay`, `events`, `attempts`, `counts`, and `status_summary` (read-only,
for /status and /metrics).
"""

from __future__ import annotations

import logging
import random
import secrets
import sqlite3
import threading
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from termshift.alerts import payloads, store, version_stats
from termshift.alerts.subscriptions import Subscription, all_subscriptions
from termshift.archive_repo.listing import read_texts
from termshift.config import WebhooksSettings
from termshift.sqlite_wal import connect_read_only, has_table

log = logging.getLogger(__name__)

DEFAULT_BASE_URL = "http://localhost:5000"
# The missing web.base_url is said once per process: the setting cannot change while the
# process runs, and a tracking run enqueues in batches (one warning each would be noise).
_base_url_warning_lock = threading.Lock()
_base_url_warning_said = False


@dataclass
class EnqueueResult:
    """What one call to `enqueue_new_versions` did."""

    created: list[str] = field(default_factory=list)  # new event ids
    duplicates: int = 0  # (version, subscription) pairs already in the outbox
    technical_upgrades: int = 0  # versions skipped: technical upgrades are never announced
    unmatched: int = 0  # versions no active subscription asked for


@dataclass(frozen=True)
class Claimed:
    """A row a worker has claimed, with what it needs to send it."""

    event_id: str
    subscription_id: int
    event_type: str
    body: bytes
    attempt: int  # 1 for the first attempt
    created_at: float
    kind: str
    url: str
    secret: str
    token: str


def _warn_once_missing_base_url() -> None:
    global _base_url_warning_said
    with _base_url_warning_lock:
        if _base_url_warning_said:
            return
        _base_url_warning_said = True
    log.warning("web.base_url is not set: webhook links will point to %s", DEFAULT_BASE_URL)


def _resolve_base_url(base_url: str | None) -> str:
    base = (base_url or "").rstrip("/")
    if not base:
        _warn_once_missing_base_url()
        return DEFAULT_BASE_URL
    if not base.startswith(("http://", "https://")):
        raise ValueError(f"base_url: expected an http(s) URL, got {base!r}")
    return base


def enqueue_new_versions(
    data_dir: Path, versions: Iterable[Any], base_url: str, webhooks: WebhooksSettings | None = None,
    now: datetime | None = None, texts: Mapping[str, tuple[str | None, str]] | None = None,
) -> EnqueueResult:
    """Queue one `version.recorded` event per new version and matching active subscription.

    `versions` are `termshift.archive_repo.Version` records, or any objects with
    `service_id`, `terms_type`, `id` (the commit id), `fetch_date` (aware
    datetime), `is_first_record`, `is_technical_upgrade` (e.g.
    `termshift.archive_repo.listing.VersionEntry`); an optional `content` is used when
    git cannot give the text. `base_url` is the viewer's public URL (links in
    payloads: `web.base_url`; empty → a warning and DEFAULT_BASE_URL). `webhooks`
    is the `[webhooks]` section (`Settings.webhooks`; None: the defaults). `texts` maps
    version ids to their (previous text, text) when the caller has them in memory (the
    tracking run's listener, termshift.alerts.listener): those are not read from git
    again. Safe to call twice with the same versions. Sends nothing: run
    `delivery.deliver_due` afterwards.
    """
    result = EnqueueResult()
    wanted = []
    for version in versions:
        if version.is_technical_upgrade:
            result.technical_upgrades += 1
        elif not version.id:
            log.warning("not announced: %s %s of %s has no id (it was not recorded)",
                        version.service_id, version.terms_type, version.fetch_date)
        else:
            wanted.append(version)
    if not wanted:
        return result
    base = _resolve_base_url(base_url)
    webhook_options = webhooks or WebhooksSettings()
    now = now or datetime.now(UTC)
    db = store.connect(data_dir, durable=True)
    try:
        subscribers = all_subscriptions(db, active_only=True)
        plan: list[tuple[Any, list[Subscription]]] = []
        for version in wanted:
            matching = [s for s in subscribers if s.matches(version.service_id, version.terms_type)]
            fresh = [s for s in matching if not _queued(db, payloads.event_id(s.uid, version.id))]
            result.duplicates += len(matching) - len(fresh)
            if not matching:
                result.unmatched += 1
            elif fresh:
                plan.append((version, fresh))
        if not plan:
            return result
        rows = _event_rows(data_dir, db, plan, base, webhook_options, now, texts or {})
        with store.transaction(db):
            for row in rows:
                inserted = db.execute(
                    "INSERT OR IGNORE INTO outbox (event_id, subscription_id, version_id, event_type, body,"
                    " status, created_at, next_attempt_at) VALUES (?, ?, ?, ?, ?, 'pending', ?, ?)",
                    row,
                ).rowcount
                if inserted:
                    result.created.append(row[0])
                else:
                    result.duplicates += 1  # another process queued it meanwhile
    finally:
        db.close()
    return result


def _queued(db: sqlite3.Connection, event_id: str) -> bool:
    return db.execute("SELECT 1 FROM outbox WHERE event_id = ?", (event_id,)).fetchone() is not None


def _event_rows(
    data_dir: Path, db: sqlite3.Connection, plan: list[tuple[Any, list[Subscription]]], base: str,
    webhook_options: WebhooksSettings, now: datetime, known: Mapping[str, tuple[str | None, str]],
) -> list[tuple]:
    """The outbox rows of a plan: payloads with statistics, and diffs where asked for.
    `known`: (previous text, text) of versions in memory; the others are read from git."""
    entries = [version_stats.as_entry(version) for version, _subs in plan]
    stats = version_stats.stats_for(data_dir, db, entries, known)
    for entry, (version, _subs) in zip(entries, plan, strict=True):
        if stats.get(entry.id) is None and entry.is_first_record and getattr(version, "content", None) is not None:
            stats[entry.id] = version_stats.compute(entry, None, version.content)
    wants_diff = [i for i, (_version, subs) in enumerate(plan) if any(s.include_diff for s in subs)]
    texts: dict[int, tuple[str | None, str | None]] = {i: known[entries[i].id] for i in wants_diff
                                                        if entries[i].id in known}
    unread = [i for i in wants_diff if i not in texts]
    if unread:
        texts.update(zip(unread, read_texts(data_dir, [entries[i] for i in unread]), strict=True))
    timestamp = now.timestamp()
    rows = []
    for index, ((version, subs), entry) in enumerate(zip(plan, entries, strict=True)):
        diff = None
        if index in texts:
            previous, text = texts[index]
            text = text if text is not None else getattr(version, "content", "") or ""
            diff = payloads.unified_diff(
                None if entry.is_first_record else previous, text, entry.path, webhook_options.include_diff_max_bytes,
            )
        for subscription in subs:
            identifier = payloads.event_id(subscription.uid, entry.id)
            payload = payloads.version_event(
                identifier, entry, stats.get(entry.id), base, diff if subscription.include_diff else None, now,
            )
            body = payloads.encode(payload)
            rows.append((identifier, subscription.id, entry.id, payloads.VERSION_RECORDED, body, timestamp, timestamp))
    return rows


def enqueue_test_event(data_dir: Path, subscription: Subscription) -> str:
    """Queue a `webhook.test` event for one subscription (due now); return its id."""
    identifier = f"evt_{subscription.uid}_test_{secrets.token_hex(6)}"
    body = payloads.encode(payloads.test_event(identifier, subscription.id))
    now = time.time()
    db = store.connect(data_dir, durable=True)
    try:
        db.execute(
            "INSERT INTO outbox (event_id, subscription_id, event_type, body, status, created_at, next_attempt_at)"
            " VALUES (?, ?, ?, ?, 'pending', ?, ?)",
            (identifier, subscription.id, payloads.WEBHOOK_TEST, body, now, now),
        )
    finally:
        db.close()
    return identifier


def claim(
    db: sqlite3.Connection, token: str, lease: float, limit: int = 1, due_by: float | None = None,
    event_id: str | None = None,
) -> list[Claimed]:
    """Take up to `limit` rows due by `due_by` (default: now) for this worker, atomically.

    Due: pending with `next_attempt_at` reached, or delivering with an expired
    lease (its worker died). Rows of paused subscriptions wait.
    """
    now = time.time()
    due_by = now if due_by is None else due_by
    only_event = " AND o.event_id = ?" if event_id else ""
    with store.transaction(db):
        # Two queries rather than one with OR, so that each walks its index in order
        # instead of sorting every pending row on each claim.
        rows = []
        for condition in ("o.status = 'delivering' AND o.claimed_until <= ?",
                          "o.status = 'pending' AND o.next_attempt_at <= ?"):
            order = "o.claimed_until" if "claimed_until" in condition else "o.next_attempt_at"
            parameters = (due_by, event_id, limit - len(rows)) if event_id else (due_by, limit - len(rows))
            rows += db.execute(
                "SELECT o.event_id, o.subscription_id, o.event_type, o.body, o.attempts, o.created_at,"
                " s.kind, s.url, s.secret FROM outbox o JOIN subscriptions s ON s.id = o.subscription_id"
                f" WHERE {condition} AND s.active = 1{only_event} ORDER BY {order} LIMIT ?",
                parameters,
            ).fetchall()
            if len(rows) >= limit:
                break
        db.executemany(
            "UPDATE outbox SET status = 'delivering', claim_token = ?, claimed_until = ?, attempts = attempts + 1"
            " WHERE event_id = ?",
            [(token, now + lease, row["event_id"]) for row in rows],
        )
    return [
        Claimed(
            event_id=row["event_id"], subscription_id=row["subscription_id"], event_type=row["event_type"],
            body=bytes(row["body"]), attempt=row["attempts"] + 1, created_at=row["created_at"],
            kind=row["kind"], url=row["url"], secret=row["secret"], token=token,
        )
        for row in rows
    ]


def _log_attempt(
    db: sqlite3.Connection, claimed: Claimed, started: float, duration: float, status_code: int | None,
    error: str | None, outcome: str,
) -> None:
    db.execute(
        "INSERT INTO deliveries (event_id, subscription_id, attempt, started_at, duration_ms, status_code, error,"
        " outcome) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
        (claimed.event_id, claimed.subscription_id, claimed.attempt, started, duration * 1000, status_code,
         error, outcome),
    )


def record_success(
    db: sqlite3.Connection, claimed: Claimed, started: float, duration: float, status_code: int | None,
) -> bool:
    """Mark delivered, if this worker still holds the claim; return whether it did.

    A claim lost meanwhile (the attempt outlived its lease, and another worker may
    already be sending the event again) is not overwritten: the attempt is logged,
    as a retry, and the worker holding the claim now decides.
    """
    with store.transaction(db):
        updated = db.execute(
            "UPDATE outbox SET status = 'delivered', delivered_at = ?, claim_token = NULL, claimed_until = NULL,"
            " last_status_code = ?, last_error = NULL WHERE event_id = ? AND claim_token = ? AND status = 'delivering'",
            (started + duration, status_code, claimed.event_id, claimed.token),
        ).rowcount
        if updated:
            _log_attempt(db, claimed, started, duration, status_code, None, "delivered")
        else:
            _log_attempt(db, claimed, started, duration, status_code, _lost_claim(claimed, duration), "retry")
    if not updated:
        log.warning("webhook %s: answered after its claim was lost (%.1f s); not recorded as delivered",
                    claimed.event_id, duration)
    return bool(updated)


def _lost_claim(claimed: Claimed, duration: float, error: str | None = None) -> str:
    what = f"{error}; " if error else "answered 2xx, but "
    return f"{what}the claim expired during the attempt ({duration:.1f} s): left to the worker holding it now"


def backoff_delay(attempt: int, webhook_options: WebhooksSettings, rng: random.Random | None = None) -> float:
    """Seconds before retrying after failed attempt number `attempt` (1, 2, …).

    retry_base × 2^(attempt−1), capped at retry_max, with ±20 % jitter so that
    events queued together do not retry in lockstep against a recovering receiver.
    """
    rng = rng or random
    exponent = min(attempt - 1, 60)
    delay = min(webhook_options.retry_base * 2**exponent, webhook_options.retry_max)
    return min(delay * rng.uniform(0.8, 1.2), webhook_options.retry_max)


def record_failure(
    db: sqlite3.Connection, claimed: Claimed, started: float, duration: float, status_code: int | None,
    error: str, webhook_options: WebhooksSettings, now: float | None = None,
) -> str:
    """Schedule a retry, or give up once the event is older than `max_age`; return the outcome
    ("retry", "failed", or "lost" when this worker no longer holds the claim: nothing changed).

    The last retry is placed at the deadline itself, so a receiver that comes
    back just before it still gets the event. Only the worker holding the claim
    may reschedule (if its lease expired and another worker took over, that one decides).
    """
    now = time.time() if now is None else now
    deadline = claimed.created_at + webhook_options.max_age
    outcome = "failed" if now >= deadline else "retry"
    next_attempt = min(now + backoff_delay(claimed.attempt, webhook_options), deadline)
    with store.transaction(db):
        updated = db.execute(
            "UPDATE outbox SET status = ?, next_attempt_at = ?, claim_token = NULL, claimed_until = NULL,"
            " last_status_code = ?, last_error = ? WHERE event_id = ? AND claim_token = ? AND status = 'delivering'",
            ("failed" if outcome == "failed" else "pending", next_attempt, status_code, error,
             claimed.event_id, claimed.token),
        ).rowcount
        if not updated:
            error, outcome = _lost_claim(claimed, duration, error), "lost"
        _log_attempt(db, claimed, started, duration, status_code, error, "retry" if outcome == "lost" else outcome)
    return outcome


def hurry_retries(db: sqlite3.Connection, subscription_id: int, now: float | None = None) -> int:
    """A receiver answered again after failures: bring its waiting retries forward to now."""
    now = time.time() if now is None else now
    with store.transaction(db):
        return db.execute(
            "UPDATE outbox SET next_attempt_at = ? WHERE subscription_id = ? AND status = 'pending'"
            " AND attempts > 0 AND next_attempt_at > ?",
            (now, subscription_id, now),
        ).rowcount


def next_due(db: sqlite3.Connection) -> float | None:
    """When the next row becomes due (a retry time or a lease expiry), or None when all are settled."""
    row = db.execute(
        "SELECT MIN(CASE WHEN o.status = 'pending' THEN o.next_attempt_at ELSE o.claimed_until END)"
        " FROM outbox o JOIN subscriptions s ON s.id = o.subscription_id"
        " WHERE s.active = 1 AND o.status IN ('pending', 'delivering')"
    ).fetchone()
    return row[0]


STATUSES = ("pending", "delivering", "delivered", "failed", "cancelled")


def counts(db: sqlite3.Connection) -> dict[str, int]:
    """Events per status: {"pending": n, "delivering": n, "delivered": n, "failed": n, "cancelled": n}."""
    found = dict.fromkeys(STATUSES, 0)
    for row in db.execute("SELECT status, COUNT(*) FROM outbox GROUP BY status"):
        found[row[0]] = row[1]
    return found


def status_summary(data_dir: Path) -> tuple[dict[str, int], float | None] | None:
    """(events per status, creation time of the oldest event pending or in flight) for the
    status page and /metrics; None when there is no alerts database. Read-only: creates and
    changes nothing; a database that cannot be read reads as no events (`store.unreadable`
    says why)."""
    found = dict.fromkeys(STATUSES, 0)
    oldest = None
    try:
        db = connect_read_only(store.database_path(data_dir))
        if db is None:
            return None
        try:
            rows = db.execute(
                "SELECT status, COUNT(*) AS n, MIN(created_at) AS oldest FROM outbox GROUP BY status"
            ).fetchall() if has_table(db, "outbox") else []
        finally:
            db.close()
    except sqlite3.Error:
        rows = []
    for row in rows:
        found[row["status"]] = row["n"]
        if row["status"] in ("pending", "delivering") and row["oldest"] is not None:
            oldest = row["oldest"] if oldest is None else min(oldest, row["oldest"])
    return found, oldest


def _iso(timestamp: float | None) -> str | None:
    if timestamp is None:
        return None
    return datetime.fromtimestamp(timestamp, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def events_view(
    db: sqlite3.Connection, status: str | None = None, subscription_id: int | None = None, limit: int = 100,
) -> list[dict[str, Any]]:
    """Outbox rows, newest first, as JSON-ready dicts (for the CLI and the viewer)."""
    where, parameters = _filters({"status": status, "subscription_id": subscription_id})
    rows = db.execute(
        "SELECT event_id, subscription_id, version_id, event_type, status, attempts, created_at,"
        f" next_attempt_at, delivered_at, last_status_code, last_error FROM outbox {where}"
        " ORDER BY created_at DESC, event_id LIMIT ?",
        (*parameters, limit),
    )
    return [
        {
            **dict(row),
            "created_at": _iso(row["created_at"]),
            "next_attempt_at": _iso(row["next_attempt_at"]) if row["status"] in ("pending", "delivering") else None,
            "delivered_at": _iso(row["delivered_at"]),
        }
        for row in rows
    ]


def attempts_view(
    db: sqlite3.Connection, outcome: str | None = None, subscription_id: int | None = None,
    event_id: str | None = None, limit: int = 100,
) -> list[dict[str, Any]]:
    """The delivery log, one dict per attempt, newest first."""
    where, parameters = _filters({"outcome": outcome, "subscription_id": subscription_id, "event_id": event_id})
    rows = db.execute(
        "SELECT event_id, subscription_id, attempt, started_at, duration_ms, status_code, error, outcome"
        f" FROM deliveries {where} ORDER BY id DESC LIMIT ?",
        (*parameters, limit),
    )
    return [{**dict(row), "started_at": _iso(row["started_at"]), "duration_ms": round(row["duration_ms"], 1)}
            for row in rows]


def _filters(conditions: dict[str, Any]) -> tuple[str, list[Any]]:
    used = {column: value for column, value in conditions.items() if value is not None}
    if not used:
        return "", []
    return "WHERE " + " AND ".join(f"{column} = ?" for column in used), list(used.values())


def delivery_log(
    data_dir: Path, status: str | None = None, subscription_id: int | None = None, limit: int = 100,
) -> dict[str, Any]:
    """What the viewer shows: counts per status, the latest events and the latest attempts."""
    db = store.connect(data_dir)
    try:
        return {
            "counts": counts(db),
            "events": events_view(db, status=status, subscription_id=subscription_id, limit=limit),
            "attempts": attempts_view(db, subscription_id=subscription_id, limit=limit),
        }
    finally:
        db.close()
