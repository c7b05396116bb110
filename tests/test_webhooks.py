"""Webhooks, part 1: signatures, the SSRF guard, subscriptions and what gets queued.

Delivery itself is in test_webhooks_delivery.py, the CLI and admin API in
test_webhooks_api.py, the crash/restart test in test_webhooks_restart.py.
"""

from __future__ import annotations

import json
import time
from datetime import UTC, datetime

import jsonschema
import pytest

from termshift import ssrf
from termshift.alerts import outbox, payloads, store, subscriptions
from termshift.alerts.signing import (
    SecretError,
    SignatureError,
    generate_secret,
    secret_key,
    sign,
    signature_headers,
    verify,
)
from termshift.archive_repo.listing import VersionEntry
from tests.support.alerts import BASE_URL, Recorded, VersionsRepo, webhook_settings

ALLOW_LOCAL = ["127.0.0.1"]
SCHEMA = payloads.load_schema()


def validate(payload: dict) -> None:
    jsonschema.Draft202012Validator(SCHEMA, format_checker=jsonschema.FormatChecker()).validate(payload)


def queued(data, subscription_id=None) -> list[dict]:
    db = store.connect(data)
    try:
        query = "SELECT event_id, subscription_id, version_id, body FROM outbox"
        rows = db.execute(query + (" WHERE subscription_id = ?" if subscription_id else ""),
                          (subscription_id,) if subscription_id else ()).fetchall()
        return [{**dict(row), "payload": json.loads(row["body"])} for row in rows]
    finally:
        db.close()


def subscribe(data, url="http://127.0.0.1:9/hook", **options):
    db = store.connect(data)
    try:
        return subscriptions.add(db, url, allow_private_targets=ALLOW_LOCAL, **options)
    finally:
        db.close()


# -- signing -------------------------------------------------------------------------------------------

def test_signature_matches_the_standard_webhooks_reference_example():
    # The example of the Standard Webhooks reference libraries.
    signature = sign("whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw", "msg_p5jXN8AQM9LWM0D4loKWxJek", 1614265330,
                     b'{"test": 2432232314}')
    assert signature == "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE="


def test_signatures_agree_with_the_standard_webhooks_library_both_ways():
    """Cross-checked with the specification's own Python library (standardwebhooks)."""
    from datetime import UTC, datetime

    from standardwebhooks import Webhook

    for n in range(20):
        secret = generate_secret()
        body = f'{{"id":"evt_{n}","text":"caf\u00e9 \u2014 {"x" * n}"}}'.encode()
        timestamp = int(time.time()) - n
        ours = signature_headers(secret, f"evt_{n}", body, timestamp)
        Webhook(secret).verify(body, ours, json_parse=False)  # raises WebhookVerificationError if not
        theirs = Webhook(secret).sign(f"evt_{n}", datetime.fromtimestamp(timestamp, UTC), body.decode())
        assert theirs == ours["webhook-signature"]
        assert verify(secret, {**ours, "webhook-signature": theirs}, body) == f"evt_{n}"
    tampered = {**ours, "webhook-signature": sign(secret, "evt_other", timestamp, body)}
    with pytest.raises(Exception, match="(?i)signature"):
        Webhook(secret).verify(body, tampered, json_parse=False)


# The test vectors of the Standard Webhooks specification's reference libraries (their Python
# library's tests): key, message id, timestamp, payload and the expected signature.
SPEC_SECRET = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
SPEC_ID = "msg_p5jXN8AQM9LWM0D4loKWxJek"
SPEC_TIMESTAMP = 1614265330
SPEC_PAYLOAD = b'{"test": 2432232314}'
SPEC_SIGNATURE = "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE="


