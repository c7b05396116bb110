"""The viewer as it runs in production: a real WSGI server, limits, trusted hosts and proxies,
the admin token and its sessions, and what public pages may show."""

from __future__ import annotations

import os
import signal
import sqlite3
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

import feedparser
import pytest

from termshift.config import ConfigError, load_settings
from termshift.locking import RunLock
from termshift.publish import Publisher
from termshift.web import create_app
from tests.support.archive_factory import build_sample_archive
from tests.test_web_cli import free_port, get_json

ROOT = Path(__file__).resolve().parent.parent
TOKEN = "t" * 20 + "-production-token-0123456789"  # 48 characters
ADMIN = {"Authorization": f"Bearer {TOKEN}"}


@pytest.fixture(scope="module")
def sample(tmp_path_factory):
    return build_sample_archive(tmp_path_factory.mktemp("archive"))


def make_app(sample, tmp_path: Path, **web):
    settings = load_settings(None, environ={}, overrides={
        "": {"data": str(sample.data), "declarations": str(sample.declarations)}, "web": web})
    return create_app(sample.data / "versions", sample.data / "snapshots", sample.declarations,
                      tmp_path / "index.sqlite", settings=settings, refresh_interval=0, data_dir=str(sample.data))


# --------------------------------------------------------------------------- the server


def start(*arguments: str, cwd: Path, extra_env: dict | None = None) -> subprocess.Popen:
    environment = {**os.environ, "PYTHONPATH": str(ROOT), "XDG_CACHE_HOME": str(cwd / "cache"), **(extra_env or {})}
    return subprocess.Popen([sys.executable, "-m", "termshift.cli", "serve", *arguments], cwd=cwd,
                            env=environment, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)


def request(url: str, data: bytes | None = None, headers: dict | None = None) -> tuple[int, dict, bytes]:
    try:
        with urllib.request.urlopen(urllib.request.Request(url, data=data, headers=headers or {}),
                                    timeout=30) as response:
            return response.status, dict(response.headers), response.read()
    except urllib.error.HTTPError as error:
        return error.code, dict(error.headers), error.read()


def test_serve_runs_a_production_server_that_stops_cleanly_on_sigterm(sample, tmp_path):
    port = free_port()
    process = start("--data", str(sample.data), "--port", str(port), cwd=tmp_path,
                    extra_env={"TERMSHIFT_WEB_MAX_REQUEST_BYTES": "4096", "TERMSHIFT_WEB_THREADS": "3",
                               "TERMSHIFT_WEB_TRUSTED_PROXIES": "1"})
    try:
        assert get_json(f"http://127.0.0.1:{port}/Acme.json")["id"] == "Acme"
        status, headers, _body = request(f"http://127.0.0.1:{port}/")
        assert status == 200 and headers["Server"] == "Termshift"  # waitress, not Werkzeug's dev server
        # Behind one trusted TLS proxy, the server passes X-Forwarded-* on to ProxyFix.
        _status, _headers, body = request(f"http://127.0.0.1:{port}/feed.atom", headers={
            "X-Forwarded-Proto": "https", "X-Forwarded-Host": "terms.example.org", "X-Forwarded-For": "203.0.113.7"})
        assert feedparser.parse(body).entries[0].link.startswith("https://terms.example.org/")
        status, _headers, _body = request(f"http://127.0.0.1:{port}/declare/login", data=b"x" * 10_000,
                                          headers={"Content-Type": "application/x-www-form-urlencoded"})
        assert status == 413  # the request body limit
    finally:
        process.send_signal(signal.SIGTERM)
        output = process.communicate(timeout=30)[0].decode()
    assert process.returncode == 0, output
    assert f"Serving on http://127.0.0.1:{port}/ (waitress, 3 threads)" in output
    assert "Server stopped." in output and "Traceback" not in output


def test_debug_serves_with_the_development_server_and_says_so(sample, tmp_path):
    port = free_port()
    process = start("--data", str(sample.data), "--port", str(port), "--debug", cwd=tmp_path)
    try:
        get_json(f"http://127.0.0.1:{port}/Acme.json")
        _status, headers, _body = request(f"http://127.0.0.1:{port}/")
        assert headers["Server"].startswith("Werkzeug/")
    finally:
        process.terminate()
        output = process.communicate(timeout=30)[0].decode()
    assert "development server: never in production" in output


