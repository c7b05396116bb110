"""The viewer's pages and their JSON twins, through the Flask test client on a real archive."""

from __future__ import annotations

import re
import sqlite3
import time
from datetime import UTC, datetime
from pathlib import Path
from urllib.parse import quote

import jsonschema
import lxml.html
import pytest

from termshift.web import create_app
from termshift.web.openapi import openapi_document
from termshift.web.security import PAGE_POLICY
from tests.support.archive_factory import PRIVACY_V3, build_sample_archive

PRIVACY = "/Acme/Privacy%20Policy"
CAFE = "/" + quote("Café & Co", safe="") + "/Terms%20of%20Service"


@pytest.fixture(scope="module")
def sample(tmp_path_factory):
    return build_sample_archive(tmp_path_factory.mktemp("archive"))


@pytest.fixture(scope="module")
def app(sample):
    application = create_app(
        sample.data / "versions", sample.data / "snapshots", sample.declarations, sample.data / "index.sqlite",
        refresh_interval=0, testing=True,
    )
    yield application
    application.extensions["termshift"].close()


@pytest.fixture
def client(app):
    return app.test_client()


def schema_validator(name: str):
    document = openapi_document()
    schema = {"$ref": f"#/components/schemas/{name}", "components": document["components"]}
    return jsonschema.Draft202012Validator(schema)


def html(response) -> str:
    assert response.status_code == 200, response.data[:500]
    assert response.mimetype == "text/html"
    return response.get_data(as_text=True)


# --------------------------------------------------------------------------- JSON twins


def twin_cases(sample) -> list[tuple[str, str]]:
    ids = sample.ids
    return [
        ("/", "Home"),
        ("/-/changes", "Changes"),
        ("/-/search?q=cookies", "Search"),
        ("/Acme", "Service"),
        (PRIVACY, "Document"),
        (f"{PRIVACY}/{ids['privacy_2']}", "Version"),
        (f"{PRIVACY}/{ids['privacy_2']}/diff", "Diff"),
        (f"/-/snapshot/{ids['privacy_snapshot_2']}", "Snapshot"),
    ]


def json_url(url: str) -> str:
    path, _, query = url.partition("?")
    path = "/index.json" if path == "/" else path + ".json"
    return path + (f"?{query}" if query else "")


def test_every_page_has_a_json_twin_matching_the_openapi_schema(client, sample):
    for url, schema in twin_cases(sample):
        page = client.get(url)
        assert page.status_code == 200 and page.mimetype == "text/html", url
        for response in (client.get(json_url(url)), client.get(url, headers={"Accept": "application/json"})):
            assert response.status_code == 200, (url, response.data[:300])
            assert response.mimetype == "application/json", url
            errors = list(schema_validator(schema).iter_errors(response.get_json()))
            assert not errors, (url, [error.message for error in errors[:3]])
            assert "Accept" in response.headers.get("Vary", "")


def test_browsers_get_html_even_though_they_accept_anything(client):
    accept = "text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8"
    assert client.get("/Acme", headers={"Accept": accept}).mimetype == "text/html"
    assert client.get("/Acme", headers={"Accept": "*/*"}).mimetype == "text/html"


def test_openapi_lists_every_json_route(app, client):
    document = client.get("/api/v1/openapi.json").get_json()
    assert document["openapi"] == "3.1.0"
    documented = set(document["paths"])
    for rule in app.url_map.iter_rules():
        if rule.endpoint.startswith(("feeds.", "health.", "declare.")):
            continue  # other modules' routes
        path = re.sub(r"<(?:[^:>]+:)?([^>]+)>", lambda m: "{" + {"service_id": "serviceId", "terms_type": "termsType",
                      "snapshot_id": "snapshotId"}.get(m.group(1), m.group(1)) + "}", rule.rule)
        if path.endswith(".json") and not path.startswith("/-/service/") and path != "/api/v1/openapi.json":
            assert path in documented, path
    for path in ("/{serviceId}.json", "/{serviceId}/{termsType}.json", "/{serviceId}/{termsType}/{ref}.json",
                 "/api/v1/services", "/api/v1/service/{serviceId}", "/api/v1/version/{serviceId}/{termsType}/{date}"):
        assert path in documented


def test_openapi_document_is_valid_openapi_3_1(client):
    validator = pytest.importorskip("openapi_spec_validator")
    validator.validate(client.get("/api/v1/openapi.json").get_json())


# --------------------------------------------------------------------------- collection pages


def test_home_lists_services_by_declared_name_with_last_changes_and_feeds(client, sample):
    page = html(client.get("/"))
    assert "<h3><a href=\"/Acme\">Acme Corp</a></h3>" in page
    assert f'<a href="{CAFE}">Terms of Service</a>' in page
    assert f'href="{PRIVACY}/2024-06-01T00:00:00Z/diff"' in page  # the last change, linked to its diff
    assert '<link rel="alternate" type="application/atom+xml"' in page and 'href="/feed.atom"' in page
    assert 'href="/feed.rss"' in page
    data = client.get("/index.json").get_json()
    assert data["totals"] == {"services": 2, "documents": 4, "versions": 7}
    acme = next(service for service in data["services"] if service["id"] == "Acme")
    imprint = next(d for d in acme["documents"] if d["terms_type"] == "Imprint")
    assert imprint["removed"] is True
    privacy = next(d for d in acme["documents"] if d["terms_type"] == "Privacy Policy")
    assert privacy["last_change"]["date"] == "2024-06-01T00:00:00Z"
    assert privacy["feeds"] == {"atom": "/feed/Acme/Privacy%20Policy.atom", "rss": "/feed/Acme/Privacy%20Policy.rss"}


def test_latest_changes_hide_technical_upgrades_unless_asked(client, sample):
    default = client.get("/-/changes.json").get_json()
    ids = [change["id"] for change in default["changes"]]
    assert sample.ids["privacy_technical"] not in ids
    assert ids[0] == sample.ids["privacy_3"]  # newest first
    assert default["pagination"]["total"] == 6
    everything = client.get("/-/changes.json?technical=1").get_json()
    assert sample.ids["privacy_technical"] in [change["id"] for change in everything["changes"]]


