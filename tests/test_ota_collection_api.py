"""Termshift as a drop-in Open Terms Archive collection API (issue 15).

Mirrors OTA's own collection-API tests (`src/collection-api/routes/*.test.js` of the npm
package `@opentermsarchive/engine`): a collection with declarations and a `metadata.yml`,
a versions repository seeded with OTA's record format by the real archive writer, then
the routes queried, their whole bodies compared with what OTA answers for the same data.
Also: ids looked up ignoring case, answers as fresh as the repository (queried right after
a commit, in this process and from another one through a real server), 404/416/400.
"""

from __future__ import annotations

import json
import time
import urllib.error
import urllib.parse
import urllib.request
from datetime import UTC, datetime, timedelta
from pathlib import Path

import jsonschema
import pytest
from click.testing import CliRunner

from termshift.archive_repo import Archive, Version
from termshift.collection_metadata import read_metadata
from termshift.commands.config import config_group
from termshift.commands.validate import validate_command
from termshift.contrib.import_ota import import_collection
from termshift.web import create_app
from termshift.web.api import OTA_ENGINE_VERSION
from termshift.web.openapi import openapi_document
from tests.conftest import REPO_ROOT
from tests.test_web_cli import free_port, get_json, serve

SNAPSHOT_ID = "0123456789abcdef0123456789abcdef01234567"
FETCH_DATE = datetime(2023, 1, 1, 12, tzinfo=UTC)
ONE_HOUR = timedelta(hours=1)

# OTA's test collection metadata (metadata.test.js), as its metadata.yml holds it.
METADATA_YML = """\
id: test
name: test
tagline: Test collection
description: This is a test collection used for testing purposes.
dataset: https://github.com/OpenTermsArchive/test-versions/releases
declarations: https://github.com/OpenTermsArchive/test-declarations
versions: https://github.com/OpenTermsArchive/test-versions
snapshots: https://github.com/OpenTermsArchive/test-snapshots
donations: null
logo: https://opentermsarchive.org/images/logo/logo-open-terms-archive-black.png
languages:
  - en
jurisdictions:
  - EU
trackingPeriods:
  - startDate: 2025-07-17
    schedule: '30 */12 * * *'
    serverLocation: Strasbourg, FR
governance:
  Open Terms Archive:
    url: https://opentermsarchive.org
    logo: https://opentermsarchive.org/images/logo/logo-open-terms-archive-black.png
    roles: [host, sysadmin, curator, maintainer, contributor, analyst, diffuser, sponsor]
"""
EXPECTED_METADATA = {
    "id": "test", "name": "test", "tagline": "Test collection",
    "description": "This is a test collection used for testing purposes.",
    "dataset": "https://github.com/OpenTermsArchive/test-versions/releases",
    "declarations": "https://github.com/OpenTermsArchive/test-declarations",
    "versions": "https://github.com/OpenTermsArchive/test-versions",
    "snapshots": "https://github.com/OpenTermsArchive/test-snapshots",
    "donations": None,
    "logo": "https://opentermsarchive.org/images/logo/logo-open-terms-archive-black.png",
    "languages": ["en"], "jurisdictions": ["EU"],
    "trackingPeriods": [{"startDate": "2025-07-17", "schedule": "30 */12 * * *",
                         "serverLocation": "Strasbourg, FR"}],
    "governance": {"Open Terms Archive": {
        "url": "https://opentermsarchive.org",
        "logo": "https://opentermsarchive.org/images/logo/logo-open-terms-archive-black.png",
        "roles": ["host", "sysadmin", "curator", "maintainer", "contributor", "analyst", "diffuser", "sponsor"],
    }},
}

