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
                before = sum(answering.cpu_times()[:2])
                for _ in range(3):
                    assert request(f"{base}/declare", headers=cookie)[0] == 200
                    assert request(f"{base}/declare")[0] == 401  # and no session, no entry

                # CPU times tick every 10 ms, and six small answers may cost less: the one
                # process left running answers more until its time moves.
                def answered_by(process: psutil.Process, cpu: float) -> bool:
                    assert request(f"{base}/declare", headers=cookie)[0] == 200
                    return sum(process.cpu_times()[:2]) > cpu

                wait_until(lambda p=answering, cpu=before: answered_by(p, cpu), 30, "the running process to answer")
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
    assert "(waitress, 4 threads, 2 processes)" in output  # alone at first, the index being built
    assert "this one now serves with 1 thread" in output and "Serving process" in output
    assert "ready (1 thread)" in output  # the others, from the start
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


def test_timelines_are_drawn_ahead_in_every_language_and_only_a_changed_document_is_drawn_again(
        tmp_path, monkeypatch):
    from termshift.web import drawings

    archive = build_sample_archive(tmp_path)
    app = create_app(archive.data / "versions", archive.data / "snapshots", archive.declarations,
                     tmp_path / "index.sqlite", refresh_interval=0)
    viewer = app.extensions["termshift"]
    client = app.test_client()
    documents = [d["url"] for s in client.get("/index.json").get_json()["services"] for d in s["documents"]]
    assert len(documents) == 4
    wait_until(lambda: len(viewer.timelines) == 2 * len(documents), 30, "every timeline drawn, in both languages")
    draw = drawings.timeline_svg
    drawn = []

    def counting(*arguments):
        drawn.append(arguments)
        return draw(*arguments)

    monkeypatch.setattr(drawings, "timeline_svg", counting)
    pictures = {}
    for url in documents:
        for language, words in (("en", "words added"), ("fr", "mots ajoutés")):
            html = client.get(f"{url}?lang={language}").get_data(as_text=True)
            picture = html.split('<figure class="picture timeline-picture"', 1)[1].split("</figure>", 1)[0]
            assert words in picture and "<a href=" in picture
            pictures[url, language] = picture
    assert drawn == []  # every first view took its picture from what was drawn ahead

    archive.factory.record("Acme", "Privacy Policy", "2024-07-01T00:00:00Z", "<main>v4</main>",
                           "# Privacy Policy\n\nWe keep nothing at all.\n")
    viewer.refresher.refresh()
    privacy = next(url for url in documents if url.endswith("Privacy%20Policy"))
    for url in documents:
        html = client.get(f"{url}?lang=en&after=1").get_data(as_text=True)
        picture = html.split('<figure class="picture timeline-picture"', 1)[1].split("</figure>", 1)[0]
        if url == privacy:
            assert picture.count('class="mark') == pictures[url, "en"].count('class="mark') + 1
        else:
            assert picture == pictures[url, "en"]
    assert len(drawn) == 1  # the document with a new version, and no other


def test_a_list_counts_its_changes_once_per_index_refresh_and_again_after_one(tmp_path):
    archive = build_sample_archive(tmp_path)
    app = create_app(archive.data / "versions", archive.data / "snapshots", archive.declarations,
                     tmp_path / "index.sqlite", refresh_interval=0)
    client = app.test_client()

    def totals() -> list[int]:
        return [client.get(f"/-/changes.json?{query}").get_json()["pagination"]["total"]
                for query in ("", "service=Acme", "service=Acme&technical=1", "type=Imprint", "from=2024-06-01")]

    before = totals()
    assert before == [6, 5, 6, 1, 1]
    assert totals() == before  # counted once, asked twice
    archive.factory.record("Acme", "Privacy Policy", "2024-07-01T00:00:00Z", "<main>v4</main>",
                           "# Privacy Policy\n\nWe keep nothing at all.\n")
    archive.factory.record("Acme", "Imprint", "2024-07-02T00:00:00Z", "<main>back</main>", "Imprint\n\nAcme SAS.\n")
    app.extensions["termshift"].refresher.refresh()
    assert totals() == [8, 7, 8, 2, 3]


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