def test_latest_changes_filter_by_service_type_and_dates(client, sample):
    by_service = client.get("/-/changes.json?service=Acme&type=Privacy%20Policy").get_json()
    assert [c["id"] for c in by_service["changes"]] == [sample.ids["privacy_3"], sample.ids["privacy_2"],
                                                        sample.ids["privacy_1"]]
    assert by_service["feeds"]["atom"] == "/feed/Acme/Privacy%20Policy.atom"
    march = client.get("/-/changes.json?from=2024-03-01&to=2024-03-18").get_json()
    assert [c["id"] for c in march["changes"]] == [sample.ids["privacy_2"]]  # `to` includes the whole day
    page = html(client.get("/-/changes?type=Imprint"))
    assert '<option value="Imprint" selected>' in page
    bad = client.get("/-/changes?from=yesterday")
    assert bad.status_code == 400 and "from" in bad.get_data(as_text=True)


def test_latest_changes_paginate(sample, tmp_path):
    app = create_app(sample.data / "versions", None, None, tmp_path / "index.sqlite", page_size=2,
                     refresh_interval=0)
    client = app.test_client()
    first = client.get("/-/changes.json").get_json()
    assert first["pagination"] == {"page": 1, "pages": 3, "per_page": 2, "total": 6}
    assert first["previous_page_url"] is None and first["next_page_url"] == "/-/changes?page=2"
    third = client.get("/-/changes.json?page=3").get_json()
    assert len(third["changes"]) == 2 and third["next_page_url"] is None
    assert client.get("/-/changes?page=0").status_code == 400
    assert client.get("/-/changes?page=x").status_code == 400
    page = html(client.get("/-/changes?page=2"))
    assert 'rel="prev"' in page and 'rel="next"' in page
    app.extensions["termshift"].close()


def test_search_finds_names_and_current_texts(client):
    data = client.get("/-/search.json?q=cookies").get_json()
    assert [(hit["service_id"], hit["terms_type"]) for hit in data["full_text"]] == [("Acme", "Privacy Policy")]
    assert any(part["match"] and part["text"].lower() == "cookies" for part in data["full_text"][0]["excerpt"])
    names = client.get("/-/search.json?q=acme%20privacy").get_json()
    assert [(d["service_name"], d["terms_type"]) for d in names["documents"]] == [("Acme Corp", "Privacy Policy")]
    page = html(client.get("/-/search?q=cookies"))
    assert "<mark>" in page
    weird = client.get('/-/search.json?q=%22%29%28*%20OR%20NEAR').get_json()  # FTS syntax is not interpreted
    assert weird["full_text"] == []


def test_service_page_shows_documents_with_tracking_status(client):
    page = html(client.get("/Acme"))
    assert "<h1>Acme Corp</h1>" in page
    assert 'href="/feed/Acme.atom"' in page
    data = client.get("/Acme.json").get_json()
    statuses = {d["terms_type"]: d["status"] for d in data["documents"]}
    assert statuses["Privacy Policy"]["state"] == "failing"
    assert statuses["Privacy Policy"]["consecutive_failures"] == 3
    assert statuses["Privacy Policy"]["error"] == "Received HTTP code 503"
    assert statuses["Terms of Service"]["state"] == "ok"
    assert statuses["Imprint"]["state"] == "unknown"
    assert "Received HTTP code 503" in page and "3 failures in a row" in page
    bolt = client.get("/Bolt.json").get_json()  # declared, nothing recorded yet
    assert bolt["documents"] == [] and bolt["declared_without_versions"] == ["Terms of Service"]


def test_a_new_tracking_status_shows_at_once_while_the_tracker_keeps_its_database_open(tmp_path):
    """The tracker writes statuses into its database's write-ahead log, and keeps it open:
    the database file itself does not change until a checkpoint, yet the (cached) pages
    must show the new status on their next view."""
    archive = build_sample_archive(tmp_path)
    tracker = sqlite3.connect(archive.data / "runs.sqlite")
    tracker.execute("PRAGMA journal_mode=WAL")
    app = create_app(archive.data / "versions", archive.data / "snapshots", archive.declarations,
                     tmp_path / "index.sqlite", refresh_interval=0)
    client = app.test_client()

    def states() -> dict[str, str]:
        service = client.get("/Acme.json").get_json()
        document = client.get("/Acme/Terms%20of%20Service.json").get_json()
        html = client.get("/Acme/Terms%20of%20Service").get_data(as_text=True)
        return {**{d["terms_type"]: d["status"]["state"] for d in service["documents"]},
                "document": document["document"]["status"]["state"], "page": "HTTP code 500" in html}

    try:
        assert states() == {"Privacy Policy": "failing", "Terms of Service": "ok", "Imprint": "unknown",
                            "document": "ok", "page": False}
        main_file = (archive.data / "runs.sqlite").stat().st_mtime_ns
        tracker.execute("UPDATE document_status SET failing_since = '2024-06-04T00:00:00Z', error_kind = 'transient', "
                        "error = 'Received HTTP code 500', consecutive_failures = 1 WHERE terms_type = 'Terms of Service'")
        tracker.commit()
        assert (archive.data / "runs.sqlite").stat().st_mtime_ns == main_file  # only the log changed
        assert states() == {"Privacy Policy": "failing", "Terms of Service": "failing", "Imprint": "unknown",
                            "document": "failing", "page": True}
    finally:
        tracker.close()
        app.extensions["termshift"].close()


def test_status_is_unknown_without_a_runs_database(sample, tmp_path):
    app = create_app(sample.data / "versions", None, None, tmp_path / "index.sqlite",
                     runs_db=str(tmp_path / "absent.sqlite"), refresh_interval=0)
    data = app.test_client().get("/Acme.json").get_json()
    assert {d["status"]["state"] for d in data["documents"]} == {"unknown"}
    app.extensions["termshift"].close()


