"""`termshift serve --processes N`: several processes answer on one port, share the admin
sessions, and live and die with the first one. Real `termshift serve` processes, real HTTP,
real signals. Also the pieces that make pages cheap: the row snippets, the drawn pictures
and the links of a row.
"""

from __future__ import annotations

import http.client
import signal
import urllib.parse

import psutil
import pytest

from termshift.web import create_app
from termshift.web.declare import COOKIE
from tests.support.archive_factory import build_sample_archive
from tests.support.waiting import wait_until
from tests.test_web_cli import free_port, get_json
from tests.test_web_production import TOKEN, request, start


@pytest.fixture(scope="module")
def sample(tmp_path_factory):
    return build_sample_archive(tmp_path_factory.mktemp("archive"))


def serving_children(parent: psutil.Process) -> list[psutil.Process]:
    found = []
    for child in parent.children(recursive=True):
        try:
            if "--listen-fd" in child.cmdline():
                found.append(child)
        except psutil.Error:
            continue
    return found


def test_several_processes_answer_on_one_port_share_sessions_and_stop_together(sample, tmp_path):
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    server = start("--data", str(sample.data), "--declarations", str(sample.declarations), "--port", str(port),
                   "--processes", "2", cwd=tmp_path, extra_env={"TERMSHIFT_WEB_ADMIN_TOKEN": TOKEN})
    parent = psutil.Process(server.pid)
    try:
        assert get_json(f"{base}/Acme.json")["id"] == "Acme"
        child = wait_until(lambda: (serving_children(parent) or [None])[0], 60, "a second serving process")
        login = http.client.HTTPConnection("127.0.0.1", port, timeout=30)  # not following the redirect
        login.request("POST", "/declare/login", body=urllib.parse.urlencode({"admin_token": TOKEN}),
                      headers={"Content-Type": "application/x-www-form-urlencoded"})
        answer = login.getresponse()
        assert answer.status == 303, answer.status
        cookie = {"Cookie": answer.getheader("Set-Cookie").split(";", 1)[0]}
        login.close()
        assert cookie["Cookie"].startswith(f"{COOKIE}=")
        # Each process alone (the other one frozen) answers, and knows the session the
        # login opened, whichever process that was.
        for frozen, answering in ((parent, child), (child, parent)):
            frozen.suspend()
            try:
                before = answering.cpu_times()
                for _ in range(3):
                    assert request(f"{base}/declare", headers=cookie)[0] == 200
                    assert request(f"{base}/declare")[0] == 401  # and no session, no entry
                after = answering.cpu_times()
                assert after.user + after.system > before.user + before.system
            finally:
                frozen.resume()
        # A serving process that dies is replaced.
        child.kill()
        replacement = wait_until(lambda: [c for c in serving_children(parent) if c.pid != child.pid], 60,
                                 "a replacement serving process")[0]
        wait_until(lambda: request(f"{base}/Acme.json")[0] == 200, 30, "answers after the replacement")
    finally:
        server.send_signal(signal.SIGTERM)
        output = server.communicate(timeout=60)[0].decode()
    assert server.returncode == 0, output
    assert "2 processes" in output and "Serving process" in output
    replacement.wait(timeout=30)  # stopped with the first process
    assert not psutil.pid_exists(replacement.pid) or replacement.status() == psutil.STATUS_ZOMBIE


def test_serving_processes_stop_when_the_first_one_is_killed(sample, tmp_path):
    port = free_port()
    server = start("--data", str(sample.data), "--port", str(port), "--processes", "2", cwd=tmp_path)
    try:
        assert get_json(f"http://127.0.0.1:{port}/Acme.json")["id"] == "Acme"
        child = wait_until(lambda: (serving_children(psutil.Process(server.pid)) or [None])[0], 60,
                           "a second serving process")
    finally:
        server.kill()  # no SIGTERM, no clean-up: as if the first process crashed
        server.communicate(timeout=30)
    child.wait(timeout=30)  # it notices, and stops instead of serving on alone


def test_a_login_session_outlives_a_restart_of_the_viewer(sample, tmp_path):
    def app():
        viewer = create_app(sample.data / "versions", sample.data / "snapshots", sample.declarations,
                            tmp_path / "index.sqlite", refresh_interval=0, admin_token=TOKEN)
        return viewer.test_client()

    first = app()
    login = first.post("/declare/login", data={"admin_token": TOKEN})
    session = login.headers["Set-Cookie"].split(";", 1)[0].split("=", 1)[1]
    second = app()  # another process, or the same viewer restarted
    second.set_cookie(COOKIE, session)
    assert second.get("/declare").status_code == 200
    first.set_cookie(COOKIE, session)
    first.post("/declare/logout")
    assert second.get("/declare").status_code == 401  # revoked for every process


def test_row_snippets_escape_and_speak_the_page_language(sample, tmp_path):
    from flask import g

    from termshift.web.snippets import kind_label, when, word_change

    app = create_app(sample.data / "versions", sample.data / "snapshots", sample.declarations,
                     tmp_path / "index.sqlite", refresh_interval=0)
    with app.test_request_context("/"):
        g.lang = "fr"
        words = str(word_change(12345, 7, True))
        assert "mots ajoutés" in words and "12\u202f345" in words and "≈" in words and "approximate" in words
        assert str(word_change(1, 2)).count("approximate") == 0
        label = str(kind_label('"><script>'))
        assert "<script>" not in label and '"><' not in label and "&lt;script&gt;" in label
        assert str(when(None)) == "—"
        g.lang = "en"
        assert "words added" in str(word_change(1, 2))


def test_a_drawn_timeline_follows_the_language_and_new_versions(sample, tmp_path):
    app = create_app(sample.data / "versions", sample.data / "snapshots", sample.declarations,
                     tmp_path / "index.sqlite", refresh_interval=0)
    client = app.test_client()
    english = client.get("/Acme/Privacy%20Policy?lang=en").get_data(as_text=True)
    french = client.get("/Acme/Privacy%20Policy?lang=fr").get_data(as_text=True)
    assert "words added" in english and "timeline-chart" in english
    assert "mots ajoutés" in french and "words added" not in french.split("timeline-chart", 1)[1].split("</svg>")[0]


def test_the_links_of_a_list_row_are_the_permalinks_built_one_by_one():
    from datetime import UTC, datetime

    from termshift import urls

    moment = datetime(2024, 3, 1, 12, 0, tzinfo=UTC)
    for version in ({"service_id": "Acme Co", "terms_type": "Terms of Service", "date": moment,
                     "commit_id": "abc123def4567890", "shadowed": False},
                    {"service_id": "É/x?#", "terms_type": "Privacy Policy", "date": moment,
                     "commit_id": "abc123def4567890", "shadowed": True}):  # named by commit id
        assert urls.version_links(version) == {
            "url": urls.version_url(version), "diff_url": urls.diff_url(version),
            "markdown_url": urls.version_url(version, ".md"), "json_url": urls.version_url(version, ".json")}
