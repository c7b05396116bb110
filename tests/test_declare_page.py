"""The viewer's "new declaration" page (`/declare`): access, preview, save, and a real browser."""

from __future__ import annotations

import json
import os
import threading
import time
from pathlib import Path

import pytest
from flask import Flask
from werkzeug.serving import make_server

from termshift.config import load_settings
from termshift.contrib.lint import lint_json_file
from termshift.declarations import check_declaration_file, load_service
from termshift.web.declare import COOKIE, blueprint, csrf_value
from tests.support.servers import LocalServer

TOKEN = "correct horse battery staple"
TERMS_TEXT = "By using the service you accept these terms, which are long enough to count. " * 3
# Third-party text that would become markup if the page rendered the Markdown as HTML.
INJECTION = '&lt;img src=x onerror="window.pwned = 1"&gt;'


@pytest.fixture(scope="module")
def site():
    with LocalServer() as server:
        server.add_page("/terms", f"<html><body><main><h1>Terms</h1><p>{TERMS_TEXT}</p><p>{INJECTION}</p>"
                                  "</main></body></html>")
        yield server


@pytest.fixture
def declarations(tmp_path: Path) -> Path:
    directory = tmp_path / "declarations"
    directory.mkdir()
    return directory


def make_app(declarations: Path, token: str = TOKEN) -> Flask:
    app = Flask("declare-test")
    app.register_blueprint(blueprint)
    settings = load_settings(environ={"TERMSHIFT_FETCHER_HOST_DELAY": "0"})
    app.config.update(ADMIN_TOKEN=token, SETTINGS=settings, DECLARATIONS_DIR=str(declarations),
                      DECLARE_NOISE_DELAY=0.2)
    return app


@pytest.fixture
def client(declarations):
    return make_app(declarations).test_client()


BEARER = {"Authorization": f"Bearer {TOKEN}"}


def form(url: str, **fields: str) -> dict[str, str]:
    return {"url": url, "select": "main", "terms_type": "Terms of Service", "action": "save", **fields}


# ------------------------------------------------------------------ access


def test_without_a_configured_token_the_page_does_not_exist(declarations):
    client = make_app(declarations, token="").test_client()
    assert client.get("/declare").status_code == 404
    assert client.post("/declare/login", data={"admin_token": ""}).status_code == 404
    assert client.post("/declare", data=form("https://x.example/"), headers=BEARER).status_code == 404


def test_login_form_cookie_and_csrf(client, declarations, site):
    page = client.get("/declare")
    assert page.status_code == 401 and 'name="admin_token"' in page.get_data(as_text=True)
    assert client.post("/declare/login", data={"admin_token": "wrong"}).status_code == 403
    login = client.post("/declare/login", data={"admin_token": TOKEN})
    assert login.status_code == 303 and login.headers["Location"].endswith("/declare")
    cookie = login.headers["Set-Cookie"]
    assert cookie.startswith(f"{COOKIE}=") and "HttpOnly" in cookie and "SameSite=Strict" in cookie
    assert TOKEN.split()[0] not in cookie  # the cookie holds a derived value, not the token
    page = client.get("/declare")
    assert page.status_code == 200 and csrf_value(TOKEN) in page.get_data(as_text=True)
    # A form posted with the cookie alone (as a cross-site form would be) is refused.
    assert client.post("/declare", data=form(site.url("/terms"), service_id="A")).status_code == 400
    saved = client.post("/declare", data=form(site.url("/terms"), service_id="A", csrf=csrf_value(TOKEN)))
    assert saved.status_code == 200 and (declarations / "A.json").is_file()
    client.post("/declare/logout")
    assert client.get("/declare").status_code == 401


def _session_cookie(response) -> str:
    return response.headers["Set-Cookie"].split(";", 1)[0].split("=", 1)[1]


def test_logout_revokes_the_session_even_if_the_cookie_is_kept(declarations):
    client = make_app(declarations).test_client()
    login = client.post("/declare/login", data={"admin_token": TOKEN})
    session = _session_cookie(login)
    assert "Max-Age=" in login.headers["Set-Cookie"] and "Path=/;" in login.headers["Set-Cookie"] + ";"
    assert client.get("/declare").status_code == 200
    client.post("/declare/logout")
    client.set_cookie(COOKIE, session)  # a copy of the cookie taken before logging out
    assert client.get("/declare").status_code == 401


def test_the_login_session_expires(declarations):
    app = make_app(declarations)
    app.config["ADMIN_SESSION_LIFETIME"] = 0.5
    client = app.test_client()
    session = _session_cookie(client.post("/declare/login", data={"admin_token": TOKEN}))
    assert client.get("/declare").status_code == 200
    time.sleep(0.7)
    client.set_cookie(COOKIE, session)
    assert client.get("/declare").status_code == 401
    # A session opened with another token (the token was changed) is not valid either.
    session = _session_cookie(client.post("/declare/login", data={"admin_token": TOKEN}))
    app.config["ADMIN_TOKEN"] = TOKEN + " changed"
    client.set_cookie(COOKIE, session)
    assert client.get("/declare", headers={}).status_code == 401


def test_the_token_as_a_form_field(client, declarations, site):
    response = client.post("/declare", data=form(site.url("/terms"), service_id="B", admin_token=TOKEN))
    assert response.status_code == 200 and (declarations / "B.json").is_file()
    assert client.post("/declare", data=form(site.url("/terms"), admin_token="nope")).status_code == 401


# ----------------------------------------------------------------- preview