def test_document_timeline_is_newest_first_and_hides_technical_upgrades(client, sample):
    data = client.get(f"{PRIVACY}.json").get_json()
    assert [v["id"] for v in data["versions"]] == [sample.ids["privacy_3"], sample.ids["privacy_2"],
                                                   sample.ids["privacy_1"]]
    assert data["document"]["status"]["state"] == "failing"
    shown = client.get(f"{PRIVACY}.json?technical=1").get_json()
    assert [v["id"] for v in shown["versions"]] == [sample.ids["privacy_3"], sample.ids["privacy_technical"],
                                                    sample.ids["privacy_2"], sample.ids["privacy_1"]]
    first = shown["versions"][-1]
    assert first["is_first_record"] and first["words_added"] == first["words"]
    page = html(client.get(PRIVACY))
    assert "Show technical upgrades" in page
    assert f'action="{PRIVACY}/compare"' in page
    assert page.count('type="radio" name="from"') == 3
    assert 'href="/feed/Acme/Privacy%20Policy.atom"' in page


# --------------------------------------------------------------------------- versions


def test_version_by_id_abbreviation_and_date(client, sample):
    full = client.get(f"{PRIVACY}/{sample.ids['privacy_1']}.json").get_json()
    short = client.get(f"{PRIVACY}/{sample.ids['privacy_1'][:7]}.json").get_json()
    assert full["version"]["id"] == short["version"]["id"] == sample.ids["privacy_1"]
    assert full["requested_date"] is None
    in_force = client.get(f"{PRIVACY}/2024-02-15T00:00:00Z.json").get_json()
    assert in_force["version"]["id"] == sample.ids["privacy_1"]
    assert in_force["requested_date"] == "2024-02-15T00:00:00Z"
    assert client.get(f"{PRIVACY}/2024-03-18.json").get_json()["version"]["id"] == sample.ids["privacy_1"]
    assert client.get(f"{PRIVACY}/2024-06-01.json").get_json()["version"]["id"] == sample.ids["privacy_3"]
    assert "We keep it for five years." in client.get(f"{PRIVACY}/2025-01-01.json").get_json()["content"]
    assert client.get(f"{PRIVACY}/2023-01-01T00:00:00Z").status_code == 404  # before the first version
    assert client.get(f"{PRIVACY}/not-a-ref").status_code == 400
    assert client.get(f"{PRIVACY}/{'0' * 40}").status_code == 404


def test_a_date_shared_by_two_versions_resolves_to_the_later_and_ids_stay_addressable(client, sample):
    at_date = client.get(f"{PRIVACY}/2024-03-18T18:30:09Z.json").get_json()
    assert at_date["version"]["id"] == sample.ids["privacy_technical"]
    assert at_date["version"]["url"] == f"{PRIVACY}/2024-03-18T18:30:09Z"
    change = client.get(f"{PRIVACY}/{sample.ids['privacy_2']}.json").get_json()
    # Its date names the technical upgrade, so its permalink uses its id.
    assert change["version"]["url"] == f"{PRIVACY}/{sample.ids['privacy_2'][:12]}"
    assert change["next"]["id"] == sample.ids["privacy_technical"]
    assert change["previous"]["id"] == sample.ids["privacy_1"]


def test_version_page_renders_markdown_and_links_its_snapshots(client, sample):
    page = html(client.get(f"{PRIVACY}/{sample.ids['privacy_3']}"))
    # The document's headings nest under the page's own h1.
    assert "<h3>Cookies</h3>" in page and "<h2>Privacy Policy</h2>" in page
    assert f'href="/-/snapshot/{sample.ids["privacy_snapshot_3"]}"' in page
    assert f'<link rel="canonical" href="{PRIVACY}/2024-06-01T00:00:00Z">' in page
    imprint = client.get(f"/Acme/Imprint/{sample.ids['imprint_1']}.json").get_json()
    assert imprint["snapshots"] == [{"id": "0123456789abcdef0123456789abcdef01234567", "url": None,
                                     "reference": "https://github.com/OpenTermsArchive/demo-snapshots/commit/"
                                                  "0123456789abcdef0123456789abcdef01234567", "location": None}]
    combined = client.get(f"/Acme/Terms%20of%20Service/{sample.ids['tos_1']}.json").get_json()
    assert {s["id"] for s in combined["snapshots"]} == {sample.ids["tos_snapshot_a"], sample.ids["tos_snapshot_b"]}


def test_markdown_download_is_the_exact_stored_text(client, sample):
    response = client.get(f"{PRIVACY}/{sample.ids['privacy_3']}.md")
    assert response.status_code == 200 and response.mimetype == "text/markdown"
    assert response.get_data(as_text=True) == PRIVACY_V3
    assert "attachment" in response.headers["Content-Disposition"]


def test_hostile_markdown_is_sanitised(client, sample):
    page = html(client.get(f"{CAFE}/{sample.ids['hostile_version']}"))
    article = lxml.html.fromstring(page).xpath("//article")[0]
    assert article.xpath("//script[not(@src)]") == [] and article.xpath(".//img | .//iframe | .//object") == []
    assert [name for element in article.iter() for name in element.attrib if name.startswith("on")] == []
    links = {a.text_content(): a.get("href") for a in article.xpath(".//a")}
    assert links == {"[tracking pixel]": "https://tracker.example/pixel.png", "Relative link": None}
    # The dangerous bits survive only as visible, inert text.
    assert "<script>window.pwned = 1</script>" in article.text_content()
    assert "Conditions générales" in article.xpath(".//h2")[0].text


def test_old_style_diff_links_redirect(client, sample):
    response = client.get(f"{PRIVACY}/{sample.ids['privacy_3']}?diff")
    assert response.status_code == 302 and response.headers["Location"] == f"{PRIVACY}/2024-06-01T00:00:00Z/diff"


# --------------------------------------------------------------------------- diffs


