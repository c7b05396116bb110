"""The "new declaration" page of the viewer (`/declare`): `termshift try` in a browser.

A form takes a URL and selectors; on submit the server fetches the page twice
(the noise check), extracts it as the tracker would, and shows the Markdown, the
checks and the declaration JSON, which can be saved into the declarations
folder. It works without JavaScript.

Access: only with the admin token (`app.config["ADMIN_TOKEN"]`). With no token
configured the page does not exist (404). A request is let in with an
`Authorization: Bearer <token>` header, an `admin_token` form field, or the
cookie set by the login form: a random session id (never the token) that expires
after `ADMIN_SESSION_LIFETIME` seconds and that logging out revokes on the server
(`termshift.web.security.AdminSessions`). Forms posted with the cookie carry a CSRF
field derived from the token as well.

What it reads from the app: `ADMIN_TOKEN`; `SETTINGS` (a termshift Settings:
fetcher options, declarations folder); `DECLARATIONS_DIR` (overrides the
folder); `DECLARE_NOISE_DELAY` (seconds between the two fetches, default 2).

The extracted Markdown is third-party content: it is only ever rendered as
escaped text inside <pre> (Jinja autoescaping), never as HTML.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from flask import (
    Blueprint,
    Response,
    abort,
    current_app,
    make_response,
    redirect,
    render_template,
    request,
    url_for,
)

from termshift.config import Settings, load_settings
from termshift.contrib.lint import canonical_declaration, format_json, parse_json_text, write_text_atomically
from termshift.contrib.trypage import (
    CheckLine,
    SelectorTextError,
    check_lines,
    declaration_problems,
    default_service_name,
    document_declaration,
    parse_selector,
    selectors_value,
    service_declaration,
)
from termshift.declarations import SourceDocument
from termshift.schema import service_problems, terms_types
from termshift.validate_network import inspect_documents
from termshift.web import security

blueprint = Blueprint("declare", __name__, template_folder="templates")

COOKIE = security.SESSION_COOKIE
DEFAULT_NOISE_DELAY = 2.0
# File names a service id may not produce: path separators, characters Windows refuses, controls.
_BAD_SERVICE_ID = re.compile(r'[/\\:*?"<>|\x00-\x1f]')


# ------------------------------------------------------------------ access


def _token() -> str:
    token = current_app.config.get("ADMIN_TOKEN") or ""
    if not token:
        abort(404)
    return token


def _derived(token: str, purpose: str) -> str:
    return hmac.new(token.encode(), purpose.encode(), hashlib.sha256).hexdigest()


def csrf_value(token: str) -> str:
    return _derived(token, "termshift declare form")


_same = security.same_secret


def _authentication(token: str) -> str | None:
    """How the request proves it has the token: "bearer", "field", "cookie", or None."""
    if security.bearer_is_admin(token):
        return "bearer"
    if request.method == "POST" and _same(request.form.get("admin_token"), token):
        return "field"
    if security.session_is_admin(token):
        return "cookie"
    return None


@blueprint.get("/declare/login")
def login_form() -> Response:
    _token()
    return _login_page()


def _login_page(error: str = "", status: int = 401) -> Response:
    return make_response(render_template("declare/login.html", error=error), status)


@blueprint.post("/declare/login")
def login() -> Response:
    token = _token()
    if not _same(request.form.get("admin_token"), token):
        return _login_page("Wrong token.", 403)
    sessions = security.admin_sessions()
    response = redirect(url_for("declare.form"), 303)
    # Path "/": the session also shows the administrator the details of /status.
    response.set_cookie(COOKIE, sessions.open(token), max_age=max(1, round(sessions.lifetime)), httponly=True,
                        samesite="Strict", secure=request.is_secure, path="/")
    return response


@blueprint.post("/declare/logout")
def logout() -> Response:
    _token()
    security.admin_sessions().revoke(request.cookies.get(COOKIE))  # the cookie is dead, even if kept
    response = redirect(url_for("declare.login_form"), 303)
    response.delete_cookie(COOKIE, path="/")
    return response


# -------------------------------------------------------------------- form


@dataclass
class DeclareForm:
    """The fields of the form, as typed."""

    url: str = ""
    select: str = ""
    remove: str = ""
    browser: bool = False
    service_id: str = ""
    name: str = ""
    terms_type: str = "Terms of Service"
    overwrite: bool = False

    @classmethod
    def from_request(cls) -> DeclareForm:
        form = request.form
        return cls(
            url=form.get("url", "").strip(),
            select=form.get("select", ""),
            remove=form.get("remove", ""),
            browser=form.get("browser") == "on",
            service_id=form.get("service_id", "").strip(),
            name=form.get("name", "").strip(),
            terms_type=form.get("terms_type", "Terms of Service").strip(),
            overwrite=form.get("overwrite") == "on",
        )


@dataclass
class Outcome:
    """What the page shows below the form."""

    problems: list[str] = field(default_factory=list)
    markdown: str | None = None
    checks: list[CheckLine] = field(default_factory=list)
    declaration_json: str = ""
    saved_to: str = ""
    existing_types: list[str] = field(default_factory=list)  # when the service file exists
    fetcher: str = ""


def _selector_lines(text: str, field_name: str) -> list[Any]:
    """One selector per line; a line starting with `{` is a JSON range."""
    return [parse_selector(line, field_name) for line in text.splitlines() if line.strip()]


def _terms_declaration(form: DeclareForm) -> tuple[dict[str, Any] | None, list[str]]:
    if not form.url:
        return None, ["url: enter the address of the page"]
    try:
        select = _selector_lines(form.select, "select")
        remove = _selector_lines(form.remove, "remove")
    except SelectorTextError as error:
        return None, [f"{error.source}: {error.message}"]
    if not select:
        return None, ["select: enter at least one CSS selector (one per line)"]
    declaration = document_declaration(form.url, selectors_value(select), selectors_value(remove), form.browser)
    problems = declaration_problems(declaration, form.terms_type if form.terms_type in terms_types() else
                                    "Terms of Service")
    if form.terms_type not in terms_types():
        problems.append(f"terms type: unknown terms type '{form.terms_type}'")
    return declaration, problems


def _declarations_dir() -> Path:
    if current_app.config.get("DECLARATIONS_DIR"):
        return Path(current_app.config["DECLARATIONS_DIR"])
    settings = current_app.config.get("SETTINGS")
    return Path(getattr(settings, "declarations", None) or "declarations")


def _settings() -> Settings:
    settings = current_app.config.get("SETTINGS")
    if settings is None:
        settings = load_settings()
    return settings


def _service_id_problem(service_id: str) -> str | None:
    if not service_id:
        return "service id: enter the service id (the file name, e.g. ACME)"
    if _BAD_SERVICE_ID.search(service_id) or service_id.startswith(".") or len(service_id) > 120:
        return (f"service id: '{service_id}' cannot be a file name: no / \\ : * ? \" < > |, "
                "no leading dot, at most 120 characters")
    if service_id.endswith((".history", ".filters")):
        return f"service id: '{service_id}' would be read as a history or filters file"
    return None


def _existing(path: Path) -> dict[str, Any] | None:
    if not path.is_file():
        return None
    return parse_json_text(path.read_text(encoding="utf-8"))


def _preview(form: DeclareForm, declaration: dict[str, Any], outcome: Outcome) -> None:
    document = SourceDocument(declaration["fetch"], declaration["select"], declaration.get("remove"),
                              execute_client_scripts=True if form.browser else None)
    delay = float(current_app.config.get("DECLARE_NOISE_DELAY", DEFAULT_NOISE_DELAY))
    [inspection] = inspect_documents([(document, None)], _settings().fetcher, delay=delay)
    outcome.markdown = inspection.markdown
    outcome.checks = check_lines(inspection, noise_checked=True)
    if inspection.first is not None:
        outcome.fetcher = inspection.first.fetcher or ""


def _save(form: DeclareForm, declaration: dict[str, Any], outcome: Outcome) -> None:
    """Write the declaration, adding the terms type to an existing file only when confirmed."""
    problem = _service_id_problem(form.service_id)
    if problem:
        outcome.problems.append(problem)
        return
    directory = _declarations_dir()
    path = directory / f"{form.service_id}.json"
    try:
        existing = _existing(path)
    except ValueError as error:
        outcome.problems.append(f"{path.name} exists but cannot be read ({error}): fix it by hand first")
        return
    if existing is not None and not form.overwrite:
        outcome.existing_types = list(existing.get("terms", {})) if isinstance(existing, dict) else []
        outcome.problems.append(f"{path.name} already exists: tick “overwrite” to add or replace "
                                f"“{form.terms_type}” in it (its other terms types are kept)")
        return
    data = existing if isinstance(existing, dict) else {}
    data = {**data, "name": data.get("name") or form.name or form.service_id,
            "terms": {**(data.get("terms") or {}), form.terms_type: declaration}}
    problems = service_problems(data)
    if problems:
        outcome.problems += [f"{path.name}: {problem.json_path}: {problem.reason}" for problem in problems]
        return
    directory.mkdir(parents=True, exist_ok=True)
    write_text_atomically(path, format_json(canonical_declaration(data)))
    outcome.saved_to = str(path)


@blueprint.route("/declare", methods=["GET", "POST"])
def form() -> Response:
    token = _token()
    how = _authentication(token)
    if how is None:
        if request.method == "POST":
            return _login_page("Your session has expired: enter the token again.")
        return _login_page()
    if request.method == "GET":
        return _page(DeclareForm(), Outcome(), token)
    if how == "cookie" and not _same(request.form.get("csrf"), csrf_value(token)):
        abort(400, "the form is missing its CSRF field: reload the page")
    values = DeclareForm.from_request()
    if not values.service_id and values.url:
        values.service_id = default_service_name(values.url)
    outcome = Outcome()
    declaration, outcome.problems = _terms_declaration(values)
    if declaration is not None and not outcome.problems:
        full = service_declaration(values.name or values.service_id, values.terms_type, declaration)
        outcome.declaration_json = format_json(full)
        if request.form.get("action") == "save":
            _save(values, declaration, outcome)
        else:
            _preview(values, declaration, outcome)
    status = 422 if outcome.problems else 200
    return _page(values, outcome, token, status)


def _page(values: DeclareForm, outcome: Outcome, token: str, status: int = 200) -> Response:
    html = render_template(
        "declare/form.html", form=values, outcome=outcome, csrf=csrf_value(token),
        terms_types=terms_types(), declaration_example=json.dumps({"startAfter": "#intro", "endBefore": "footer"}),
    )
    return make_response(html, status)


@blueprint.after_request
def _protect(response: Response) -> Response:
    """The page shows third-party text: forbid any script, plugin or framing, whatever happens."""
    response.headers["Content-Security-Policy"] = (
        "default-src 'none'; style-src 'unsafe-inline'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'")
    response.headers["X-Content-Type-Options"] = "nosniff"
    response.headers["Cache-Control"] = "no-store"
    return response