def test_table_rows_and_pictures_built_in_python_escape_everything_and_keep_their_structure(sample, tmp_path):
    """Rows and pictures leave the templates for speed: hostile names, ids and links stay text,
    the two newest versions are the ones picked for comparison, and the page's language is spoken."""
    from datetime import UTC, datetime

    import lxml.html
    from flask import g

    from termshift.web.activity import build_activity
    from termshift.web.drawings import activity_svg, timeline_svg
    from termshift.web.snippets import change_rows, options, version_rows
    from termshift.web.timeline import build_timeline

    hostile = '"><script>alert(1)</script>'
    moments = [datetime(2024, month, 1, tzinfo=UTC) for month in (1, 2, 3)]
    versions = [{"url": f"/x/{hostile}/{month}", "diff_url": f"/d/{hostile}", "markdown_url": "/m.md",
                 "date": moment, "kind": hostile, "is_first_record": month == 1, "size": 2048, "size_delta": -5,
                 "words_added": 3, "words_removed": 1, "words_approximate": False,
                 "service_id": hostile, "service_name": hostile, "terms_type": hostile}
                for month, moment in zip((3, 2, 1), reversed(moments), strict=True)]
    app = create_app(sample.data / "versions", sample.data / "snapshots", sample.declarations,
                     tmp_path / "index.sqlite", refresh_interval=0)
    with app.test_request_context("/"):
        for lang, words_added in (("en", "words added"), ("fr", "mots ajoutés")):
            g.lang = lang
            table = lxml.html.fromstring(f"<table><tbody>{version_rows(versions)}</tbody></table>")
            assert len(table.findall(".//tr")) == 3 and not table.findall(".//script")
            checked = [(i.get("name"), i.get("id")) for i in table.findall(".//input") if i.get("checked") is not None]
            assert checked == [("to", "to-1"), ("from", "from-2")]
            assert [a.get("href") for a in table.findall(".//tr")[0].findall(".//a")] == \
                ["/x/" + hostile + "/3", "/d/" + hostile, "/m.md"]
            assert not table.findall(".//tr")[2].xpath(".//a[starts-with(@href, '/d/')]")  # a first record
            assert words_added in table.text_content()
            changes = lxml.html.fromstring(f"<table><tbody>{change_rows(versions)}</tbody></table>")
            assert len(changes.findall(".//tr")) == 3 and not changes.findall(".//script")
            assert hostile in changes.findall(".//tr")[0].findall(".//td")[1].text_content()
            select = lxml.html.fromstring(f"<select>{options([(hostile, hostile), ('b', 'B')], 'b')}</select>")
            assert [(o.get("value"), o.text, o.get("selected") is not None) for o in select.findall("option")] == \
                [(hostile, hostile, False), ("b", "B", True)]
            points = [{"date": moment, "words_added": 5 * n, "words_removed": n, "is_first": n == 0,
                       "is_technical": False} for n, moment in enumerate(moments)]
            timeline = build_timeline(points, lambda version, against: f"/{hostile}/{version['date']:%m}")
            svg = lxml.html.fromstring(str(timeline_svg(timeline, hostile)))
            assert not svg.findall(".//script") and len(svg.findall(".//a")) == 3
            assert {a.get("href") for a in svg.findall(".//a")} == {f"/{hostile}/0{m}" for m in (1, 2, 3)}
            assert words_added in svg.text_content()
            counts = [{"service_id": hostile, "month": f"2024-0{m}", "changes": m, "words_added": 1, "words_removed": 2}
                      for m in (1, 2)]
            grid = lxml.html.fromstring(str(activity_svg(build_activity(counts, {hostile: hostile},
                                                                        lambda service, month: f"/{hostile}"))))
            assert not grid.findall(".//script") and hostile in grid.text_content()
            assert ("2 changes" if lang == "en" else "2 changements") in grid.text_content()


def test_diff_rows_built_in_python_escape_the_texts_and_their_headings(sample, tmp_path):
    import lxml.html
    from flask import g

    from termshift.web.diffing import compare
    from termshift.web.diffview import build_blocks
    from termshift.web.snippets import diff_blocks

    old = "# <script>alert(1)</script> Terms\n\nFirst <b>clause</b>.\n\n" + "Same line.\n\n" * 20 + "Last a\u00a0b.\n"
    new = "# <script>alert(1)</script> Terms\n\nFirst <i>clause</i>, amended.\n\n" + "Same line.\n\n" * 20 + \
        "Last a b.\n"
    comparison = compare(old, new)
    app = create_app(sample.data / "versions", sample.data / "snapshots", sample.declarations,
                     tmp_path / "index.sqlite", refresh_interval=0)
    with app.test_request_context("/"):
        g.lang = "en"
        for view in ("unified", "split"):
            blocks = build_blocks(comparison, side_by_side=view == "split", context=3)
            html = str(diff_blocks(blocks, view, 2, '/x?context=all&"'))
            table = lxml.html.fromstring(f"<table>{html}</table>")
            assert not table.xpath("//script | //b | //i")
            headings = [th.text_content() for th in table.xpath("//tr[@class='change-heading']/th")]
            assert len(headings) == 2 and "Change 1 of 2 — <script>alert(1)</script> Terms" in headings[0]
            assert table.xpath("//tr[@class='change-heading']//span[@class='kind kind-whitespace']")  # an element
            text = table.text_content()
            assert all(piece in text for piece in ("<b", "</b>", "clause", "amended."))  # as text, word by word
            assert {a.get("href") for a in table.xpath("//tr[@class='skip']//a")} == {'/x?context=all&"'}
            assert table.xpath("//a[@class='next-change']/@href") == ["#change-2"]