def test_signing_meets_the_standard_webhooks_test_vectors():
    from standardwebhooks import Webhook

    # The specification's own library signs the vector as published, and so do we.
    theirs = Webhook(SPEC_SECRET).sign(SPEC_ID, datetime.fromtimestamp(SPEC_TIMESTAMP, UTC), SPEC_PAYLOAD.decode())
    assert theirs == SPEC_SIGNATURE == sign(SPEC_SECRET, SPEC_ID, SPEC_TIMESTAMP, SPEC_PAYLOAD)
    headers = signature_headers(SPEC_SECRET, SPEC_ID, SPEC_PAYLOAD, SPEC_TIMESTAMP)
    assert headers == {"webhook-id": SPEC_ID, "webhook-timestamp": str(SPEC_TIMESTAMP),
                       "webhook-signature": SPEC_SIGNATURE}
    assert verify(SPEC_SECRET, headers, SPEC_PAYLOAD, now=SPEC_TIMESTAMP) == SPEC_ID

    # Signed by us now, the library verifies it (its tolerance is 5 minutes of its own clock).
    fresh = signature_headers(SPEC_SECRET, SPEC_ID, SPEC_PAYLOAD)
    assert Webhook(SPEC_SECRET).verify(SPEC_PAYLOAD, fresh) == {"test": 2432232314}

    # The library's negative and multi-signature vectors, through our verify.
    def checked(**changes: str | None) -> str:
        sent = {key: value for key, value in {**headers, **changes}.items() if value is not None}
        return verify(SPEC_SECRET, sent, SPEC_PAYLOAD, now=SPEC_TIMESTAMP)

    with pytest.raises(SignatureError, match="no signature matches"):
        checked(**{"webhook-signature": "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OA="})
    with pytest.raises(SignatureError, match="no signature matches"):  # the same bytes, another version
        checked(**{"webhook-signature": "v2," + SPEC_SIGNATURE.removeprefix("v1,")})
    several = " ".join(["v1,Ceo5qEr07ixe2NLpvHk3FH9bwy/WavXrAFQ/9tdO6mc=",
                        "v2,Ceo5qEr07ixe2NLpvHk3FH9bwy/WavXrAFQ/9tdO6mc=", SPEC_SIGNATURE,
                        "v1,Ceo5qEr07ixe2NLpvHk3FH9bwy/WavXrAFQ/9tdO6mc="])
    assert checked(**{"webhook-signature": several}) == SPEC_ID
    for missing in ("webhook-id", "webhook-timestamp", "webhook-signature"):
        with pytest.raises(SignatureError, match="missing"):
            checked(**{missing: None})
    with pytest.raises(SignatureError, match="not a whole number"):
        checked(**{"webhook-timestamp": "hello"})
    for skew in (-301, 301):  # the specification's 5 minutes, either way
        with pytest.raises(SignatureError, match="outside the 300 s window"):
            verify(SPEC_SECRET, headers, SPEC_PAYLOAD, now=SPEC_TIMESTAMP + skew)
    assert verify(SPEC_SECRET, headers, SPEC_PAYLOAD, now=SPEC_TIMESTAMP + 300) == SPEC_ID


def test_verify_accepts_good_signatures_and_rejects_tampering():
    secret = generate_secret()
    body = b'{"id":"evt_1"}'
    now = int(time.time())
    headers = {"Webhook-Id": "evt_1", "Webhook-Timestamp": str(now),
               "Webhook-Signature": "v1,bm90IGl0 " + sign(secret, "evt_1", now, body)}
    assert verify(secret, headers, body) == "evt_1"  # any one of several signatures may match
    with pytest.raises(SignatureError, match="no signature matches"):
        verify(secret, headers, body + b" ")
    with pytest.raises(SignatureError, match="no signature matches"):
        verify(generate_secret(), headers, body)
    with pytest.raises(SignatureError, match="outside the 300 s window"):
        verify(secret, headers, body, now=now + 301)
    with pytest.raises(SignatureError, match="missing"):
        verify(secret, {"webhook-id": "evt_1"}, body)


def test_secrets_are_whsec_base64_and_bad_ones_say_why():
    assert len(secret_key(generate_secret())) == 32
    assert generate_secret() != generate_secret()
    with pytest.raises(SecretError, match="whsec_"):
        secret_key("s3cret")
    with pytest.raises(SecretError, match="not valid base64"):
        secret_key("whsec_not*base64")
    with pytest.raises(SecretError, match="24 to 64 bytes"):
        secret_key("whsec_c2hvcnQ=")


# -- SSRF guard ----------------------------------------------------------------------------------------