DECLARATIONS = {
    "service-1": {"name": "Service 1", "terms": {
        "Terms of Service": {"fetch": "https://service-1.example/tos", "select": "main"}}},
    "Service B!": {"name": "Service B!", "terms": {
        "Terms of Service": {"fetch": "https://b.example/tos", "select": ["main", {"startAfter": "h1",
                                                                                   "endBefore": "footer"}],
                             "remove": ".ads", "filter": [{"removeQueryParams": ["utm_source"]}],
                             "executeClientScripts": True},
        "Privacy Policy": {"combine": [{"fetch": "https://b.example/privacy", "select": "article"},
                                       {"fetch": "https://b.example/cookies", "select": "#cookies"}]}}},
    "service·A": {"name": "Service A", "terms": {
        "Imprint": {"fetch": "https://a.example/imprint", "select": "body"}}},
}

# What OTA's services router answers for DECLARATIONS (services.js: id, name, terms types in
# declaration order; sourceDocuments with only the fields a declaration sets).
EXPECTED_SERVICES = [
    {"id": "Service B!", "name": "Service B!", "terms": [{"type": "Terms of Service"}, {"type": "Privacy Policy"}]},
    {"id": "service-1", "name": "Service 1", "terms": [{"type": "Terms of Service"}]},
    {"id": "service·A", "name": "Service A", "terms": [{"type": "Imprint"}]},
]
EXPECTED_SERVICE_B = {"id": "Service B!", "name": "Service B!", "terms": [
    {"type": "Terms of Service", "sourceDocuments": [{
        "location": "https://b.example/tos",
        "contentSelectors": ["main", {"startAfter": "h1", "endBefore": "footer"}],
        "insignificantContentSelectors": ".ads", "executeClientScripts": True, "filters": ["removeQueryParams"]}]},
    {"type": "Privacy Policy", "sourceDocuments": [
        {"location": "https://b.example/privacy", "contentSelectors": "article"},
        {"location": "https://b.example/cookies", "contentSelectors": "#cookies"}]},
]}


def write_collection(root: Path, metadata: str | None = METADATA_YML) -> Path:
    """An OTA collection root: declarations/ and (optionally) metadata.yml beside it."""
    declarations = root / "declarations"
    declarations.mkdir(parents=True)
    for service_id, declaration in DECLARATIONS.items():
        (declarations / f"{service_id}.json").write_text(json.dumps(declaration), encoding="utf-8")
    if metadata is not None:
        (root / "metadata.yml").write_text(metadata, encoding="utf-8")
    return declarations


def record(data: Path, service_id: str, terms_type: str, fetch_date: datetime, content: str) -> Version:
    """Record a version with Termshift's archive writer (OTA's commit and file format)."""
    archive = Archive.open(data)
    try:
        return archive.versions.record(Version(service_id, terms_type, fetch_date, content,
                                               snapshot_ids=[SNAPSHOT_ID]))
    finally:
        archive.close()


def iso(moment: datetime) -> str:
    return moment.strftime("%Y-%m-%dT%H:%M:%SZ")


@pytest.fixture(scope="module")
def collection(tmp_path_factory):
    root = tmp_path_factory.mktemp("ota")
    declarations = write_collection(root)
    data = root / "data"
    versions = {name: record(data, "service-1", "Terms of Service", FETCH_DATE + offset, f"{name} content")
                for name, offset in (("initial", -ONE_HOUR), ("updated", timedelta(0)), ("latest", ONE_HOUR))}
    return root, declarations, data, versions


@pytest.fixture(scope="module")
def client(collection):
    root, declarations, data, _versions = collection
    app = create_app(data / "versions", None, declarations, root / "index.sqlite", refresh_interval=0)
    yield app.test_client()
    app.extensions["termshift"].close()


def schema_valid(name: str, body) -> bool:
    schema = {"$ref": f"#/components/schemas/{name}", "components": openapi_document()["components"]}
    jsonschema.validate(body, schema, cls=jsonschema.Draft202012Validator)
    return True


# ------------------------------------------------------------------ GET /metadata (metadata.test.js)