def test_a_serving_process_with_no_free_thread_leaves_new_connections_to_the_others():
    """Two waitress servers on one listening socket, one thread each, as `--processes 2`
    runs them: while one is busy with a long request, every new connection goes to the
    other (without the policy, the busy one takes its share and they wait behind it)."""
    import socket
    import threading

    import waitress

    from termshift.commands.serve import accept_only_with_a_free_thread

    started, release = threading.Event(), threading.Event()

    def app_named(name: str):
        def app(environ, start_response):
            if environ["PATH_INFO"] == "/slow":
                started.set()
                release.wait(60)
            start_response("200 OK", [("Content-Type", "text/plain")])
            return [name.encode()]
        return app

    listening = socket.create_server(("127.0.0.1", 0))
    port = listening.getsockname()[1]
    servers = {}
    for name, sock in (("a", listening), ("b", socket.socket(fileno=listening.dup().detach()))):
        server = waitress.create_server(app_named(name), sockets=[sock], threads=1, asyncore_use_poll=True)
        accept_only_with_a_free_thread(server, 1)
        threading.Thread(target=server.run, daemon=True).start()
        servers[name] = server

    def get(path: str, timeout: float) -> str:
        connection = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
        try:
            connection.request("GET", path)
            response = connection.getresponse()
            assert response.status == 200
            return response.read().decode()
        finally:
            connection.close()

    slow: list[str] = []
    waiting = threading.Thread(target=lambda: slow.append(get("/slow", 60)))
    waiting.start()
    try:
        assert started.wait(30)
        answered = [get(f"/fast?{n}", 10) for n in range(8)]
        assert len(set(answered)) == 1  # all by the process that was free
        busy = servers["b" if answered[0] == "a" else "a"]
        assert not busy.readable()
    finally:
        release.set()
        waiting.join(60)
    assert slow and slow[0] != answered[0]
    wait_until(busy.readable, 10, "the busy process to accept again once its thread is free")
    for server in servers.values():
        server.close()
        server.task_dispatcher.shutdown(timeout=5)


def test_a_serving_process_takes_the_next_connection_as_soon_as_its_thread_is_free():
    """One thread, the accept policy on: each request in turn is answered at once. (Waitress
    counts its thread busy until after the wake-up that follows a request: a process going by
    that count found itself still busy and slept on, up to its loop's one-second timeout.)"""
    import socket
    import threading
    import time

    import waitress

    from termshift.commands.serve import accept_only_with_a_free_thread

    def app(environ, start_response):
        start_response("200 OK", [("Content-Type", "text/plain")])
        return [b"ok"]

    listening = socket.create_server(("127.0.0.1", 0))
    port = listening.getsockname()[1]
    server = waitress.create_server(app, sockets=[listening], threads=1, asyncore_use_poll=True)
    accept_only_with_a_free_thread(server, 1)
    threading.Thread(target=server.run, daemon=True).start()
    try:
        slowest = 0.0
        for number in range(30):
            started = time.monotonic()
            connection = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
            connection.request("GET", f"/{number}")
            assert connection.getresponse().read() == b"ok"
            connection.close()
            slowest = max(slowest, time.monotonic() - started)
        assert slowest < 0.5, f"a request waited {slowest:.2f} s for a free process"
    finally:
        server.close()
        server.task_dispatcher.shutdown(timeout=5)


def test_the_first_serving_process_drops_to_one_thread_once_the_others_serve():
    """Alone (while the index builds), the first process serves with several threads; once the
    other processes have started, with one, like them: a request in hand then fills it."""
    import socket
    import threading

    import waitress

    from termshift.commands.serve import accept_only_with_a_free_thread

    started, release = threading.Event(), threading.Event()

    def app(environ, start_response):
        if environ["PATH_INFO"] == "/slow":
            started.set()
            release.wait(60)
        start_response("200 OK", [("Content-Type", "text/plain")])
        return [b"ok"]

    listening = socket.create_server(("127.0.0.1", 0))
    port = listening.getsockname()[1]
    server = waitress.create_server(app, sockets=[listening], threads=2, asyncore_use_poll=True)
    set_threads = accept_only_with_a_free_thread(server, 2)
    threading.Thread(target=server.run, daemon=True).start()

    def get(path: str) -> bytes:
        connection = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
        try:
            connection.request("GET", path)
            return connection.getresponse().read()
        finally:
            connection.close()

    slow = threading.Thread(target=get, args=("/slow",))
    slow.start()
    try:
        assert started.wait(30)
        assert server.readable() and get("/fast") == b"ok"  # two threads: one is still free
        set_threads(1)
        assert not server.readable()  # the one thread left is busy
    finally:
        release.set()
        slow.join(30)
    dispatcher = server.task_dispatcher
    wait_until(lambda: server.readable() and len(dispatcher.threads) == 1, 10, "one thread, free again")
    assert get("/fast") == b"ok"
    server.close()
    dispatcher.shutdown(timeout=5)