def test_diff_with_the_previous_version_highlights_words(client, sample):
    data = client.get(f"{PRIVACY}/{sample.ids['privacy_2']}/diff.json").get_json()
    assert data["old"]["id"] == sample.ids["privacy_1"] and data["new"]["id"] == sample.ids["privacy_2"]
    assert data["summary"]["words_removed"] == 1 and data["summary"]["words_added"] == 5
    assert data["summary"]["sections"] == [{"title": "Sharing", "change": 1}]
    segments = next(h for h in data["hunks"] if h["kind"] == "change")["segments"]
    assert [-1, "never"] in segments and [1, "may"] in segments
    inline = html(client.get(f"{PRIVACY}/{sample.ids['privacy_2']}/diff"))
    assert "<del>never</del>" in inline and "<ins>may</ins>" in inline
    assert 'id="change-1"' in inline and '<a href="#change-1">Sharing</a>' in inline
    split = html(client.get(f"{PRIVACY}/{sample.ids['privacy_2']}/diff?view=split"))
    assert 'class="diff diff-split"' in split
    assert re.search(r'<td class="text old">.*<del>never</del>', split)
    assert re.search(r'<td class="text new">.*<ins>may</ins>', split)


def test_diff_between_any_two_versions_and_compare_form(client, sample):
    data = client.get(f"{PRIVACY}/{sample.ids['privacy_3']}/diff.json?from={sample.ids['privacy_1']}").get_json()
    assert data["old"]["id"] == sample.ids["privacy_1"]
    assert [s["title"] for s in data["summary"]["sections"]] == ["Privacy Policy", "Sharing", "Your rights", "Cookies"]
    # The form may give the versions in either order.
    response = client.get(f"{PRIVACY}/compare?from=2024-06-01T00:00:00Z&to={sample.ids['privacy_1']}")
    assert response.status_code == 303
    assert response.headers["Location"] == f"{PRIVACY}/2024-06-01T00:00:00Z/diff?from=2024-01-10T10%3A00%3A00Z"
    assert client.get(f"{PRIVACY}/compare?from=2024-06-01").status_code == 400


def test_diff_navigation_between_changes_skips_technical_upgrades(client, sample):
    data = client.get(f"{PRIVACY}/{sample.ids['privacy_3']}/diff.json").get_json()
    assert data["old"]["id"] == sample.ids["privacy_technical"]  # what this commit changed
    assert data["previous_change_url"] == f"{PRIVACY}/{sample.ids['privacy_2'][:12]}/diff"
    assert data["next_change_url"] is None
    first = client.get(f"{PRIVACY}/{sample.ids['privacy_1']}/diff.json").get_json()
    assert first["old"] is None and first["summary"]["words_removed"] == 0
    assert first["next_change_url"] == f"{PRIVACY}/{sample.ids['privacy_2'][:12]}/diff"


def test_diff_context_and_view_options(client, sample):
    url = f"{PRIVACY}/{sample.ids['privacy_3']}/diff"
    assert "unchanged line" in html(client.get(url + "?context=0"))
    assert "unchanged line" not in html(client.get(url + "?context=all"))
    assert client.get(url + "?context=-1").status_code == 400
    assert client.get(url + "?view=fancy").status_code == 400


def test_computed_diffs_are_cached_by_blob_ids_and_read_back_whole(app, client, sample, monkeypatch):
    viewer = app.extensions["termshift"]
    url = f"{PRIVACY}/{sample.ids['privacy_3']}/diff.json?from={sample.ids['privacy_1']}"
    computed = client.get(url).get_json()
    cached = viewer.catalog._all("SELECT old_blob, new_blob FROM diff_cache")
    assert len(cached) >= 1
    # Another viewer on the same index (nothing in memory) answers from the cache, which
    # keeps unchanged lines as positions in the old text: the same hunks, lines included.
    monkeypatch.setattr("termshift.web.state.compare", lambda *args: pytest.fail("computed again"))
    again = create_app(sample.data / "versions", sample.data / "snapshots", sample.declarations,
                       sample.data / "index.sqlite", refresh_interval=0, testing=True)
    try:
        from_cache = again.test_client().get(url).get_json()
    finally:
        again.extensions["termshift"].close()
    assert any(hunk["kind"] == "equal" and hunk["old_lines"] for hunk in computed["hunks"])
    assert from_cache["hunks"] == computed["hunks"] and from_cache["summary"] == computed["summary"]


# --------------------------------------------------------------------------- snapshots and security


def test_snapshot_page_embeds_the_page_in_a_sandbox_and_shows_escaped_source(client, sample):
    snapshot = sample.ids["hostile_snapshot"]
    page = html(client.get(f"/-/snapshot/{snapshot}"))
    assert f'<iframe class="snapshot-frame" src="/-/snapshot/{snapshot}/raw" sandbox=""' in page
    assert "&lt;script&gt;try { window.top.document.title" in page
    assert "<script>try" not in page
    data = client.get(f"/-/snapshot/{snapshot}.json").get_json()
    assert data["location"] == "https://cafe.example/cgv"
    assert [v["id"] for v in data["versions"]] == [sample.ids["hostile_version"]]


def test_raw_snapshot_is_served_under_the_strictest_policy(client, sample):
    response = client.get(f"/-/snapshot/{sample.ids['hostile_snapshot']}/raw")
    assert response.status_code == 200 and response.mimetype == "text/html"
    policy = response.headers["Content-Security-Policy"]
    for directive in ("default-src 'none'", "style-src 'unsafe-inline'", "img-src data:", "sandbox"):
        assert directive in [part.strip() for part in policy.split(";")]
    assert "script-src" not in policy
    assert response.headers["X-Content-Type-Options"] == "nosniff"
    assert response.headers["Referrer-Policy"] == "no-referrer"


def test_raw_snapshot_is_inline_only_in_a_frame(client, sample):
    url = f"/-/snapshot/{sample.ids['hostile_snapshot']}/raw"
    framed = client.get(url, headers={"Sec-Fetch-Dest": "iframe"})
    assert framed.status_code == 200 and "Content-Disposition" not in framed.headers
    assert "Sec-Fetch-Dest" in framed.headers["Vary"]
    for headers in ({}, {"Sec-Fetch-Dest": "document"}, {"Sec-Fetch-Dest": "empty"}):
        direct = client.get(url, headers=headers)  # a link, the address bar, a script
        assert direct.headers["Content-Disposition"].startswith("attachment; filename=\"snapshot-"), headers
        assert "Sec-Fetch-Dest" in direct.headers["Vary"]
        assert direct.get_data() == framed.get_data()