def test_metadata_is_the_collection_file_plus_totals_and_engine_version(client):
    response = client.get("/api/v1/metadata")
    assert response.status_code == 200 and response.mimetype == "application/json"
    assert response.get_json() == {**EXPECTED_METADATA, "totalServices": 3, "totalTerms": 4,
                                   "engineVersion": OTA_ENGINE_VERSION}


def test_metadata_follows_the_file_and_is_only_totals_without_it(collection, tmp_path):
    root = tmp_path / "collection"
    declarations = write_collection(root)
    app = create_app(collection[2] / "versions", None, declarations, tmp_path / "index.sqlite", refresh_interval=0)
    client = app.test_client()
    assert client.get("/api/v1/metadata").get_json()["name"] == "test"
    (root / "metadata.yml").write_text(METADATA_YML.replace("name: test", "name: Renamed collection"),
                                       encoding="utf-8")
    assert client.get("/api/v1/metadata").get_json()["name"] == "Renamed collection"
    (root / "metadata.yml").unlink()
    body = client.get("/api/v1/metadata").get_json()
    assert body == {"totalServices": 3, "totalTerms": 4, "engineVersion": OTA_ENGINE_VERSION}
    assert schema_valid("OtaMetadata", body)
    app.extensions["termshift"].close()


def test_metadata_path_can_be_configured(collection, tmp_path):
    custom = tmp_path / "elsewhere.yml"
    custom.write_text(METADATA_YML.replace("id: test", "id: elsewhere"), encoding="utf-8")
    declarations = write_collection(tmp_path / "collection", metadata=None)
    (tmp_path / "termshift.toml").write_text(f'metadata = "{custom}"\ndeclarations = "{declarations}"\n',
                                             encoding="utf-8")
    from termshift.config import load_settings

    settings = load_settings(tmp_path / "termshift.toml", environ={})
    app = create_app(collection[2] / "versions", None, declarations, tmp_path / "index.sqlite",
                     refresh_interval=0, settings=settings)
    assert app.test_client().get("/api/v1/metadata").get_json()["id"] == "elsewhere"
    app.extensions["termshift"].close()


# ------------------------------------------------------------------ GET /services, /service/:id (services.test.js)


def test_services_lists_every_declared_service_with_its_terms_types(client):
    response = client.get("/api/v1/services")
    assert response.status_code == 200 and response.mimetype == "application/json"
    assert response.get_json() == EXPECTED_SERVICES
    assert schema_valid("OtaServices", response.get_json())


@pytest.mark.parametrize("requested", ["Service%20B!", "service%20b!", "SERVICE%20B%21"])
def test_service_answers_the_same_body_whatever_the_case_of_the_id(client, requested):
    response = client.get(f"/api/v1/service/{requested}")
    assert response.status_code == 200 and response.mimetype == "application/json"
    assert response.get_json() == EXPECTED_SERVICE_B
    assert schema_valid("OtaService", response.get_json())


def test_unknown_service_is_404_service_not_found_as_express_sends_it(client):
    response = client.get("/api/v1/service/nonExistentService")
    assert response.status_code == 404
    assert response.mimetype == "text/html" and response.get_data(as_text=True) == "Service not found"


def test_a_service_whose_javascript_filters_are_not_ported_is_still_described(collection, tmp_path):
    declarations = write_collection(tmp_path / "collection")
    (declarations / "Scripted.json").write_text(json.dumps({"name": "Scripted", "terms": {"Imprint": {
        "fetch": "https://scripted.example/imprint", "select": "main", "filter": ["removeBanners"]}}}),
        encoding="utf-8")
    (declarations / "Scripted.filters.js").write_text("export function removeBanners(document) {}\n",
                                                      encoding="utf-8")
    app = create_app(collection[2] / "versions", None, declarations, tmp_path / "index.sqlite", refresh_interval=0)
    client = app.test_client()
    assert client.get("/api/v1/service/scripted").get_json() == {"id": "Scripted", "name": "Scripted", "terms": [
        {"type": "Imprint", "sourceDocuments": [{"location": "https://scripted.example/imprint",
                                                 "contentSelectors": "main", "filters": ["removeBanners"]}]}]}
    assert client.get("/api/v1/metadata").get_json()["totalServices"] == 4
    app.extensions["termshift"].close()


