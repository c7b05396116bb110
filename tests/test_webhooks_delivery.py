"""Webhooks, part 2: delivery to a real local receiver that verifies signatures.

Retries, a receiver that is down / failing / slow / redirecting, the crash
window between a 2xx and its bookkeeping, bounded concurrency, the SSRF check
at delivery time, and Apprise channels through the same outbox.
"""

from __future__ import annotations

import json
import random
import signal
import socket
import threading
import time

import pytest

from termshift.alerts import delivery, outbox, store, subscriptions
from termshift.alerts.options import claim_lease
from termshift.alerts.signing import generate_secret
from termshift.archive_repo import listing
from termshift.config import WebhooksSettings
from tests.support.alerts import BASE_URL, VersionsRepo, webhook_settings
from tests.support.receiver import Receiver

SECRET = generate_secret()


@pytest.fixture
def receiver():
    with Receiver(secret=SECRET) as running:
        yield running


@pytest.fixture
def data(tmp_path):
    """A versions repository with five new versions of two documents."""
    data = tmp_path / "data"
    repo = VersionsRepo(data)
    text = "# Terms\n\nRule one.\n"
    for number in range(3):
        text += f"\nRule {number + 2} is new.\n"
        repo.record("Acme", "Terms of Service", text)
    repo.record("Bolt", "Privacy Policy", "# Privacy\n\nNothing kept.\n")
    repo.record("Bolt", "Privacy Policy", "# Privacy\n\nEverything kept.\n")
    return data


def subscribe(data, url, **options) -> subscriptions.Subscription:
    db = store.connect(data)
    try:
        return subscriptions.add(db, url, allow_private_targets=["127.0.0.1"], **options)
    finally:
        db.close()


def enqueue(data, settings=None) -> list[str]:
    """Queue every version of the archive, as read back from git (oldest first, like a tracking run)."""
    versions = list(reversed(listing.list_versions(data, limit=1000)))
    return outbox.enqueue_new_versions(data, versions, BASE_URL, settings or webhook_settings()).created


def log(data, **filters) -> list[dict]:
    db = store.connect(data)
    try:
        return outbox.attempts_view(db, limit=1000, **filters)
    finally:
        db.close()


def statuses(data) -> dict[str, int]:
    db = store.connect(data)
    try:
        return {name: count for name, count in outbox.counts(db).items() if count}
    finally:
        db.close()


def test_events_arrive_signed_with_the_stored_body_and_are_logged(data, receiver):
    subscribe(data, receiver.url(), secret=SECRET)
    created = enqueue(data)
    report = delivery.deliver_due(data, webhook_settings())
    assert (report.delivered, report.retried, report.failed) == (5, 0, 0)

    accepted = receiver.accepted()
    assert sorted(d.webhook_id for d in accepted) == sorted(created)
    assert receiver.stats()["invalid"] == 0
    for received in accepted:
        payload = received.json()
        assert payload["id"] == received.webhook_id  # the header and the body agree
        assert received.headers["content-type"] == "application/json"
        assert received.headers["user-agent"].startswith("Termshift-Webhooks/")
        assert abs(int(received.headers["webhook-timestamp"]) - time.time()) < 30
    assert statuses(data) == {"delivered": 5}
    attempts = log(data)
    assert {(a["outcome"], a["status_code"], a["attempt"]) for a in attempts} == {("delivered", 200, 1)}
    assert all(a["duration_ms"] >= 0 for a in attempts)
    # Nothing is due any more: another pass sends nothing.
    assert delivery.deliver_due(data, webhook_settings()).attempted == 0