@pytest.mark.parametrize(("url", "reason"), [
    ("http://127.0.0.1:8080/hook", "loopback"),
    ("http://localhost/hook", "loopback"),
    ("http://[::1]/hook", "loopback"),
    ("http://10.1.2.3/hook", "private"),
    ("http://192.168.0.10/hook", "private"),
    ("http://169.254.169.254/latest/meta-data/", "cloud metadata"),
    ("http://[fd00:ec2::254]/latest/meta-data/", "cloud metadata"),
    ("http://169.254.10.10/", "link-local"),
    ("http://0.0.0.0/", "unspecified"),
    ("http://224.0.0.1/", "multicast"),
    ("http://240.0.0.1/", "reserved"),
    ("http://100.64.0.1/", "not a globally routable"),
    ("http://[::ffff:127.0.0.1]/", "a loopback address (127.0.0.1, inside an IPv6 address)"),
    ("http://[64:ff9b::a9fe:a9fe]/", "a cloud metadata address (169.254.169.254, inside an IPv6 address)"),
])
def test_private_and_special_addresses_are_refused(url, reason):
    with pytest.raises(ssrf.UnsafeTargetError, match="resolves to") as refused:
        ssrf.check_target(url, allow=[])
    assert reason in str(refused.value)
    assert url in str(refused.value)


@pytest.mark.parametrize(("url", "reason"), [
    ("ftp://example.org/hook", "only http and https"),
    ("http://user:pw@8.8.8.8/hook", "credentials"),
    ("http:///hook", "no host"),
    ("http://host.invalid/hook", "cannot resolve"),
])
def test_urls_that_are_not_plain_http_targets_are_refused(url, reason):
    with pytest.raises(ssrf.UnsafeTargetError, match=reason):
        ssrf.check_target(url, allow=[])


def test_allow_list_lets_named_hosts_addresses_and_networks_through():
    assert ssrf.check_target("http://127.0.0.1:9/x", allow=["127.0.0.1"]).addresses == ("127.0.0.1",)
    assert ssrf.check_target("http://10.1.2.3/x", allow=["10.0.0.0/8"]).addresses == ("10.1.2.3",)
    assert "127.0.0.1" in ssrf.check_target("http://localhost:9/x", allow=["localhost"]).addresses
    with pytest.raises(ssrf.UnsafeTargetError):
        ssrf.check_target("http://127.0.0.2/x", allow=["127.0.0.1"])
    # A public address needs no allowance (nothing is contacted by the check).
    target = ssrf.check_target("https://8.8.8.8/hook", allow=[])
    assert (target.scheme, target.port, target.addresses) == ("https", 443, ("8.8.8.8",))


def test_subscriptions_are_checked_when_created(tmp_path):
    db = store.connect(tmp_path)
    with pytest.raises(subscriptions.SubscriptionError, match="url: .*cloud metadata"):
        subscriptions.add(db, "http://169.254.169.254/latest/meta-data/")
    with pytest.raises(subscriptions.SubscriptionError, match="url: .*loopback"):
        subscriptions.add(db, "json://127.0.0.1:9/apprise", kind="apprise")
    with pytest.raises(subscriptions.SubscriptionError, match="secret: must look like whsec_"):
        subscriptions.add(db, "http://127.0.0.1:9/x", secret="plain", allow_private_targets=ALLOW_LOCAL)
    assert subscriptions.all_subscriptions(db) == []
    created = subscriptions.add(db, "http://127.0.0.1:9/x", services="A, B", allow_private_targets=ALLOW_LOCAL)
    assert created.secret.startswith("whsec_") and created.services == ("A", "B")
    with pytest.raises(subscriptions.SubscriptionError, match="url: .*private"):
        subscriptions.update(db, created.id, {"url": "http://10.0.0.1/x"})


# -- what gets queued ----------------------------------------------------------------------------------

@pytest.fixture
def history(tmp_path):
    data = tmp_path / "data"
    repo = VersionsRepo(data)
    versions = {
        "first": repo.record("Acme", "Privacy Policy", "# Privacy\n\nWe collect your name.\n"),
        "change": repo.record("Acme", "Privacy Policy", "# Privacy\n\nWe collect your name and address.\n"),
        "technical": repo.record("Acme", "Privacy Policy", "# Privacy\n\nWe collect your name and address!\n",
                                 kind="technical"),
        "other": repo.record("Bolt", "Terms of Service", "# Terms\n\nBe kind.\n"),
    }
    return data, versions