# ------------------------------------------------------------------ GET /version/:id/:type/:date (versions.test.js)


def test_version_at_a_date_is_the_one_then_in_force(client, collection):
    updated = collection[3]["updated"]
    response = client.get(f"/api/v1/version/service-1/Terms%20of%20Service/{iso(FETCH_DATE)}")
    assert response.status_code == 200 and response.mimetype == "application/json"
    assert response.get_json() == {"id": updated.id, "fetchDate": "2023-01-01T12:00:00Z",
                                   "content": "updated content"}
    # Between two versions: the earlier one; a bare date is its first instant.
    later = client.get("/api/v1/version/service-1/Terms%20of%20Service/2023-01-01T12:59:59.999Z").get_json()
    assert later["id"] == updated.id
    assert client.get("/api/v1/version/service-1/Terms%20of%20Service/2023-01-02").get_json()["content"] \
        == "latest content"


def test_version_before_the_first_one_is_404_naming_the_date(client):
    response = client.get("/api/v1/version/service-1/Terms%20of%20Service/2000-01-01T12:00:00Z")
    assert response.status_code == 404 and response.mimetype == "application/json"
    assert response.get_json() == {"error": "No version found for date 2000-01-01T12:00:00Z"}


def test_version_in_the_future_is_416(client):
    future = iso(datetime.now(UTC) + timedelta(minutes=1))
    response = client.get(f"/api/v1/version/service-1/Terms%20of%20Service/{future}")
    assert response.status_code == 416 and response.mimetype == "application/json"
    assert response.get_json() == {"error": "Requested version is in the future"}


@pytest.mark.parametrize("date", ["not-a-date", "2023-13-45T00:00:00Z", "yesterday"])
def test_malformed_date_is_400_naming_it(client, date):
    response = client.get(f"/api/v1/version/service-1/Terms%20of%20Service/{date}")
    assert response.status_code == 400 and response.mimetype == "application/json"
    assert date in response.get_json()["error"]


# ------------------------------------------------------------------ GET /docs (docs.test.js)


def test_docs_describe_the_ota_routes_relative_to_the_api(client):
    from openapi_spec_validator import validate

    response = client.get("/api/v1/docs/", headers={"Accept": "application/json"})
    assert response.status_code == 200 and response.mimetype == "application/json"
    document = response.get_json()
    assert document["openapi"].startswith("3.") and document["servers"] == [{"url": "/api/v1"}]
    assert {"/services", "/service/{serviceId}", "/version/{serviceId}/{termsType}/{date}",
            "/metadata"} <= set(document["paths"])
    validate(document)
    page = client.get("/api/v1/docs/")
    assert page.status_code == 200 and page.mimetype == "text/html"


# ------------------------------------------------------------------ freshness


@pytest.fixture
def live(tmp_path):
    """A viewer that never looks for new commits on its own (refresh interval of an hour)."""
    declarations = write_collection(tmp_path)
    data = tmp_path / "data"
    record(data, "service-1", "Terms of Service", FETCH_DATE, "first")
    app = create_app(data / "versions", None, declarations, tmp_path / "index.sqlite", refresh_interval=3600)
    yield app, data
    app.extensions["termshift"].close()


def test_a_version_is_found_by_the_first_request_after_its_commit(live):
    app, data = live
    client = app.test_client()
    for minute in range(1, 6):  # commits in quick succession: each is seen by the very next request
        moment = FETCH_DATE + timedelta(minutes=minute)
        version = record(data, "service-1", "Terms of Service", moment, f"change {minute}")
        api = client.get(f"/api/v1/version/service-1/Terms%20of%20Service/{iso(moment)}")
        assert api.status_code == 200
        assert api.get_json() == {"id": version.id, "fetchDate": iso(moment), "content": f"change {minute}"}
        page = client.get("/service-1/Terms%20of%20Service.json").get_json()
        assert page["document"]["current_version_id"] == version.id