def test_a_receiver_down_for_a_while_gets_every_event_once_back(data, receiver):
    subscribe(data, receiver.url(), secret=SECRET)
    receiver.stop()
    created = enqueue(data)
    settings = webhook_settings(retry_base=0.2, retry_max=0.4)
    first = delivery.deliver_due(data, settings)
    assert (first.delivered, first.retried) == (0, 5)
    refused = log(data, outcome="retry")
    assert len(refused) == 5 and all("Connection refused" in a["error"] for a in refused)
    assert statuses(data) == {"pending": 5}

    time.sleep(0.5)
    second = delivery.deliver_due(data, settings)  # still down: a second round of retries
    assert second.retried == 5

    receiver.start()  # back on the same port
    report = delivery.drain(data, settings, max_seconds=10)
    assert report.delivered == 5
    assert receiver.accepted_ids() == {event_id: 1 for event_id in created}
    assert statuses(data) == {"delivered": 5}
    assert {a["attempt"] for a in log(data, outcome="delivered")} >= {3}


def test_server_errors_are_retried_with_their_status_code(data, receiver):
    subscribe(data, receiver.url(), secret=SECRET)
    receiver.mode = "error"
    created = enqueue(data)
    report = delivery.deliver_due(data, webhook_settings())
    assert report.retried == 5
    assert {(a["status_code"], a["error"]) for a in log(data)} == {(500, "HTTP 500 Internal Server Error")}
    receiver.mode = "ok"
    delivery.drain(data, webhook_settings(), max_seconds=10)
    assert receiver.accepted_ids() == {event_id: 1 for event_id in created}


def test_a_wrong_secret_is_refused_by_the_receiver_and_retried(data, receiver):
    subscribe(data, receiver.url())  # a generated secret the receiver does not know
    enqueue(data)
    report = delivery.deliver_due(data, webhook_settings())
    assert report.retried == 5
    assert receiver.accepted() == [] and receiver.stats()["invalid"] == 5
    assert {a["status_code"] for a in log(data)} == {401}


def test_events_older_than_max_age_are_marked_failed(data, receiver):
    subscribe(data, receiver.url(), secret=SECRET)
    receiver.stop()
    enqueue(data)
    report = delivery.drain(data, webhook_settings(max_age=0.6, retry_base=0.1, retry_max=0.2), max_seconds=10)
    assert report.failed == 5
    assert statuses(data) == {"failed": 5}
    failed = log(data, outcome="failed")
    assert len(failed) == 5 and all("refused" in a["error"] for a in failed)
    receiver.start()
    assert delivery.drain(data, webhook_settings(), max_seconds=2).attempted == 0  # failed is final


def test_a_slow_receiver_times_out(data, receiver):
    subscribe(data, receiver.url(), secret=SECRET)
    receiver.delay = 1.5
    enqueue(data)
    started = time.monotonic()
    report = delivery.deliver_due(data, webhook_settings(timeout=0.3, concurrency=5))
    assert report.retried == 5
    assert time.monotonic() - started < 1.4  # five in parallel, each cut at 0.3 s
    assert {a["error"] for a in log(data)} == {"timed out after 0.3 s"}


@pytest.mark.parametrize("mode", ["drip-body", "drip-headers"])
def test_a_dripping_receiver_is_cut_at_the_deadline(data, receiver, mode):
    """One byte every 0.25 s never trips a per-read time-out of 1 s; the whole attempt still
    gets 1 s, and an answer not complete by then is a failed attempt, not a delivery."""
    subscribe(data, receiver.url(), secret=SECRET)
    receiver.mode, receiver.drip = mode, 0.25  # the whole answer would take 10 s (body) or 32 s (headers)
    enqueue(data)
    started = time.monotonic()
    report = delivery.deliver_due(data, webhook_settings(timeout=1.0), limit=1)
    elapsed = time.monotonic() - started
    assert (report.delivered, report.retried) == (0, 1)
    # Cut at about 1 s; the margin is for a loaded machine, far below the 10 s of the answer.
    assert elapsed < 5.0, f"the worker was held {elapsed:.1f} s"
    [attempt] = log(data)
    assert attempt["error"] == "timed out after 1 s" and attempt["outcome"] == "retry"
    assert attempt["duration_ms"] < 4000
    assert statuses(data) == {"pending": 5}