def test_viewer_pages_have_security_headers_and_no_inline_script(client, sample):
    for url, _schema in twin_cases(sample):
        response = client.get(url)
        assert response.headers["Content-Security-Policy"] == PAGE_POLICY
        assert "frame-ancestors 'none'" in PAGE_POLICY and "script-src 'self'" in PAGE_POLICY
        assert response.headers["X-Frame-Options"] == "DENY"
        assert response.headers["X-Content-Type-Options"] == "nosniff"
        body = response.get_data(as_text=True)
        assert re.findall(r"<script(?![^>]*\bsrc=)[^>]*>", body) == [], url
        assert " style=" not in body and " onclick=" not in body, url


@pytest.mark.parametrize("path", [
    "/Nobody", "/Nobody.json", "/Acme/Nope", "/Acme/Nope.json", "/Acme/..", "/../etc/passwd", "/Acme/%2e%2e/x",
    "/Acme/Privacy%20Policy/..", "/Acme/Privacy%20Policy/%00", "/Acme%00", "/Acme/Privacy%20Policy%00",
    "/" + "A" * 5000, "/Acme/" + "B" * 5000, f"{PRIVACY}/{'a' * 3000}", f"{PRIVACY}/2024-13-45",
    "/-/snapshot/zzz", "/-/snapshot/..", "/-/snapshot/%00/raw", "/-/snapshot/" + "f" * 5000,
    "/api/v1/service/..", "/api/v1/version/Acme/..%2F..%2F/2024-01-01", "/api/v1/nothing",
    f"{PRIVACY}/{'0' * 12}/diff", f"{PRIVACY}/2024-06-01/diff?from=%00", "/-/changes?service=%00",
])
def test_malformed_paths_get_404_or_400_never_500(client, path):
    response = client.get(path)
    assert response.status_code in (400, 404), (path, response.status_code)
    json_response = client.get(path, headers={"Accept": "application/json"})
    assert json_response.status_code in (400, 404)
    if path.startswith("/api/v1/service/"):  # OTA answers this one in plain text
        assert json_response.get_data(as_text=True) == "Service not found"
    else:
        assert "error" in json_response.get_json()


def test_unknown_paths_answer_json_errors_to_json_clients(client):
    response = client.get("/Nobody.json")
    assert response.status_code == 404 and response.get_json()["status"] == 404


# --------------------------------------------------------------------------- languages


def test_language_follows_accept_language_then_switch_and_cookie(app):
    client = app.test_client()
    page = html(client.get("/", headers={"Accept-Language": "fr-FR,fr;q=0.9,en;q=0.5"}))
    assert '<html lang="fr">' in page and "Derniers changements" in page
    english = html(client.get("/?lang=en", headers={"Accept-Language": "fr"}))
    assert '<html lang="en">' in english and "Latest changes" in english
    remembered = html(client.get("/Acme", headers={"Accept-Language": "fr"}))  # cookie set by ?lang=en
    assert '<html lang="en">' in remembered
    french = html(client.get("/Acme?lang=fr"))
    assert "Derniers changements de ce service" in french and "3 échecs de suite" in french
    assert 'hreflang="en"' in french and 'href="/Acme?lang=en"' in french


def test_every_interface_text_has_a_french_translation():
    from termshift.web import i18n

    templates = Path(__file__).resolve().parent.parent / "termshift" / "web" / "templates"
    singles, plurals = set(), set()
    for template in [*templates.glob("*.html"), *templates.glob("health/*.html")]:
        source = template.read_text(encoding="utf-8")
        for double, single in re.findall(r"""\b_\(\s*(?:"([^"]*)"|'([^']*)')""", source):
            singles.add(double or single)
        plurals |= set(re.findall(r'\b_n\(\s*"([^"]+)"\s*,\s*"([^"]+)"', source))
    singles |= set(i18n.KIND_NAMES.values()) | set(i18n.STATUS_NAMES.values()) | set(i18n.ERROR_TITLES.values())
    # Texts that reach `_()` through a variable: names of changed spaces, error explanations.
    from termshift.web.diffview import OTHER_SPACE, WHITESPACE_MARKS
    from termshift.web.error_pages import DateInTheFuture

    singles |= {name for _mark, name in [*WHITESPACE_MARKS.values(), OTHER_SPACE]}
    future = DateInTheFuture(datetime(2099, 1, 1, tzinfo=UTC), "/")
    singles |= {future.explanation[0], future.link[1]}
    assert len(singles) > 100
    assert sorted(singles - set(i18n.FRENCH)) == []
    assert sorted(plurals - set(i18n.FRENCH_PLURALS)) == []


# --------------------------------------------------------------------------- accessibility basics


def test_pages_have_landmarks_skip_link_and_one_h1(client, sample):
    for url, _schema in twin_cases(sample):
        page = html(client.get(url))
        assert '<a class="skip-link" href="#main">' in page, url
        assert '<main id="main"' in page and "<header" in page and "<footer" in page and "<nav" in page
        assert page.count("<h1") == 1, url
        for input_id in re.findall(r'<(?:input|select)[^>]*\bid="([^"]+)"', page):
            assert f'for="{input_id}"' in page, (url, input_id)


def _luminance(hex_colour: str) -> float:
    channels = [int(hex_colour[i:i + 2], 16) / 255 for i in (1, 3, 5)]
    linear = [c / 12.92 if c <= 0.03928 else ((c + 0.055) / 1.055) ** 2.4 for c in channels]
    return 0.2126 * linear[0] + 0.7152 * linear[1] + 0.0722 * linear[2]


def contrast(first: str, second: str) -> float:
    lighter, darker = sorted((_luminance(first), _luminance(second)), reverse=True)
    return (lighter + 0.05) / (darker + 0.05)


