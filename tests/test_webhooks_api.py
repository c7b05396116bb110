"""Webhooks, part 3: `termshift webhooks …` and the admin JSON API, against a real receiver."""

from __future__ import annotations

import json
import re

import pytest
from click.testing import CliRunner
from flask import Flask

from termshift.alerts import outbox
from termshift.alerts.signing import generate_secret
from termshift.archive_repo import listing
from termshift.commands.webhooks import webhooks_group
from termshift.config import load_settings
from termshift.web.feed_routes import blueprint
from tests.support.alerts import BASE_URL, VersionsRepo
from tests.support.receiver import Receiver

SECRET = generate_secret()
# The configuration's way to set webhooks.*: TERMSHIFT_WEBHOOKS_<KEY>.
ENVIRONMENT = {"TERMSHIFT_WEBHOOKS_ALLOW_PRIVATE_TARGETS": "127.0.0.1", "TERMSHIFT_WEBHOOKS_TIMEOUT": "2",
               "TERMSHIFT_CONFIG": ""}


@pytest.fixture
def receiver():
    with Receiver(secret=SECRET) as running:
        yield running


def run(data, *arguments: str, environment=None):
    result = CliRunner().invoke(webhooks_group, [*arguments, "--data", str(data)], env=environment or ENVIRONMENT,
                                catch_exceptions=False)
    return result


def test_the_cli_manages_subscriptions_and_shows_the_log(tmp_path, receiver, monkeypatch):
    monkeypatch.chdir(tmp_path)  # no termshift.toml around
    data = tmp_path / "data"

    added = run(data, "add", receiver.url(), "--secret", SECRET, "--services", "Acme", "--types",
                "Privacy Policy,Terms of Service", "--include-diff")
    assert added.exit_code == 0, added.output
    assert "added subscription 1" in added.output
    assert "secret (shown once" not in added.output  # the caller gave it
    generated = run(data, "add", receiver.url("/other"))
    assert re.search(r"secret \(shown once, give it to the receiver\): whsec_\S+", generated.output)

    listed = run(data, "list")
    assert "1\twebhook\t" + receiver.url() + "\tactive include-diff\tservices=Acme types=Privacy Policy,Terms of Service" \
        in listed.output
    assert f"2\twebhook\t{receiver.url('/other')}\tactive\tall changes" in listed.output
    as_json = json.loads(run(data, "list", "--json").output)
    assert [s["id"] for s in as_json] == [1, 2] and as_json[0]["secret"].endswith("…")

    tested = run(data, "test", "1")
    assert tested.exit_code == 0, tested.output
    assert re.match(r"evt_\w+_test_\w+: delivered status=200 ", tested.output)
    assert [d.json()["type"] for d in receiver.accepted()] == ["webhook.test"]

    failing = run(data, "test", "2")  # the receiver does not know subscription 2's secret
    assert failing.exit_code == 1 and "status=401" in failing.output

    # A new version for Acme reaches subscription 1 (filtered) and 2 (everything), with `deliver`.
    repo = VersionsRepo(data)
    version = repo.record("Acme", "Privacy Policy", "# Privacy\n\nNothing.\n")
    outbox.enqueue_new_versions(data, listing.list_versions(data), BASE_URL)
    delivered = run(data, "deliver")
    assert "delivered=1 retry=1 failed=0" in delivered.output
    diff_payload = next(d.json() for d in receiver.accepted() if d.json()["type"] == "version.recorded")
    assert diff_payload["data"]["version_id"] == version.id and "diff" in diff_payload["data"]

    # Subscription 2's test event and version event wait for a retry (its receiver said 401).
    log = run(data, "deliveries")
    assert log.output.splitlines()[0] == "pending=2 delivering=0 delivered=2 failed=0 cancelled=0"
    pending = run(data, "deliveries", "--status", "pending").output.splitlines()[1:]
    assert len(pending) == 2 and all("\tsub=2\tpending\tattempts=1\t401\t" in line for line in pending)
    attempts = run(data, "deliveries", "--attempts", "--subscription", "2").output
    assert attempts.count("\tretry\t401\t") == 2  # the failed test and the version event

    paused = run(data, "pause", "2")
    assert "paused" in paused.output
    removed = run(data, "remove", "2")
    assert removed.exit_code == 0 and "removed subscription 2" in removed.output
    assert "pending=0 delivering=0 delivered=2 failed=0 cancelled=2" in run(data, "deliveries").output
    assert run(data, "remove", "2").exit_code == 1