def test_an_answer_with_huge_headers_is_refused(data, receiver):
    subscribe(data, receiver.url(), secret=SECRET)
    receiver.mode = "huge-headers"
    enqueue(data)
    report = delivery.deliver_due(data, webhook_settings(), limit=1)
    assert (report.delivered, report.retried) == (0, 1)
    [attempt] = log(data)
    assert attempt["error"] == f"refused the answer: the answer is longer than {delivery.MAX_HEADER_BYTES} bytes"


def test_an_outcome_is_not_recorded_once_the_claim_is_lost(data, receiver):
    """A worker whose attempt outlived its lease: another worker claimed the row meanwhile.
    The first worker's 2xx must not settle the row the second one now owns."""
    subscribe(data, receiver.url(), secret=SECRET)
    enqueue(data)
    options = webhook_settings()
    db = store.connect(data)
    try:
        [first] = outbox.claim(db, "slow-worker", claim_lease(options), event_id=None)
        sent = delivery.send(first, options)
        assert sent.ok
        # The lease runs out while "slow-worker" is busy: another worker claims the row as it
        # will once the lease has passed (claiming "as of" then, rather than sleeping for it,
        # keeps the test independent of how fast a loaded machine sends).
        after_lease = time.time() + claim_lease(options) + 1
        [second] = outbox.claim(db, "other-worker", claim_lease(options), due_by=after_lease,
                                event_id=first.event_id)
        assert second.event_id == first.event_id
        assert outbox.record_success(db, first, time.time(), sent.duration, sent.status_code) is False
        assert outbox.record_failure(db, first, time.time(), 0.1, 500, "HTTP 500", options) == "lost"
        row = db.execute("SELECT status, claim_token FROM outbox WHERE event_id = ?", (first.event_id,)).fetchone()
        assert tuple(row) == ("delivering", "other-worker")  # still the second worker's
        assert outbox.record_success(db, second, time.time(), 0.01, 200) is True
        lost = [a for a in log(data, event_id=first.event_id) if a["outcome"] == "retry"]
        assert len(lost) == 2 and all("the claim expired during the attempt" in a["error"] for a in lost)
    finally:
        db.close()


def test_redirects_are_not_followed(data, receiver):
    subscribe(data, receiver.url(), secret=SECRET)
    receiver.mode = "redirect"
    enqueue(data)
    delivery.deliver_due(data, webhook_settings())
    assert {(a["status_code"], a["error"]) for a in log(data)} == {(307, "redirect to '/redirected' not followed")}
    assert [d.path for d in receiver.deliveries] == ["/hook"] * 5  # nobody went to /redirected


def test_the_target_is_checked_again_at_delivery_time(data, receiver):
    subscribe(data, receiver.url(), secret=SECRET)  # allowed when subscribed
    enqueue(data)
    report = delivery.deliver_due(data, webhook_settings(allow_private_targets=[]))  # no longer allowed
    assert report.retried == 5
    assert receiver.deliveries == []
    assert all(a["error"].startswith("refused: ") and "loopback" in a["error"] for a in log(data))


def test_dns_rebinding_is_caught_at_delivery_time(data, receiver, monkeypatch):
    """The host name resolved to a public address when subscribed and to loopback when sent.

    There is no DNS server to drive here, so the resolver's answers are scripted;
    the HTTP side is real.
    """
    real_getaddrinfo = socket.getaddrinfo
    answer = {"address": "93.184.215.14"}

    def scripted(host, port, *args, **kwargs):
        if host == "hooks.rebind.test":
            return [(socket.AF_INET, socket.SOCK_STREAM, 6, "", (answer["address"], port))]
        return real_getaddrinfo(host, port, *args, **kwargs)

    monkeypatch.setattr(socket, "getaddrinfo", scripted)
    db = store.connect(data)
    subscriptions.add(db, f"http://hooks.rebind.test:{receiver.port}/hook", secret=SECRET)
    db.close()
    enqueue(data)
    answer["address"] = "127.0.0.1"
    report = delivery.deliver_due(data, webhook_settings(allow_private_targets=[]))
    assert report.retried == 5 and receiver.deliveries == []
    assert all("hooks.rebind.test resolves to 127.0.0.1, a loopback address" in a["error"] for a in log(data))