def test_two_commits_in_one_tick_of_the_file_clock_are_told_apart(tmp_path):
    """The ref file's modification time alone misses a commit made within the same tick."""
    import os

    from termshift.archive_repo.log_reader import head_fingerprint

    data = tmp_path / "data"
    record(data, "service-1", "Terms of Service", FETCH_DATE, "one")
    ref = data / "versions" / ".git" / "refs" / "heads" / "main"
    before, stamp = head_fingerprint(data / "versions"), ref.stat()
    record(data, "service-1", "Terms of Service", FETCH_DATE + ONE_HOUR, "two")
    os.utime(ref, ns=(stamp.st_atime_ns, stamp.st_mtime_ns))  # as if both commits fell in one tick
    assert head_fingerprint(data / "versions") != before


def test_a_service_first_recorded_after_start_has_its_pages_at_once(live):
    app, data = live
    client = app.test_client()
    version = record(data, "Newcomer", "Privacy Policy", FETCH_DATE, "hello")
    assert client.get("/Newcomer.json").status_code == 200
    page = client.get("/Newcomer/Privacy%20Policy.json").get_json()
    assert page["document"]["current_version_id"] == version.id


def test_a_viewer_started_without_indexing_answers_from_the_archive(collection, tmp_path):
    root, declarations, data, versions = collection
    app = create_app(data / "versions", None, declarations, tmp_path / "index.sqlite", refresh_interval=0,
                     refresh_on_start=False)
    client = app.test_client()
    body = client.get(f"/api/v1/version/service-1/Terms%20of%20Service/{iso(FETCH_DATE)}").get_json()
    assert body["id"] == versions["updated"].id
    assert client.get("/service-1.json").status_code == 200
    app.extensions["termshift"].close()


def test_while_the_index_is_busy_the_api_reads_git_and_pages_say_retry(tmp_path):
    declarations = write_collection(tmp_path)
    data = tmp_path / "data"
    record(data, "service-1", "Terms of Service", FETCH_DATE, "first")
    app = create_app(data / "versions", None, declarations, tmp_path / "index.sqlite", refresh_interval=3600,
                     freshness_wait=0.2)
    client = app.test_client()
    refresher = app.extensions["termshift"].refresher
    moment = FETCH_DATE + ONE_HOUR
    with refresher._index_lock:  # an indexing run that takes longer than a request may wait
        version = record(data, "service-1", "Terms of Service", moment, "from git")
        started = time.monotonic()
        response = client.get(f"/api/v1/version/service-1/Terms%20of%20Service/{iso(moment)}")
        assert response.status_code == 200
        assert response.get_json() == {"id": version.id, "fetchDate": iso(moment), "content": "from git"}
        assert time.monotonic() - started < 5  # bounded: it did not wait for the index
        before = client.get(f"/api/v1/version/service-1/Terms%20of%20Service/{iso(FETCH_DATE)}").get_json()
        assert before["content"] == "first"
        assert client.get("/api/v1/version/service-1/Terms%20of%20Service/2000-01-01T00:00:00Z").status_code == 404
        # The version page by id, and a service new to the archive: not yet indexed, not "not found".
        newcomer = record(data, "Newcomer", "Imprint", moment, "new")
        for path in (f"/service-1/Terms%20of%20Service/{version.id[:12]}.json", "/Newcomer.json",
                     f"/Newcomer/Imprint/{newcomer.id}"):
            page = client.get(path)
            assert page.status_code == 503 and page.headers["Retry-After"] == "2", path
        assert client.get("/Nobody.json").status_code == 503  # while catching up, nothing is known missing
    deadline = time.monotonic() + 30
    while client.get(f"/service-1/Terms%20of%20Service/{version.id[:12]}.json").status_code != 200:
        assert time.monotonic() < deadline, "the index never caught up"
        time.sleep(0.05)
    from_index = client.get(f"/api/v1/version/service-1/Terms%20of%20Service/{iso(moment)}").get_json()
    assert from_index == response.get_json()
    assert client.get("/Newcomer.json").status_code == 200 and client.get("/Nobody.json").status_code == 404
    app.extensions["termshift"].close()