def test_the_cli_refuses_unsafe_targets_and_bad_secrets(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    data = tmp_path / "data"
    refused = run(data, "add", "http://169.254.169.254/latest/meta-data/")
    assert refused.exit_code == 1
    assert "url: http://169.254.169.254/latest/meta-data/: 169.254.169.254 resolves to 169.254.169.254, " \
           "a cloud metadata address" in refused.output
    local = run(data, "add", "http://127.0.0.1:9/hook", environment={"TERMSHIFT_CONFIG": ""})
    assert local.exit_code == 1 and "loopback" in local.output
    bad_secret = run(data, "add", "http://127.0.0.1:9/hook", "--secret", "hunter2")
    assert bad_secret.exit_code == 1 and "secret: must look like whsec_<base64>" in bad_secret.output
    assert "no subscriptions" in run(data, "list").output


# -- admin API -----------------------------------------------------------------------------------------

def make_client(data, token="s3cret-token"):
    settings = load_settings(environ={}, overrides={
        "": {"data": str(data), "declarations": str(data / "no-declarations")},
        "web": {"base_url": BASE_URL},
        "webhooks": {"allow_private_targets": ["127.0.0.1"]},
    })
    app = Flask(__name__)
    app.config.update(SETTINGS=settings, ADMIN_TOKEN=token)
    app.register_blueprint(blueprint)
    return app.test_client()


AUTH = {"Authorization": "Bearer s3cret-token"}


def test_admin_api_is_off_without_a_token_and_guarded_with_one(tmp_path):
    assert make_client(tmp_path, token="").get("/api/admin/webhooks", headers=AUTH).status_code == 404
    client = make_client(tmp_path)
    missing = client.get("/api/admin/webhooks")
    assert missing.status_code == 401 and missing.headers["WWW-Authenticate"].startswith("Bearer")
    assert client.get("/api/admin/webhooks", headers={"Authorization": "Bearer nope"}).status_code == 403
    assert client.post("/api/admin/webhooks", json={"url": "http://127.0.0.1:9/x"},
                       headers={"Authorization": "Basic czNjcmV0"}).status_code == 401
    assert client.get("/api/admin/webhooks", headers=AUTH).get_json() == {"subscriptions": []}
    assert client.get("/feed.atom").status_code == 200  # feeds need no token


def test_admin_api_manages_subscriptions_and_shows_deliveries(tmp_path, receiver):
    client = make_client(tmp_path)
    created = client.post("/api/admin/webhooks", headers=AUTH, json={
        "url": receiver.url(), "secret": SECRET, "services": ["Acme"], "include_diff": True,
    })
    assert created.status_code == 201
    body = created.get_json()
    assert body["secret"] == SECRET and body["services"] == ["Acme"] and body["include_diff"] is True
    subscription_id = body["id"]

    assert client.get(f"/api/admin/webhooks/{subscription_id}", headers=AUTH).get_json()["secret"].endswith("…")
    for bad, message in (
        ({"url": "http://10.0.0.1/x"}, "url: http://10.0.0.1/x: 10.0.0.1 resolves to 10.0.0.1, a private address"),
        ({"url": receiver.url(), "secret": "x"}, "secret: must look like whsec_"),
        ({"url": receiver.url(), "colour": "red"}, "colour: unknown field"),
        ({"url": receiver.url(), "active": "yes"}, "active: expected true or false"),
        ({}, "url: required"),
    ):
        refused = client.post("/api/admin/webhooks", headers=AUTH, json=bad)
        assert refused.status_code == 400 and refused.get_json()["error"].startswith(message), refused.get_json()
    assert client.post("/api/admin/webhooks", headers=AUTH, data="url=x").status_code == 400

    tested = client.post(f"/api/admin/webhooks/{subscription_id}/test", headers=AUTH).get_json()
    assert tested["outcome"] == "delivered" and tested["status_code"] == 200
    assert receiver.accepted()[0].webhook_id == tested["event_id"]

    paused = client.patch(f"/api/admin/webhooks/{subscription_id}", headers=AUTH, json={"active": False})
    assert paused.status_code == 200 and paused.get_json()["active"] is False
    assert client.post(f"/api/admin/webhooks/{subscription_id}/test", headers=AUTH).status_code == 409
    bad_patch = client.patch(f"/api/admin/webhooks/{subscription_id}", headers=AUTH, json={"kind": "apprise"})
    assert bad_patch.status_code == 400 and bad_patch.get_json()["error"] == "kind: not a field that can be changed"

    log = client.get("/api/admin/webhooks/deliveries", headers=AUTH).get_json()
    assert log["counts"]["delivered"] == 1
    assert log["attempts"][0]["event_id"] == tested["event_id"] and log["attempts"][0]["status_code"] == 200
    assert client.get("/api/admin/webhooks/deliveries?status=pending", headers=AUTH).get_json()["events"] == []

    assert client.delete(f"/api/admin/webhooks/{subscription_id}", headers=AUTH).status_code == 204
    gone = client.get(f"/api/admin/webhooks/{subscription_id}", headers=AUTH)
    assert gone.status_code == 404 and gone.get_json()["error"] == f"no subscription with id {subscription_id}"