def test_colour_pairs_of_the_stylesheet_meet_wcag_aa():
    css = (Path(__file__).resolve().parent.parent / "termshift/web/static/style.css").read_text()
    colours = dict(re.findall(r"--([\w-]+):\s*(#[0-9a-fA-F]{6});", css))
    pairs = [("text", "background"), ("muted", "background"), ("muted", "surface"), ("link", "background"),
             ("link", "surface"), ("link-visited", "background"), ("ins-text", "ins-background"),
             ("del-text", "del-background"), ("ins-mark", "ins-background"), ("del-mark", "del-background"),
             ("ins-mark", "background"), ("del-mark", "background"), ("text", "change-background")]
    for foreground, background in pairs:
        ratio = contrast(colours[foreground], colours[background])
        assert ratio >= 4.5, (foreground, background, round(ratio, 2))
    # Insertions and deletions differ in more than hue alone: their backgrounds differ in lightness too?
    # No: they are told apart by +/− signs and underline vs strike-through (checked in the diff tests).
    assert "text-decoration: underline" in css and "text-decoration: line-through" in css


def test_print_stylesheet_hides_navigation_and_keeps_diff_colours():
    css = (Path(__file__).resolve().parent.parent / "termshift/web/static/style.css").read_text()
    printed = css[css.index("@media print"):]
    assert ".site-header" in printed and "print-color-adjust: exact" in printed


# --------------------------------------------------------------------------- refresh and feeds


def test_new_commits_appear_after_a_refresh_without_restart(tmp_path):
    sample = build_sample_archive(tmp_path)
    app = create_app(sample.data / "versions", sample.data / "snapshots", None, tmp_path / "index.sqlite",
                     refresh_interval=0.01)
    client = app.test_client()
    _snapshot, version = sample.factory.record("Acme", "Privacy Policy", "2024-08-01T00:00:00Z", "<main/>",
                                               PRIVACY_V3 + "\nNew paragraph.\n")
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        time.sleep(0.05)
        data = client.get(f"{PRIVACY}.json").get_json()  # each request pokes the refresher
        if data["versions"][0]["id"] == version:
            break
    assert data["versions"][0]["id"] == version
    app.extensions["termshift"].close()


def test_app_starts_without_the_feeds_module(sample, tmp_path, monkeypatch):
    import sys

    monkeypatch.setitem(sys.modules, "termshift.web.feed_routes", None)  # import now fails
    app = create_app(sample.data / "versions", None, None, tmp_path / "index.sqlite", refresh_interval=0)
    client = app.test_client()
    assert client.get("/feed.atom").status_code == 404
    page = html(client.get("/"))
    assert "/feed.atom" not in page
    assert client.get("/index.json").get_json()["feeds"] is None
    app.extensions["termshift"].close()


# --------------------------------------------------------------------------- every route


def test_every_route_answers(app, client, sample):
    """One request per endpoint of the viewer; the test fails if a route is added untested."""
    ids = sample.ids
    version = f"{PRIVACY}/{ids['privacy_2']}"
    examples = {
        "pages.home": "/", "pages.home_json": "/index.json", "pages.changes": "/-/changes",
        "pages.changes_json": "/-/changes.json", "pages.search": "/-/search?q=data",
        "pages.search_json": "/-/search.json?q=data", "pages.service": "/Acme", "pages.document": PRIVACY,
        "pages.reserved_service": "/-/service/Acme", "pages.reserved_document": "/-/service/Acme/Privacy%20Policy",
        "versions.version": version, "versions.diff": version + "/diff", "versions.diff_json": version + "/diff.json",
        "versions.compare": f"{PRIVACY}/compare?from=2024-01-11&to=2024-06-01",
        "versions.reserved_version": f"/-/service/Acme/Privacy%20Policy/{ids['privacy_2']}",
        "versions.reserved_diff": f"/-/service/Acme/Privacy%20Policy/{ids['privacy_2']}/diff",
        "versions.reserved_diff_json": f"/-/service/Acme/Privacy%20Policy/{ids['privacy_2']}/diff.json",
        "versions.reserved_compare": "/-/service/Acme/Privacy%20Policy/compare?from=2024-01-11&to=2024-06-01",
        "snapshots.snapshot": f"/-/snapshot/{ids['privacy_snapshot_1']}",
        "snapshots.raw": f"/-/snapshot/{ids['privacy_snapshot_1']}/raw",
        "api.welcome": "/api/v1/", "api.docs": "/api/v1/docs", "api.openapi": "/api/v1/openapi.json",
        "api.metadata": "/api/v1/metadata", "api.services": "/api/v1/services", "api.service": "/api/v1/service/Acme",
        "api.version": "/api/v1/version/Acme/Privacy%20Policy/2024-06-01T00:00:00Z",
        "static": "/-/static/style.css", "pages.favicon": "/favicon.ico",
    }
    # Blueprints of other modules (feeds, health, declare) are tested with them.
    endpoints = {rule.endpoint for rule in app.url_map.iter_rules()
                 if not rule.endpoint.startswith(("feeds.", "health.", "declare."))}
    assert endpoints == set(examples)
    for endpoint, url in examples.items():
        response = client.get(url)
        assert response.status_code in (200, 303), (endpoint, url, response.status_code)


def test_a_service_named_like_a_viewer_route_is_reachable(tmp_path):
    from tests.support.archive_factory import ArchiveFactory

    factory = ArchiveFactory(tmp_path / "data")
    factory.version("api", "Terms of Service", "2024-01-01T00:00:00Z", "One.\n")
    factory.version("api", "Terms of Service", "2024-02-01T00:00:00Z", "Two.\n")
    app = create_app(factory.versions, None, None, tmp_path / "index.sqlite", refresh_interval=0)
    client = app.test_client()
    home = client.get("/index.json").get_json()
    service = home["services"][0]
    assert service["url"] == "/-/service/api"
    assert client.get(service["url"] + ".json").get_json()["name"] == "api"
    document = client.get(service["documents"][0]["json_url"]).get_json()
    diff = client.get(document["versions"][0]["diff_url"] + ".json").get_json()
    assert diff["summary"]["words_added"] == 1 and diff["summary"]["words_removed"] == 1
    app.extensions["termshift"].close()


def test_snapshot_pages_need_the_snapshots_repository(sample, tmp_path):
    app = create_app(sample.data / "versions", None, None, tmp_path / "index.sqlite", refresh_interval=0)
    client = app.test_client()
    assert client.get(f"/-/snapshot/{sample.ids['privacy_snapshot_1']}").status_code == 404
    version = client.get(f"{PRIVACY}/{sample.ids['privacy_1']}.json").get_json()
    assert version["snapshots"][0]["url"] is None and version["snapshots"][0]["reference"].startswith("https://")
    app.extensions["termshift"].close()