def test_payloads_follow_the_schema_and_say_what_changed(history):
    data, versions = history
    plain = subscribe(data)
    with_diff = subscribe(data, url="http://127.0.0.1:9/diff", include_diff=True)
    result = outbox.enqueue_new_versions(data, versions.values(), BASE_URL, webhook_settings())
    assert result.technical_upgrades == 1
    assert len(result.created) == 6  # 3 new versions × 2 subscriptions

    by_version = {row["version_id"]: row["payload"] for row in queued(data, plain.id)}
    for payload in by_version.values():
        validate(payload)
    change = by_version[versions["change"].id]
    assert change["id"] == f"evt_{plain.uid}_{versions['change'].id}"
    assert change["type"] == "version.recorded"
    assert change["data"]["service_id"] == "Acme"
    assert change["data"]["terms_type"] == "Privacy Policy"
    assert change["data"]["fetch_date"] == versions["change"].fetch_date.strftime("%Y-%m-%dT%H:%M:%SZ")
    assert change["data"]["is_first_record"] is False
    assert change["data"]["stats"] == {"words_added": 2, "words_removed": 0}
    assert change["data"]["changed_sentences"] == ["We collect your name and address."]
    assert change["data"]["links"] == {
        "version": f"{BASE_URL}/Acme/Privacy%20Policy/{versions['change'].id}",
        "diff": f"{BASE_URL}/Acme/Privacy%20Policy/{versions['change'].id}/diff",
        "feed": f"{BASE_URL}/feed/Acme/Privacy%20Policy.atom",
        "service_feed": f"{BASE_URL}/feed/Acme.atom",
    }
    assert "diff" not in change["data"]
    first = by_version[versions["first"].id]["data"]
    assert first["is_first_record"] is True and first["stats"] == {"words_added": 5, "words_removed": 0}

    diffs = {row["version_id"]: row["payload"] for row in queued(data, with_diff.id)}
    for payload in diffs.values():
        validate(payload)
    diff = diffs[versions["change"].id]["data"]["diff"]
    assert diff["truncated"] is False
    assert "-We collect your name.\n+We collect your name and address.\n" in diff["text"]
    assert diffs[versions["first"].id]["data"]["diff"]["text"].startswith("--- /dev/null\n+++ b/Acme/Privacy Policy.md")


def test_the_schema_rejects_what_it_should():
    good = payloads.test_event("evt_abc_test_1", 3)
    validate(good)
    for broken in (
        {**good, "type": "version.deleted"},
        {**good, "extra": 1},
        {**good, "timestamp": "2026-01-01 10:00"},
        {**good, "data": {"subscription_id": "3", "message": "x"}},
        {**good, "type": "version.recorded"},  # a test event's data is not a version's
    ):
        with pytest.raises(jsonschema.ValidationError):
            validate(broken)


def test_enqueueing_the_same_versions_twice_queues_each_event_once(history):
    data, versions = history
    subscribe(data)
    first = outbox.enqueue_new_versions(data, versions.values(), BASE_URL, webhook_settings())
    second = outbox.enqueue_new_versions(data, versions.values(), BASE_URL, webhook_settings())
    assert len(first.created) == 3
    assert second.created == [] and second.duplicates == 3
    assert len(queued(data)) == 3


def test_filters_and_paused_subscriptions(history):
    data, versions = history
    acme_privacy = subscribe(data, services=["Acme"], terms_types=["Privacy Policy"])
    terms_only = subscribe(data, url="http://127.0.0.1:9/terms", terms_types=["Terms of Service"])
    paused = subscribe(data, url="http://127.0.0.1:9/paused", active=False)
    result = outbox.enqueue_new_versions(data, versions.values(), BASE_URL, webhook_settings())
    assert result.unmatched == 0
    assert {r["version_id"] for r in queued(data, acme_privacy.id)} == {versions["first"].id, versions["change"].id}
    assert {r["version_id"] for r in queued(data, terms_only.id)} == {versions["other"].id}
    assert queued(data, paused.id) == []


def test_versions_without_git_text_still_get_an_event(tmp_path):
    """A record the versions repository cannot give back (no repository here) is announced anyway:
    a first record from the record's own content, a change without statistics."""
    subscribe(tmp_path)
    when = datetime(2026, 1, 2, tzinfo=UTC)
    first = Recorded("Acme", "Imprint", "0" * 40, when, is_first_record=True, is_technical_upgrade=False,
                     content="Hello there, world.")
    change = VersionEntry("Acme", "Imprint", "1" * 40, when, is_first_record=False)
    outbox.enqueue_new_versions(tmp_path, [first, change], BASE_URL, webhook_settings())
    payloads = {row["version_id"]: row["payload"] for row in queued(tmp_path)}
    for payload in payloads.values():
        validate(payload)
    assert payloads["0" * 40]["data"]["stats"] == {"words_added": 3, "words_removed": 0}
    assert payloads["1" * 40]["data"]["stats"] is None
    assert payloads["1" * 40]["data"]["summary"] == "Changed (statistics unavailable)."