def test_through_a_real_server_a_commit_from_another_process_is_served_at_once(collection, tmp_path):
    root = tmp_path / "collection"
    declarations = write_collection(root)
    data = root / "data"
    record(data, "service-1", "Terms of Service", FETCH_DATE, "first")
    port = free_port()
    process = serve("--data", str(data), "--declarations", str(declarations), "--refresh-interval", "3600",
                    "--host", "127.0.0.1", "--port", str(port), cwd=tmp_path)
    base = f"http://127.0.0.1:{port}/api/v1"
    try:
        assert get_json(f"{base}/metadata")["tagline"] == "Test collection"
        moment = FETCH_DATE + ONE_HOUR
        version = record(data, "service-1", "Terms of Service", moment, "fresh")
        with urllib.request.urlopen(f"{base}/version/service-1/Terms%20of%20Service/{iso(moment)}",
                                    timeout=30) as response:
            assert response.headers.get_content_type() == "application/json"
            assert json.loads(response.read()) == {"id": version.id, "fetchDate": iso(moment), "content": "fresh"}
        assert get_json(f"{base}/service/service%20b!") == EXPECTED_SERVICE_B
        with pytest.raises(urllib.error.HTTPError) as missing:
            urllib.request.urlopen(f"{base}/service/nonExistentService", timeout=30)
        assert missing.value.code == 404 and missing.value.read() == b"Service not found"
        with pytest.raises(urllib.error.HTTPError) as future:
            urllib.request.urlopen(f"{base}/version/service-1/Terms%20of%20Service/2999-01-01T00:00:00Z",
                                   timeout=30)
        assert future.value.code == 416 and json.loads(future.value.read())["error"] == \
            "Requested version is in the future"
    finally:
        process.terminate()
        process.communicate(timeout=10)


# ------------------------------------------------------------------ the viewer's pages


def test_pages_redirect_a_wrong_case_service_id_to_the_real_one(client):
    for requested, canonical in (("/service%20b!", "/Service%20B%21"),
                                 ("/SERVICE-1/Terms%20of%20Service?technical=1",
                                  "/service-1/Terms%20of%20Service?technical=1"),
                                 ("/Service-1.json", "/service-1.json")):
        response = client.get(requested)
        assert response.status_code == 302, requested
        location = urllib.parse.unquote(response.headers["Location"])
        assert location == urllib.parse.unquote(canonical)
        assert client.get(response.headers["Location"]).status_code == 200
    assert client.get("/nobody").status_code == 404


HOSTILE_METADATA = """\
id: hostile
name: "<script>alert('name')</script> Watch"
tagline: Terms <b>watched</b>
description: |
  We **watch** terms. [Click](javascript:alert(1)) <img src=x onerror="alert(2)">
languages: [en, fr]
jurisdictions: [EU, FR]
dataset: "javascript:alert(3)"
versions: https://example.org/versions
governance:
  "<i>Evil</i> Org":
    url: "javascript:alert(4)"
    roles: [host]
  Good Org:
    url: https://good.example
    roles: [curator, maintainer]
trackingPeriods:
  - startDate: 2024-01-01
    schedule: "0 0 * * *"
    serverLocation: Paris, FR
i18n:
  fr:
    tagline: Des conditions surveillées
"""