def test_a_crash_between_the_2xx_and_its_bookkeeping_resends_the_same_webhook_id(data, receiver):
    """The one window exactly-once cannot close: the receiver answered 2xx, the sender died
    before writing it down. The event goes again once the claim's lease ends, with the same
    webhook-id, so a receiver that de-duplicates on it processes it once."""
    subscribe(data, receiver.url(), secret=SECRET)
    enqueue(data)
    settings = webhook_settings()
    db = store.connect(data)
    claimed = outbox.claim(db, "crashing-worker", claim_lease(settings))[0]
    sent = delivery.send(claimed, settings)  # ... and the worker dies here, before record_success
    assert sent.ok
    assert delivery.deliver_due(data, settings).delivered == 4  # the claimed one is not due yet
    with db:  # the lease runs out (rather than sleeping through it: the test stays fast under load)
        db.execute("UPDATE outbox SET claimed_until = ? WHERE event_id = ?", (time.time() - 1, claimed.event_id))
    assert delivery.deliver_due(data, settings).delivered == 1
    counts = receiver.accepted_ids()
    assert counts[claimed.event_id] == 2 and set(counts.values()) == {1, 2}
    assert len(counts) == 5  # de-duplicated by webhook-id: five events, each processed once
    resent = [d for d in receiver.accepted() if d.webhook_id == claimed.event_id]
    assert resent[0].body == resent[1].body
    db.close()


def test_concurrency_is_bounded(tmp_path, receiver):
    data = tmp_path / "data"
    repo = VersionsRepo(data)
    versions = [repo.record(f"Service {n}", "Terms of Service", f"Version {n}.\n") for n in range(12)]
    subscribe(data, receiver.url(), secret=SECRET)
    outbox.enqueue_new_versions(data, versions, BASE_URL, webhook_settings())
    receiver.delay = 0.15
    started = time.monotonic()
    report = delivery.deliver_due(data, webhook_settings(concurrency=3))
    elapsed = time.monotonic() - started
    assert report.delivered == 12
    assert receiver.max_in_flight == 3  # parallel, but never more than configured
    assert elapsed >= 4 * 0.15  # 12 requests, 3 at a time


def test_backoff_doubles_from_the_base_up_to_the_cap_with_jitter():
    options = WebhooksSettings(retry_base=60, retry_max=86400)
    rng = random.Random(7)
    for attempt in range(1, 25):
        nominal = min(60 * 2 ** (attempt - 1), 86400)
        delays = [outbox.backoff_delay(attempt, options, rng) for _ in range(50)]
        assert all(0.8 * nominal <= d <= min(1.2 * nominal, 86400) for d in delays)
        assert len(set(delays)) > 1  # jittered
    assert 48 <= outbox.backoff_delay(1, options, rng) <= 72  # about a minute first
    assert outbox.backoff_delay(40, options, rng) <= 86400  # never more than a day


def test_apprise_channels_use_the_same_outbox(data, receiver):
    channel = subscribe(data, f"json://127.0.0.1:{receiver.port}/apprise", kind="apprise")
    assert channel.kind == "apprise" and channel.secret == ""
    receiver.stop()
    created = enqueue(data)
    assert delivery.deliver_due(data, webhook_settings()).retried == 5
    assert all(a["status_code"] is None and a["error"] for a in log(data))
    receiver.start()
    report = delivery.drain(data, webhook_settings(), max_seconds=10)
    assert report.delivered == 5
    notes = receiver.unsigned()
    assert len(notes) == 5 and {d.path for d in notes} == {"/apprise"}
    bodies = [json.loads(d.body) for d in notes]
    assert sorted(next(line for line in b["message"].splitlines() if line.startswith("Event ")) for b in bodies) \
        == sorted(f"Event {event_id}" for event_id in created)
    change = next(b for b in bodies if b["title"] == "Change: Bolt Privacy Policy")
    assert change["message"].startswith("+1/−1 words: “Everything kept.”")
    assert f"{BASE_URL}/Bolt/Privacy%20Policy/" in change["message"]