def test_the_factory_reads_the_configuration_for_a_wsgi_server_of_your_own(sample, tmp_path, monkeypatch):
    config = tmp_path / "termshift.toml"
    config.write_text(f'data = "{sample.data}"\ndeclarations = "{sample.declarations}"\n'
                      f'[web]\nadmin_token = "{TOKEN}"\nmax_request_bytes = 2048\n')
    monkeypatch.setenv("TERMSHIFT_CONFIG", str(config))
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    from termshift.web import create_app as factory  # what `gunicorn 'termshift.web:create_app()'` calls

    app = factory()
    try:
        client = app.test_client()
        assert client.get("/Acme.json").json["name"] == "Acme Corp"
        assert app.config["ADMIN_TOKEN"] == TOKEN and app.config["MAX_CONTENT_LENGTH"] == 2048
        assert client.post("/api/admin/webhooks", data=b"{" * 4096, headers=ADMIN).status_code == 413
    finally:
        app.extensions["termshift"].close()


# --------------------------------------------------------------------------- admin token, limits


def test_a_short_admin_token_is_refused_by_the_config_check_and_the_factory(sample, tmp_path):
    with pytest.raises(ConfigError, match="web.admin_token: must be at least 32 characters"):
        load_settings(None, environ={"TERMSHIFT_WEB_ADMIN_TOKEN": "s3cret"})
    result = subprocess.run([sys.executable, "-m", "termshift.cli", "config", "check"], cwd=tmp_path,
                            env={**os.environ, "PYTHONPATH": str(ROOT), "TERMSHIFT_WEB_ADMIN_TOKEN": "s3cret"},
                            capture_output=True, text=True)
    assert result.returncode == 1 and "web.admin_token: must be at least 32 characters" in result.stderr
    with pytest.raises(ValueError, match="at least 32 characters"):
        create_app(sample.data / "versions", None, None, tmp_path / "index.sqlite", refresh_interval=0,
                   admin_token="s3cret")


def test_login_and_admin_api_are_rate_limited_per_client_address(sample, tmp_path):
    app = make_app(sample, tmp_path, admin_token=TOKEN, login_rate_limit="3/minute", admin_rate_limit="5/minute")
    try:
        client = app.test_client()
        codes = [client.post("/declare/login", data={"admin_token": "guess"}).status_code for _ in range(4)]
        assert codes == [403, 403, 403, 429]
        limited = client.post("/declare/login", data={"admin_token": TOKEN})
        assert limited.status_code == 429 and int(limited.headers["Retry-After"]) >= 1
        # Another address has its own allowance.
        other = client.post("/declare/login", data={"admin_token": TOKEN}, environ_base={"REMOTE_ADDR": "127.0.0.9"})
        assert other.status_code == 303
        api = [client.get("/api/admin/webhooks", headers=ADMIN, environ_base={"REMOTE_ADDR": "127.0.0.5"}).status_code
               for _ in range(6)]
        assert api == [200] * 5 + [429]
        assert client.get("/Acme.json", environ_base={"REMOTE_ADDR": "127.0.0.5"}).status_code == 200  # pages: no limit
    finally:
        app.extensions["termshift"].close()


# --------------------------------------------------------------------------- hosts, proxies, feeds


def test_without_base_url_feeds_are_never_cached_with_a_forged_host(sample, tmp_path):
    app = make_app(sample, tmp_path)
    try:
        response = app.test_client().get("/feed.atom", headers={"Host": "evil.example"})
        assert response.status_code == 200
        assert response.headers["Cache-Control"] == "no-store"
    finally:
        app.extensions["termshift"].close()
    app = make_app(sample, tmp_path, base_url="https://terms.example.org/archive")
    try:
        response = app.test_client().get("/feed.atom", headers={"Host": "evil.example"})
        assert response.headers["Cache-Control"].startswith("public")
        feed = feedparser.parse(response.get_data())
        links = [link["href"] for entry in feed.entries for link in entry.links]
        assert links and all(link.startswith("https://terms.example.org/archive/") for link in links)
        assert b"evil.example" not in response.get_data()
    finally:
        app.extensions["termshift"].close()


def test_trusted_hosts_refuse_other_host_headers(sample, tmp_path):
    app = make_app(sample, tmp_path, trusted_hosts=["terms.example.org"])
    try:
        client = app.test_client()
        assert client.get("/Acme.json", headers={"Host": "evil.example"}).status_code == 400
        good = client.get("/feed.atom", headers={"Host": "terms.example.org"})
        assert good.status_code == 200 and good.headers["Cache-Control"].startswith("public")
    finally:
        app.extensions["termshift"].close()


def test_forwarded_headers_are_used_only_with_trusted_proxies(sample, tmp_path):
    forwarded = {"X-Forwarded-For": "203.0.113.7", "X-Forwarded-Proto": "https",
                 "X-Forwarded-Host": "terms.example.org"}
    for proxies, expected in ((0, "http://localhost/"), (1, "https://terms.example.org/")):
        app = make_app(sample, tmp_path, trusted_proxies=proxies, admin_token=TOKEN)
        try:
            client = app.test_client()
            feed = feedparser.parse(client.get("/feed.atom", headers=forwarded).get_data())
            assert feed.entries and feed.entries[0].link.startswith(expected), (proxies, feed.entries[0].link)
            login = client.post("/declare/login", data={"admin_token": TOKEN}, headers=forwarded)
            assert ("Secure" in login.headers["Set-Cookie"]) == bool(proxies)  # the client spoke TLS to the proxy
        finally:
            app.extensions["termshift"].close()