def test_home_page_shows_the_metadata_escaped_and_sanitised(collection, tmp_path):
    root = tmp_path / "collection"
    declarations = write_collection(root, HOSTILE_METADATA)
    app = create_app(collection[2] / "versions", None, declarations, tmp_path / "index.sqlite", refresh_interval=0)
    client = app.test_client()
    html = client.get("/").get_data(as_text=True)
    assert "&lt;script&gt;alert(&#39;name&#39;)&lt;/script&gt; Watch" in html
    # Markup in the file is text: shown escaped, never as tags, links or handlers.
    assert "<script>alert" not in html and "<img" not in html and 'href="javascript:' not in html
    assert '&lt;img src=x onerror="alert(2)"&gt;' in html
    assert "Terms &lt;b&gt;watched&lt;/b&gt;" in html
    assert "<strong>watch</strong>" in html  # the description is Markdown, rendered
    assert "en, fr" in html and "EU, FR" in html and "0 0 * * *" in html and "Paris, FR" in html
    assert '<a href="https://good.example"' in html and "&lt;i&gt;Evil&lt;/i&gt; Org" in html
    assert 'href="https://example.org/versions"' in html
    data = client.get("/index.json").get_json()["collection"]
    assert data["links"] == [{"name": "versions", "url": "https://example.org/versions"}]
    assert data["governance"][0] == {"name": "<i>Evil</i> Org", "url": None, "roles": ["host"]}
    assert schema_valid("Home", client.get("/index.json").get_json())
    assert "Des conditions surveillées" in client.get("/?lang=fr").get_data(as_text=True)
    app.extensions["termshift"].close()


def test_home_page_without_metadata_has_no_collection(collection, tmp_path):
    declarations = write_collection(tmp_path / "collection", metadata=None)
    app = create_app(collection[2] / "versions", None, declarations, tmp_path / "index.sqlite", refresh_interval=0)
    assert app.test_client().get("/index.json").get_json()["collection"] is None
    app.extensions["termshift"].close()


# ------------------------------------------------------------------ checking metadata.yml

BAD_METADATA = """\
id: bad
name: Bad
languages: [EN]
jurisdictions: [EU]
colour: blue
trackingPeriods:
  - startDate: 2024-02-30
    schedule: every day
governance:
  Someone:
    roles: [boss]
"""


def test_metadata_problems_name_the_file_the_field_and_the_reason(tmp_path):
    (tmp_path / "metadata.yml").write_text(BAD_METADATA, encoding="utf-8")
    errors = [str(error) for error in read_metadata(tmp_path / "metadata.yml").errors]
    path = tmp_path / "metadata.yml"
    assert f"{path}: $: missing required field 'tagline'" in errors
    assert f"{path}: $.languages[0]: 'EN' is not an ISO 639-1 language code " \
           "(two lowercase letters, such as 'en' or 'fr')" in errors
    assert f"{path}: $.colour: unknown field 'colour'" in errors
    assert any(e.startswith(f"{path}: $.trackingPeriods[0].startDate: '2024-02-30' is not a date") for e in errors)
    assert any(e.startswith(f"{path}: $.trackingPeriods[0].schedule: 'every day' is not a cron") for e in errors)
    assert f"{path}: $.trackingPeriods[0]: missing required field 'serverLocation'" in errors
    assert any(e.startswith(f"{path}: $.governance.Someone.roles[0]: 'boss' is not one of") for e in errors)
    (tmp_path / "broken.yml").write_text("id: [unclosed\n", encoding="utf-8")
    [broken] = read_metadata(tmp_path / "broken.yml").errors
    assert str(broken).startswith(f"{tmp_path / 'broken.yml'}: $: not valid YAML: line 2")
    assert read_metadata(tmp_path / "missing.yml").errors == [] and not read_metadata(tmp_path / "missing.yml").exists
    # Aliases are refused: nested ones would expand exponentially once served as JSON.
    (tmp_path / "bomb.yml").write_text("a: &a [x, x]\nb: &b [*a, *a]\nc: [*b, *b]\n", encoding="utf-8")
    [bomb] = read_metadata(tmp_path / "bomb.yml").errors
    assert "aliases (*name) are not allowed" in str(bomb) and read_metadata(tmp_path / "bomb.yml").data is None
    (tmp_path / "empty.yml").write_text("", encoding="utf-8")
    assert str(read_metadata(tmp_path / "empty.yml").errors[0]).endswith("got an empty file")