def test_pages_do_not_wait_for_a_refresh_holding_the_index(app, client, sample):
    """A long refresh writes in one transaction; readers and cache writes must not block on it."""
    import sqlite3

    writer = sqlite3.connect(app.extensions["termshift"].catalog.path, timeout=1)
    writer.execute("BEGIN IMMEDIATE")  # what a refresh holds while it indexes
    try:
        started = time.perf_counter()
        # A pair no other test compares, and a version no other test renders: both are computed
        # now, and their cache writes are skipped rather than waited for.
        url = f"{PRIVACY}/{sample.ids['privacy_1']}/diff?from={sample.ids['privacy_3'][:9]}&view=split"
        assert client.get(url).status_code == 200
        assert client.get(f"{PRIVACY}/{sample.ids['privacy_technical'][:10]}").status_code == 200
        assert time.perf_counter() - started < 3
    finally:
        writer.rollback()
        writer.close()


def test_health_and_declare_blueprints_are_registered_when_present(app, client):
    pytest.importorskip("termshift.web.health_routes")
    assert client.get("/healthz").status_code in (200, 503)
    endpoints = {rule.endpoint.split(".")[0] for rule in app.url_map.iter_rules()}
    assert {"health", "feeds"} <= endpoints


def test_advertised_feeds_are_served_when_the_feeds_module_is_present(client):
    pytest.importorskip("termshift.web.feed_routes")
    home = client.get("/index.json").get_json()
    acme = next(service for service in home["services"] if service["id"] == "Acme")
    privacy = next(d for d in acme["documents"] if d["terms_type"] == "Privacy Policy")
    service_feeds = client.get("/Acme.json").get_json()["feeds"]
    for url in (*home["feeds"].values(), *service_feeds.values(), *privacy["feeds"].values()):
        response = client.get(url)
        assert response.status_code == 200, url
        assert response.mimetype in ("application/atom+xml", "application/rss+xml"), url


# --------------------------------------------------------------------------- QA fixes


def language_link(page: str, code: str) -> str:
    [link] = lxml.html.fromstring(page).xpath(f'//nav[@class="language"]//a[@hreflang="{code}"]')
    return link.get("href")


def test_language_links_keep_the_encoded_path_and_the_other_arguments(tmp_path):
    from tests.support.archive_factory import ArchiveFactory

    name = "Café & Co #1?"
    factory = ArchiveFactory(tmp_path / "data")
    factory.version(name, "Terms of Service", "2024-01-01T00:00:00Z", "One.\n")
    factory.version(name, "Terms of Service", "2024-02-01T00:00:00Z", "Two.\n")
    app = create_app(factory.versions, None, None, tmp_path / "index.sqlite", refresh_interval=0)
    client = app.test_client()
    document = "/" + quote(name, safe="") + "/Terms%20of%20Service"
    assert document == "/Caf%C3%A9%20%26%20Co%20%231%3F/Terms%20of%20Service"
    for url in (document, f"{document}/2024-02-01T00:00:00Z/diff?view=split&context=all"):
        href = language_link(html(client.get(url)), "fr")
        path, _, query = href.partition("?")
        assert path == url.partition("?")[0]  # still percent-encoded: no raw space, `#` or `?`
        french = client.get(href)
        assert '<html lang="fr">' in html(french)
        assert language_link(french.get_data(as_text=True), "en") == href.replace("lang=fr", "lang=en")
    assert query == "view=split&context=all&lang=fr"
    changes = html(client.get("/-/changes?service=" + quote(name, safe="") + "&technical=1"))
    assert language_link(changes, "fr") == "/-/changes?service=Caf%C3%A9+%26+Co+%231%3F&technical=1&lang=fr"
    app.extensions["termshift"].close()


def test_a_whitespace_only_change_is_labelled_and_its_spaces_are_visible(tmp_path):
    from tests.support.archive_factory import ArchiveFactory
    from tests.test_web_diffing import UPTIMEROBOT, UPTIMEROBOT_NBSP

    factory = ArchiveFactory(tmp_path / "data")
    factory.version("UptimeRobot", "Privacy Policy", "2026-05-05T00:30:00Z", UPTIMEROBOT)
    factory.version("UptimeRobot", "Privacy Policy", "2026-06-24T12:30:22Z", UPTIMEROBOT_NBSP)
    app = create_app(factory.versions, None, None, tmp_path / "index.sqlite", refresh_interval=0)
    client = app.test_client()
    url = "/UptimeRobot/Privacy%20Policy/2026-06-24T12:30:22Z/diff"
    data = client.get(url + ".json").get_json()
    assert data["summary"]["whitespace_only"] is True
    assert (data["summary"]["words_added"], data["summary"]["words_removed"], data["summary"]["changes"]) == (0, 0, 2)
    timeline = client.get("/UptimeRobot/Privacy%20Policy.json").get_json()["versions"]
    assert (timeline[0]["words_added"], timeline[0]["words_removed"]) == (0, 0)  # the index agrees
    for view in ("inline", "split"):
        tree = lxml.html.fromstring(html(client.get(f"{url}?view={view}")))
        summary = tree.xpath('//section[@class="summary"]')[0].text_content()
        assert "whitespace only" in summary and "words added" not in summary
        marks = tree.xpath('//ins[@class="ws"]/span[@class="ws-mark"]')
        assert len(marks) == 6
        assert {mark.get("title") for mark in marks} == {"non-breaking space (U+00A0)"}
        assert {mark.xpath('span[@aria-hidden="true"]')[0].text for mark in marks} == {"⍽"}
        removed = tree.xpath('//del[@class="ws"]/span[@class="ws-mark"]')
        assert {mark.get("title") for mark in removed} == {"space (U+0020)"} and len(removed) == 6
    french = html(client.get(url + "?lang=fr"))
    assert "espaces seulement" in french and 'title="espace insécable (U+00A0)"' in french
    app.extensions["termshift"].close()


