"""The OTA-compatible Collection API at /api/v1 (ota-behaviour.md §3.7, §4.9)."""

from __future__ import annotations

import json
import shutil
import time

import jsonschema
import pytest

from termshift.web import create_app
from termshift.web.openapi import openapi_document
from tests.support.archive_factory import PRIVACY_V1, PRIVACY_V3, build_sample_archive


@pytest.fixture(scope="module")
def sample(tmp_path_factory):
    return build_sample_archive(tmp_path_factory.mktemp("api"))


@pytest.fixture(scope="module")
def client(sample):
    app = create_app(sample.data / "versions", sample.data / "snapshots", sample.declarations,
                     sample.data / "index.sqlite", refresh_interval=0)
    yield app.test_client()
    app.extensions["termshift"].close()


@pytest.fixture(scope="module")
def undeclared_client(sample, tmp_path_factory):
    """The same archive without declarations: the API falls back to what the archive holds."""
    index = tmp_path_factory.mktemp("undeclared") / "index.sqlite"
    app = create_app(sample.data / "versions", None, None, index, refresh_interval=0)
    yield app.test_client()
    app.extensions["termshift"].close()


def valid(name: str, body) -> bool:
    schema = {"$ref": f"#/components/schemas/{name}", "components": openapi_document()["components"]}
    jsonschema.validate(body, schema, cls=jsonschema.Draft202012Validator)
    return True


def test_services_lists_declared_services_with_their_terms_types(client):
    body = client.get("/api/v1/services").get_json()
    assert body == [
        {"id": "Acme", "name": "Acme Corp",
         "terms": [{"type": "Privacy Policy"}, {"type": "Terms of Service"}, {"type": "Imprint"}]},
        {"id": "Bolt", "name": "Bolt", "terms": [{"type": "Terms of Service"}]},
    ]
    assert valid("OtaServices", body)


def test_service_gives_source_documents_in_ota_shape(client):
    body = client.get("/api/v1/service/Acme").get_json()
    assert body["id"] == "Acme" and body["name"] == "Acme Corp"
    terms = {t["type"]: t["sourceDocuments"] for t in body["terms"]}
    assert terms["Privacy Policy"] == [{"location": "https://acme.example/privacy", "contentSelectors": "main",
                                        "insignificantContentSelectors": ".ads", "filters": ["removeQueryParams"]}]
    assert [d["location"] for d in terms["Terms of Service"]] == ["https://acme.example/tos",
                                                                  "https://acme.example/tos-annex"]
    assert terms["Imprint"][0]["executeClientScripts"] is True
    assert valid("OtaService", body)


def test_unknown_service_is_otas_service_not_found_and_case_is_ignored(client):
    response = client.get("/api/v1/service/Nobody")
    assert response.status_code == 404 and response.mimetype == "text/html"
    assert response.get_data(as_text=True) == "Service not found"
    exact = client.get("/api/v1/service/Acme").get_json()
    for service_id in ("acme", "ACME"):
        assert client.get(f"/api/v1/service/{service_id}").get_json() == exact
    # Archived but no longer declared: OTA's API only knows declared services.
    assert client.get("/api/v1/service/Caf%C3%A9%20%26%20Co").status_code == 404


def test_version_at_a_date_returns_id_date_without_milliseconds_and_content(client, sample):
    body = client.get("/api/v1/version/Acme/Privacy%20Policy/2024-02-01T12:00:00.000Z").get_json()
    assert body == {"id": sample.ids["privacy_1"], "fetchDate": "2024-01-10T10:00:00Z",
                    "content": PRIVACY_V1.strip()}
    exact = client.get("/api/v1/version/Acme/Privacy%20Policy/2024-06-01T00:00:00Z").get_json()
    assert exact["id"] == sample.ids["privacy_3"] and exact["content"] == PRIVACY_V3.strip()
    assert valid("OtaVersion", body)


def test_version_before_the_first_one_is_404_naming_the_date(client):
    response = client.get("/api/v1/version/Acme/Privacy%20Policy/2020-01-01T00:00:00Z")
    assert response.status_code == 404
    assert response.get_json() == {"error": "No version found for date 2020-01-01T00:00:00Z"}
    unknown = client.get("/api/v1/version/Nobody/Privacy%20Policy/2024-06-01T00:00:00Z")
    assert unknown.status_code == 404 and "2024-06-01T00:00:00Z" in unknown.get_json()["error"]