# --------------------------------------------------------------------------- public pages say little


def test_public_status_and_healthz_hide_remotes_errors_hosts_and_paths(tmp_path):
    data = build_sample_archive(tmp_path).data
    Publisher(data, {"versions": str(tmp_path / "nowhere" / "versions.git")}, retries=0).publish()
    settings = load_settings(None, environ={}, overrides={"": {"data": str(data)},
                                                          "web": {"admin_token": TOKEN},
                                                          "schedule": {"stuck_after": 0.1}})
    app = create_app(settings, refresh_interval=0)
    lock = RunLock(data)
    lock.acquire()
    try:
        time.sleep(0.2)
        client = app.test_client()
        public = client.get("/status.json")
        text = public.get_data(as_text=True)
        assert str(tmp_path) not in text and "nowhere" not in text and "fatal" not in text
        assert f"on {os.uname().nodename}" not in text and '"pid"' not in text and '"host"' not in text
        [push] = public.json["publish"]
        assert push["ok"] == 0 and push["error"] == "the push failed: the administrator can see why"
        assert "remote" not in push
        assert public.json["running"]["elapsed"] > 0 and "pid" not in public.json["running"]
        page = client.get("/status").get_data(as_text=True)
        assert str(tmp_path) not in page and "administrator" in page
        probe = client.get("/healthz")
        assert probe.status_code == 503 and str(tmp_path) not in probe.get_data(as_text=True)
        assert f"on {os.uname().nodename}" not in probe.get_data(as_text=True)
        assert "more than schedule.stuck_after" in probe.json["checks"]["tracking"]["detail"]
        assert "Authorization" in public.headers["Vary"]

        detailed = client.get("/status.json", headers=ADMIN)
        assert detailed.json["details"] is True and public.json["details"] is False
        assert "nowhere/versions.git" in detailed.json["publish"][0]["error"]
        assert detailed.json["running"]["pid"] == os.getpid()
        assert detailed.headers["Cache-Control"] == "private, no-store"
        detail = client.get("/healthz", headers=ADMIN).json["checks"]["tracking"]["detail"]
        assert f"pid {os.getpid()} on {os.uname().nodename}" in detail
        # The login session of /declare shows the details too; a wrong token does not.
        assert client.get("/status.json", headers={"Authorization": "Bearer " + "x" * 40}).json["details"] is False
        client.post("/declare/login", data={"admin_token": TOKEN})
        assert "nowhere/versions.git" in client.get("/status").get_data(as_text=True)
    finally:
        lock.release()
        app.extensions["termshift"].close()


# --------------------------------------------------------------------------- a damaged alerts database


def test_a_damaged_alerts_database_keeps_the_viewer_up_and_is_reported(tmp_path):
    sample = build_sample_archive(tmp_path)
    (sample.data / "alerts.sqlite").write_bytes(os.urandom(8192))
    settings = load_settings(None, environ={}, overrides={"": {"data": str(sample.data)},
                                                          "web": {"admin_token": TOKEN}})
    app = create_app(settings, refresh_interval=0)
    try:
        assert app.config["STARTUP_PROBLEMS"][0]["what"] == "alerts_database"
        client = app.test_client()
        feed = client.get("/feed.atom")
        assert feed.status_code == 200 and feedparser.parse(feed.get_data()).entries
        assert client.get("/feed/Acme.rss").status_code == 200
        assert client.get("/").status_code == 200
        status = client.get("/status.json").json
        assert [problem["public"] for problem in status["problems"]] == [
            "The alerts database cannot be read: webhook and Apprise deliveries are stopped, "
            "and feeds are served without word counts."]
        assert "alerts database cannot be read" in client.get("/status").get_data(as_text=True)
        detailed = client.get("/status.json", headers=ADMIN).json["problems"][0]["detail"]
        assert "alerts.sqlite" in detailed and "not a database" in detailed
        admin = client.get("/api/admin/webhooks", headers=ADMIN)
        assert admin.status_code == 503 and "alerts database" in admin.json["error"]
        metrics = client.get("/metrics").get_data(as_text=True)
        assert 'termshift_problem{what="alerts_database"} 1.0' in metrics
    finally:
        app.extensions["termshift"].close()
    with pytest.raises(sqlite3.DatabaseError):  # the file was left as it was, for the administrator
        sqlite3.connect(sample.data / "alerts.sqlite").execute("SELECT 1 FROM sqlite_master").fetchone()