def test_a_document_with_only_its_first_record_says_so(client):
    page = html(client.get("/Acme/Terms%20of%20Service"))
    versions = lxml.html.fromstring(page).xpath('//dl[@class="facts"]/dt[.="Versions"]/following-sibling::dd[1]')
    assert versions[0].text_content().strip() == "1 version (first record)"
    privacy = lxml.html.fromstring(html(client.get(PRIVACY)))
    counts = privacy.xpath('//dl[@class="facts"]/dt[.="Versions"]/following-sibling::dd[1]')[0].text_content()
    assert counts.strip() == "4 versions (first record, 2 changes and 1 technical upgrade)"
    french = html(client.get("/Acme/Terms%20of%20Service?lang=fr"))
    assert "1 version (premier enregistrement)" in french


def test_home_and_service_pages_say_first_recorded_when_nothing_changed_since(client, sample):
    home = lxml.html.fromstring(html(client.get("/")))
    items = {item.xpath("a")[0].text: " ".join(item.xpath('span[@class="meta"]')[0].text_content().split())
             for item in home.xpath('//ul[@class="document-list"]/li')}
    assert items["Terms of Service"].startswith("first recorded 2024-")  # Acme's and Café & Co's
    assert items["Privacy Policy"] == "last change 2024-06-01"
    data = client.get("/index.json").get_json()
    acme = next(service for service in data["services"] if service["id"] == "Acme")
    firsts = {d["terms_type"]: d["last_change"]["is_first_record"] for d in acme["documents"]}
    assert firsts == {"Imprint": True, "Privacy Policy": False, "Terms of Service": True}
    tos = next(d for d in acme["documents"] if d["terms_type"] == "Terms of Service")
    assert f'<a href="{tos["last_change"]["url"]}">' in html(client.get("/"))  # the version, not a diff
    service = html(client.get("/Acme"))
    assert "first recorded" in service
    assert "premier enregistrement" in html(client.get("/?lang=fr"))


def test_a_date_in_the_future_is_416_as_in_ota_api(client, sample):
    future = f"{PRIVACY}/2099-01-01T00:00:00Z"
    for url in (future + ".json", future + "/diff.json"):
        response = client.get(url)
        assert response.status_code == 416, url
        assert response.get_json() == {"error": "Requested version is in the future", "status": 416}
    assert client.get(future, headers={"Accept": "application/json"}).status_code == 416
    page = client.get(future)
    assert page.status_code == 416 and page.mimetype == "text/html"
    tree = lxml.html.fromstring(page.get_data(as_text=True))
    assert tree.xpath("//h1")[0].text == "Date in the future"
    assert "2099-01-01T00:00:00Z is in the future" in tree.xpath("//main")[0].text_content()
    assert tree.xpath('//main//a[.="See the current version"]/@href') == [f"{PRIVACY}/2024-06-01T00:00:00Z"]
    french = client.get(future + "?lang=fr").get_data(as_text=True)
    assert "Date dans le futur" in french and "Voir la version en vigueur" in french
    # A past date after the last version is still "the version in force then".
    assert client.get(f"{PRIVACY}/2025-01-01T00:00:00Z.json").get_json()["version"]["id"] == sample.ids["privacy_3"]


def test_a_failing_document_says_since_when_which_error_and_what_error(client):
    tree = lxml.html.fromstring(html(client.get(PRIVACY)))
    [alert] = tree.xpath('//section[contains(@class, "tracking-alert")]')
    assert alert.xpath("h2")[0].text == "Tracking of this document is failing"
    facts = {dt.text: " ".join(dt.getnext().text_content().split()) for dt in alert.xpath(".//dt")}
    assert facts == {"Failing since": "2024-06-02 12:00 UTC (3 failures in a row)", "Error class": "transient",
                     "Last error": "Received HTTP code 503", "Last successful fetch": "2024-06-01 00:00 UTC"}
    # It comes before the history, right under the title.
    assert alert.getprevious().tag == "h1"
    healthy = html(client.get("/Acme/Terms%20of%20Service"))
    assert "tracking-alert" not in healthy


def test_status_page_has_the_site_layout_and_the_favicon_is_served(app, client):
    pytest.importorskip("termshift.web.health_routes")
    tree = lxml.html.fromstring(html(client.get("/status")))
    assert tree.xpath('//a[@class="skip-link"]') and tree.xpath("//header") and tree.xpath("//footer")
    assert tree.xpath('//nav[@aria-label="Main"]//a[@aria-current="page"]/@href') == ["/status"]
    assert language_link(html(client.get("/status")), "fr") == "/status?lang=fr"
    stylesheets = tree.xpath('//link[@rel="stylesheet"]/@href')
    assert stylesheets == ["/-/static/style.css", "/-/health/status.css"]
    assert all(client.get(href).status_code == 200 for href in stylesheets)
    assert tree.xpath("//h1")[0].text == "Service status" and len(tree.xpath("//h1")) == 1
    assert "État du service" in html(client.get("/status?lang=fr"))
    icon = client.get("/favicon.ico")
    assert icon.status_code == 200 and icon.mimetype == "image/vnd.microsoft.icon"
    assert icon.data[:4] == b"\x00\x00\x01\x00" and b"PNG" in icon.data[:64]  # an ICO holding a PNG


def test_the_viewer_caches_keep_the_most_recently_used_entries_across_threads():
    import threading

    from termshift.web.state import LRU

    cache = LRU(2)
    cache.put("a", 1)
    cache.put("b", 2)
    assert cache.get("a") == 1  # "a" is now the most recently used
    cache.put("c", 3)
    assert (cache.get("b"), cache.get("a"), cache.get("c"), cache.get("missing")) == (None, 1, 3, None)
    calls = []
    assert cache.get_or_compute("d", lambda: calls.append("d") or 4) == 4
    assert cache.get_or_compute("d", lambda: calls.append("again") or 5) == 4 and calls == ["d"]

    shared = LRU(64)

    def work(start: int) -> None:
        for number in range(start, start + 2000):
            shared.get_or_compute(number % 100, lambda number=number: number % 100)
            shared.get(number % 50)

    threads = [threading.Thread(target=work, args=(offset * 1000,)) for offset in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(shared) == 64 and all(shared.get(key) == key for key in list(shared))