def test_records_written_by_the_archive_module_are_announced(tmp_path):
    """The tracking run passes `termshift.archive_repo.Version` records straight from `record()`."""
    archive_repo = pytest.importorskip("termshift.archive_repo")
    versions = archive_repo.Archive.open(tmp_path).versions
    recorded = [
        versions.record(archive_repo.Version(
            service_id="Acme", terms_type="Terms of Service", fetch_date=datetime(2026, 3, day, 8, tzinfo=UTC),
            content=text, snapshot_ids=[f"{day:07x}"],
        ))
        for day, text in ((1, "# Terms\n\nBe nice.\n"), (2, "# Terms\n\nBe nice, always.\n"))
    ]
    subscriber = subscribe(tmp_path)
    result = outbox.enqueue_new_versions(tmp_path, recorded, BASE_URL, webhook_settings())
    assert result.created == [payloads.event_id(subscriber.uid, version.id) for version in recorded]
    change = {row["version_id"]: row["payload"] for row in queued(tmp_path)}[recorded[1].id]
    validate(change)
    assert change["data"]["stats"] == {"words_added": 1, "words_removed": 0}
    assert change["data"]["fetch_date"] == "2026-03-02T08:00:00Z"


# -- readable summaries --------------------------------------------------------------------------------

# A privacy page as services publish it; `markdown_of` turns it into the Markdown the tracker records
# (setext headings, `*   ` bullets, `**bold**`, escapes, GFM tables with `<br>`).
PRIVACY_PAGE = """<main>
<h1>Privacy Policy</h1>
<p>UptimeRobot (a service by UptimeRobot s. r. o.) operates <a href="https://uptimerobot.com/">uptimerobot.com</a>.
It is our policy to respect your privacy.</p>
<h2>Sub-processors</h2>
<ul>
<li><strong>Hetzner:</strong> for hosting <a href="https://hetzner.com/legal">monitoring</a> infrastructure.</li>
<li><em>Amazon Web Services:</em> for sending_requests and *storing* data.</li>
</ul>
<hr>
<table><tr><th>Name</th><th>Purpose</th></tr><tr><td>Stripe</td><td>Payments<br>Billing</td></tr></table>
</main>"""


def markdown_of(html: str) -> str:
    lxml_html = pytest.importorskip("lxml.html")
    to_markdown = pytest.importorskip("termshift.trackers.markdown").to_markdown
    return to_markdown(lxml_html.fragment_fromstring(html))


def test_payload_sentences_are_plain_text_without_markdown(tmp_path):
    """A first record starts with a setext heading; a change sits in a bold, linked bullet."""
    first_text = markdown_of(PRIVACY_PAGE)
    assert "==============" in first_text and "**Hetzner:**" in first_text  # what the sentences must not show
    repo = VersionsRepo(tmp_path)
    first = repo.record("UptimeRobot", "Privacy Policy", first_text)
    change = repo.record("UptimeRobot", "Privacy Policy", markdown_of(
        PRIVACY_PAGE.replace("<strong>Hetzner:</strong>", "<strong>Hetzner Online GmbH:</strong>")
        .replace("<td>Stripe</td>", "<td>Stripe, Inc.</td>")
    ))
    subscribe(tmp_path)
    outbox.enqueue_new_versions(tmp_path, [first, change], BASE_URL, webhook_settings())
    payloads = {row["version_id"]: row["payload"] for row in queued(tmp_path)}
    for payload in payloads.values():
        validate(payload)

    first_data = payloads[first.id]["data"]
    assert first_data["changed_sentences"] == [
        "Privacy Policy", "UptimeRobot (a service by UptimeRobot s. r. o.) operates uptimerobot.com.",
    ]
    change_data = payloads[change.id]["data"]
    assert change_data["changed_sentences"] == [
        "Hetzner Online GmbH: for hosting monitoring infrastructure.", "Stripe, Inc. Payments",
    ]
    assert change_data["summary"].endswith(
        ": “Hetzner Online GmbH: for hosting monitoring infrastructure.” “Stripe, Inc. Payments”"
    )