def test_preview_shows_escaped_markdown_checks_and_json(client, site):
    response = client.post("/declare", data=form(site.url("/terms"), action="preview", service_id="ACME"),
                           headers=BEARER)
    html = response.get_data(as_text=True)
    assert response.status_code == 200, html
    assert "default-src 'none'" in response.headers["Content-Security-Policy"]
    markdown = html[html.index('<pre id="markdown">'):]
    assert "By using the service you accept these terms" in markdown
    assert "&lt;img src=x onerror=" in markdown and "<img" not in markdown
    for check in ("fetchable", "selectors-match", "long-enough", "stable"):
        assert f'<tr class="ok"><td>{check}</td>' in html
    assert "&#34;fetch&#34;: &#34;" + site.url("/terms") in html  # the declaration, escaped too


# -------------------------------------------------------------------- save


def test_save_writes_a_valid_canonical_declaration(client, declarations, site):
    response = client.post("/declare", data=form(site.url("/terms"), service_id="ACME Corp", name="ACME",
                                                 remove=".ad\n\n", browser="on"), headers=BEARER)
    assert response.status_code == 200 and "Saved to" in response.get_data(as_text=True)
    path = declarations / "ACME Corp.json"
    assert json.loads(path.read_text()) == {"name": "ACME", "terms": {"Terms of Service": {
        "fetch": site.url("/terms"), "select": "main", "remove": ".ad", "executeClientScripts": True}}}
    assert check_declaration_file(path) == [] and lint_json_file(path).is_canonical


def test_save_adds_to_an_existing_service_only_when_confirmed(client, declarations, site):
    path = declarations / "ACME.json"
    path.write_text(json.dumps({"name": "ACME Inc.", "terms": {
        "Imprint": {"fetch": "https://acme.example/imprint", "select": "main"}}}, indent=2) + "\n")
    before = path.read_text()
    refused = client.post("/declare", data=form(site.url("/terms"), service_id="ACME"), headers=BEARER)
    text = refused.get_data(as_text=True)
    assert refused.status_code == 422 and "ACME.json already exists" in text and "It declares: Imprint." in text
    assert path.read_text() == before
    accepted = client.post("/declare", data=form(site.url("/terms"), service_id="ACME", overwrite="on"),
                           headers=BEARER)
    assert accepted.status_code == 200
    data = json.loads(path.read_text())
    assert data["name"] == "ACME Inc." and list(data["terms"]) == ["Imprint", "Terms of Service"]
    assert load_service(declarations, "ACME").terms["Terms of Service"].documents[0].location == site.url("/terms")


@pytest.mark.parametrize(("fields", "message"), [
    ({"url": "not a url"}, "$.fetch: not a valid URL"),
    ({"select": ""}, "select: enter at least one CSS selector"),
    ({"select": '{"startAfter": '}, "starts with &#39;{&#39; but is not valid JSON"),
    ({"service_id": "../outside"}, "service id: &#39;../outside&#39; cannot be a file name"),
    ({"service_id": "X.history"}, "would be read as a history or filters file"),
    ({"terms_type": "Terms"}, "terms type: unknown terms type &#39;Terms&#39;"),
])
def test_bad_input_is_explained_and_nothing_is_written(client, declarations, site, fields, message):
    data = form(site.url("/terms"), service_id="ACME")
    data.update(fields)
    before = site.hits("/terms")
    response = client.post("/declare", data=data, headers=BEARER)
    assert response.status_code == 422 and message in response.get_data(as_text=True)
    assert list(declarations.iterdir()) == [] and not (declarations.parent / "outside.json").exists()
    assert site.hits("/terms") == before


# ----------------------------------------------------------------- browser


@pytest.fixture
def live_app(declarations):
    server = make_server("127.0.0.1", 0, make_app(declarations), threaded=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_port}"
    server.shutdown()
    thread.join(timeout=5)


@pytest.fixture
def browser_page():
    chromium = Path("/usr/bin/chromium")
    if not chromium.exists():
        pytest.skip("Chromium is not installed at /usr/bin/chromium")
    playwright_api = pytest.importorskip("playwright.sync_api")
    arguments = ["--disable-background-networking", "--disable-component-update", "--disable-sync",
                 "--no-first-run", "--disable-gpu"]
    if os.geteuid() == 0:
        arguments.append("--no-sandbox")
    with playwright_api.sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(chromium), args=arguments)
        try:
            yield browser.new_page()
        finally:
            browser.close()


@pytest.mark.browser
def test_a_contributor_previews_and_saves_in_a_real_browser(live_app, browser_page, site, declarations):
    page = browser_page
    page.goto(f"{live_app}/declare")
    page.fill("#admin_token", TOKEN)
    page.click("button[type=submit]")
    page.fill("#url", site.url("/terms"))
    page.fill("#select", "main")
    page.click("#preview-button")
    markdown = page.locator("#markdown")
    assert "By using the service you accept these terms" in markdown.inner_text()
    # Third-party markup is shown as text: no element was created, nothing ran.
    assert '<img src=x onerror="window.pwned = 1">' in markdown.inner_text()
    assert page.locator("#markdown img").count() == 0
    assert page.evaluate("window.pwned") is None
    assert page.locator("#checks tr.ok").count() == 5
    page.fill("#service_id", "Browser Made")
    page.click("#save-button")
    assert "Saved to" in page.locator("#saved").inner_text()
    assert load_service(declarations, "Browser Made").terms["Terms of Service"].documents[0].select == "main"