def test_version_in_the_future_is_416(client):
    response = client.get("/api/v1/version/Acme/Privacy%20Policy/2999-01-01T00:00:00Z")
    assert response.status_code == 416
    assert response.get_json() == {"error": "Requested version is in the future"}


def test_malformed_date_is_400_naming_it(client):
    response = client.get("/api/v1/version/Acme/Privacy%20Policy/yesterday")
    assert response.status_code == 400 and "yesterday" in response.get_json()["error"]


def test_welcome_docs_and_metadata(client):
    assert "Open Terms Archive API" in client.get("/api/v1/").get_json()["message"]
    docs = client.get("/api/v1/docs", headers={"Accept": "application/json"}).get_json()
    assert docs["openapi"] == "3.1.0"
    metadata = client.get("/api/v1/metadata").get_json()
    assert (metadata["totalServices"], metadata["totalTerms"]) == (2, 4)
    assert valid("OtaMetadata", metadata)


def test_without_declarations_the_api_describes_the_archive(undeclared_client):
    services = undeclared_client.get("/api/v1/services").get_json()
    assert [(s["id"], s["name"]) for s in services] == [("Acme", "Acme"), ("Café & Co", "Café & Co")]
    assert {t["type"] for t in services[0]["terms"]} == {"Privacy Policy", "Terms of Service", "Imprint"}
    body = undeclared_client.get("/api/v1/service/Caf%C3%A9%20%26%20Co").get_json()
    assert body == {"id": "Café & Co", "name": "Café & Co",
                    "terms": [{"type": "Terms of Service", "sourceDocuments": []}]}
    assert undeclared_client.get("/api/v1/service/Nobody").status_code == 404


def test_declarations_changed_while_serving_are_followed_without_restart(sample, tmp_path):
    """Adding, renaming, removing or breaking a declaration shows in the pages and the API."""
    declarations = tmp_path / "declarations"
    shutil.copytree(sample.declarations, declarations)
    app = create_app(sample.data / "versions", None, declarations, tmp_path / "index.sqlite",
                     refresh_interval=0.05)
    client = app.test_client()
    assert client.get("/NewCloud").status_code == 404
    assert client.get("/api/v1/service/NewCloud").status_code == 404
    assert "Acme Corp" in client.get("/").get_data(as_text=True)  # now cached

    (declarations / "NewCloud.json").write_text(json.dumps({"name": "New Cloud", "terms": {
        "Terms of Service": {"fetch": "https://newcloud.example/tos", "select": "main"}}}), encoding="utf-8")
    acme = json.loads((declarations / "Acme.json").read_text(encoding="utf-8"))
    (declarations / "Acme.json").write_text(json.dumps({**acme, "name": "Acme Holdings"}), encoding="utf-8")
    (declarations / "Bolt.json").unlink()
    (declarations / "Broken.json").write_text("{ not json", encoding="utf-8")

    deadline = time.monotonic() + 10
    while time.monotonic() < deadline and client.get("/api/v1/service/NewCloud").status_code != 200:
        time.sleep(0.05)  # each request may start the (background) reload
    service = client.get("/api/v1/service/NewCloud")
    assert service.status_code == 200 and valid("OtaService", service.get_json())
    assert service.get_json()["terms"][0]["sourceDocuments"][0]["location"] == "https://newcloud.example/tos"
    assert [s["id"] for s in client.get("/api/v1/services").get_json()] == ["Acme", "NewCloud"]
    assert client.get("/NewCloud.json").get_json()["declared_without_versions"] == ["Terms of Service"]
    assert client.get("/Bolt").status_code == 404 and client.get("/api/v1/service/Bolt").status_code == 404
    home = client.get("/").get_data(as_text=True)
    assert "Acme Holdings" in home and "Acme Corp" not in home
    app.extensions["termshift"].close()


def test_declarations_are_not_reloaded_when_nothing_changed(sample, tmp_path):
    from termshift.web.declared_services import Declarations

    declarations = Declarations(sample.declarations, interval=0.01)
    loaded = declarations.services
    for _ in range(3):
        time.sleep(0.02)
        declarations.poke()
    assert declarations.services is loaded and declarations.generation == 0