@pytest.mark.parametrize(("markdown", "expected"), [
    ("*   **Hetzner:** for [hosting](https://hetzner.com/legal \"Legal\") servers.",
     "Hetzner: for hosting servers."),
    ("### Cookies ###", "Cookies"),
    ("> 2.  _Amazon_ keeps `logs` for 30 days.", "Amazon keeps logs for 30 days."),
    ("We store sending\\_requests and \\*starred\\* words, see \\[1\\].", "We store sending_requests and *starred* words, see [1]."),
    ("| Stripe | Payments  <br>Billing |", "Stripe Payments"),
    ("[![Logo](logo.png) Acme](https://acme.example/) is ~~not~~ a snake_case_name company.",
     "Logo Acme is not a snake_case_name company."),
    ("Write to <mailto:privacy@acme.example> today.", "Write to privacy@acme.example today."),
])
def test_sentences_lose_their_markdown_syntax(markdown, expected):
    assert payloads.diff_stats(None, markdown).changed_sentences[0] == expected


def test_lines_of_only_syntax_or_punctuation_are_not_sentences():
    text = "Title\n=====\n\n* * *\n\n| --- | --- |\n\n*   \\-\n\n---\n\nThe body."
    assert payloads.diff_stats(None, text).changed_sentences == ("Title", "The body.")
    # A change that only touches the underline says no sentence, rather than "=====".
    assert payloads.diff_stats(text, text.replace("=====", "======")).changed_sentences == ()


def test_sentences_end_before_a_capital_letter_and_never_inside_abbreviations():
    text = ("Our company, UptimeRobot s. r. o. (the Provider), e.g. in Prague, runs it. "
            "**6\\.** Fees are due. Next, visit [our site. See it](https://x.example). Last one.")
    stats = payloads.diff_stats(None, text)
    assert stats.changed_sentences == (
        "Our company, UptimeRobot s. r. o. (the Provider), e.g. in Prague, runs it.", "6. Fees are due.",
    )
    changed = text.replace("Last one.", "Last two.")
    assert payloads.diff_stats(text, changed).changed_sentences == ("Last two.",)
    changed = text.replace("Next,", "Then,")
    assert payloads.diff_stats(text, changed).changed_sentences == ("Then, visit our site. See it.",)


def test_long_sentences_are_cut_between_words_with_an_ellipsis():
    sentence = "We may share " + " ".join(f"category{n} data" for n in range(60)) + "."
    (cut,) = payloads.diff_stats(None, sentence).changed_sentences
    assert len(cut) <= payloads.MAX_SENTENCE_CHARS and cut.endswith("…")
    assert sentence.startswith(cut[:-1]) and sentence[len(cut) - 1] == " "  # the cut falls between two words


@pytest.mark.parametrize("url", [
    "bark://127.0.0.1/device-key",
    "rsyslog://127.0.0.1",
    "mastodon://token@169.254.169.254",
    "ntfy://10.0.0.5/topic",
    "gotify://192.168.1.2/token",
    "json://[::1]:8080/hook",
])
def test_self_hosted_apprise_channels_must_pass_the_address_check(tmp_path, url):
    db = store.connect(tmp_path)
    with pytest.raises(subscriptions.SubscriptionError, match=r"url: .*(loopback|private|link-local|metadata)"):
        subscriptions.add(db, url, kind="apprise")
    assert subscriptions.all_subscriptions(db) == []


def test_vendor_apprise_channels_are_accepted_and_unknown_hostless_ones_refused(tmp_path):
    from termshift.alerts.channels import VENDOR_SCHEMES

    db = store.connect(tmp_path)
    channel = subscriptions.add(db, "discord://4174216298/JHMHI8qBe7bk2ZwO5U711o3dV_js", kind="apprise")
    assert channel.kind == "apprise"
    assert {"bark", "rsyslog", "mastodon", "json", "ntfy", "syslog"}.isdisjoint(VENDOR_SCHEMES)
    with pytest.raises(subscriptions.SubscriptionError, match="syslog:// has no host Termshift can check"):
        subscriptions.add(db, "syslog://", kind="apprise")