def test_apprise_channels_never_follow_redirects_even_when_the_url_asks(data, receiver):
    subscribe(data, f"json://127.0.0.1:{receiver.port}/apprise?redirect=yes", kind="apprise")
    receiver.mode = "redirect"
    enqueue(data)
    report = delivery.deliver_due(data, webhook_settings(), limit=1)
    assert (report.delivered, report.retried) == (0, 1)
    assert [d.path for d in receiver.deliveries] == ["/apprise"]  # nobody went to /redirected


def test_dns_rebinding_is_caught_when_apprise_connects(data, receiver, monkeypatch):
    """Subscribed and checked while the name resolved to a public address; at delivery the
    check still sees the public address, and only Apprise's own lookup sees loopback. The
    answers are scripted (no DNS server here); the HTTP side is real."""
    real_getaddrinfo = socket.getaddrinfo
    lookups = {"count": 0}

    def scripted(host, port, *args, **kwargs):
        if host == "notify.rebind.test":
            lookups["count"] += 1
            address = "93.184.215.14" if lookups["count"] <= 2 else "127.0.0.1"  # subscribe, pre-send check
            return [(socket.AF_INET, socket.SOCK_STREAM, 6, "", (address, port))]
        return real_getaddrinfo(host, port, *args, **kwargs)

    monkeypatch.setattr(socket, "getaddrinfo", scripted)
    db = store.connect(data)
    subscriptions.add(db, f"json://notify.rebind.test:{receiver.port}/apprise", kind="apprise")
    db.close()
    enqueue(data)
    report = delivery.deliver_due(data, webhook_settings(allow_private_targets=[]), limit=1)
    assert (report.delivered, report.retried) == (0, 1)
    assert receiver.deliveries == []
    [attempt] = log(data)
    assert attempt["error"].startswith("refused: ") and "notify.rebind.test resolves to 127.0.0.1" in attempt["error"]


def test_a_sigterm_taken_by_a_worker_thread_still_stops_the_pass(data, receiver):
    """The kernel may hand a process's SIGTERM to any of its threads, and Python runs the handler
    in the main thread only, between bytecodes: a main thread blocked in a plain join() ran it
    once the whole pass was over (every event sent despite the stop; seen under load in
    `webhooks deliver`). The pass now returns soon after the in-flight request is answered."""
    subscribe(data, receiver.url(), secret=SECRET)
    assert len(enqueue(data)) == 5
    receiver.delay = 1.0  # 5 s for the whole pass, one request at a time (each within its 5 s time-out)
    stop = threading.Event()
    previous = signal.signal(signal.SIGTERM, lambda *_: stop.set())

    def signal_a_worker_thread() -> None:
        receiver.wait_for(lambda r: len(r.accepted()) >= 1, timeout=30)
        worker = next(thread for thread in threading.enumerate() if thread.name.startswith("webhooks-"))
        signal.pthread_kill(worker.ident, signal.SIGTERM)

    signaller = threading.Thread(target=signal_a_worker_thread)
    signaller.start()
    try:
        report = delivery.deliver_due(data, webhook_settings(concurrency=1, timeout=5), stop=stop)
    finally:
        signaller.join()
        signal.signal(signal.SIGTERM, previous)
    assert stop.is_set()
    assert report.retried == 0 and 1 <= report.delivered <= 3, report  # those in flight, not all five
    assert statuses(data)["pending"] >= 2