def test_validate_and_config_check_report_metadata_errors(tmp_path, monkeypatch):
    declarations = write_collection(tmp_path, BAD_METADATA)
    monkeypatch.chdir(tmp_path)
    result = CliRunner().invoke(validate_command, ["--declarations", str(declarations), "--schema-only"])
    assert result.exit_code == 1, result.output
    assert f"{tmp_path / 'metadata.yml'}: $.colour: unknown field 'colour'" in result.output
    assert "3 services checked (schema only): no errors" in result.output
    check = CliRunner().invoke(config_group, ["check"], env={"TERMSHIFT_DECLARATIONS": str(declarations)})
    assert check.exit_code == 1 and "$.languages[0]: 'EN' is not an ISO 639-1" in check.output
    (tmp_path / "metadata.yml").write_text(METADATA_YML.replace("donations: null\n", ""), encoding="utf-8")
    check = CliRunner().invoke(config_group, ["check"], env={"TERMSHIFT_DECLARATIONS": str(declarations)})
    assert check.exit_code == 0 and "metadata OK" in check.output
    valid = CliRunner().invoke(validate_command, ["--declarations", str(declarations), "--schema-only"])
    assert valid.exit_code == 0, valid.output


def test_import_ota_copies_the_metadata_beside_the_declarations(tmp_path):
    write_collection(tmp_path / "ota", METADATA_YML.replace("donations: null\n", ""))
    report = import_collection(tmp_path / "ota", tmp_path / "ours" / "declarations")
    assert (tmp_path / "ours" / "metadata.yml").read_text(encoding="utf-8") == \
        (tmp_path / "ota" / "metadata.yml").read_text(encoding="utf-8")
    assert tmp_path / "ours" / "metadata.yml" in report.copied and report.errors == []


def test_our_own_collection_and_the_demo_have_valid_metadata(tmp_path):
    ours = read_metadata(REPO_ROOT / "metadata.yml")
    assert ours.exists and ours.errors == [] and ours.data["id"] == "termshift"
    demo = read_metadata(REPO_ROOT / "termshift" / "demo_data" / "metadata.yml")
    assert demo.exists and demo.errors == [] and demo.data["id"] == "demo"
    from termshift.demo import prepare_demo

    declarations, _data = prepare_demo(tmp_path / "demo")  # `termshift demo` serves it beside declarations/
    assert read_metadata(declarations.parent / "metadata.yml").data == demo.data


def test_the_fingerprint_follows_head_to_another_branch_and_when_detached(tmp_path):
    """HEAD's content is remembered between checks (it rarely changes): switching branch, even
    to one at the same commit, or detaching HEAD must still change the fingerprint."""
    import subprocess

    from termshift.archive_repo.log_reader import head_fingerprint

    data = tmp_path / "data"
    record(data, "service-1", "Terms of Service", FETCH_DATE, "one")
    repo = data / "versions"
    on_main = head_fingerprint(repo)
    assert head_fingerprint(repo) == on_main  # nothing moved
    subprocess.run(["git", "-C", repo, "checkout", "-q", "-b", "other"], check=True)
    on_other = head_fingerprint(repo)
    assert on_other != on_main and on_other[-1] == "ref: refs/heads/other"
    subprocess.run(["git", "-C", repo, "checkout", "-q", "--detach"], check=True)
    detached = head_fingerprint(repo)
    assert detached not in (on_main, on_other) and not detached[-1].startswith("ref: ")
