"""What `termshift try URL` and `termshift preview SERVICE [TYPE]` share with the `/declare` page.

`try` is for writing a declaration: give a URL and selectors, get the Markdown
the tracker would record, the checks of `termshift validate` (fetchable, the
selectors match, long enough, the same text on a second fetch) with warnings,
and the JSON to paste into `declarations/<Service>.json`. `preview` does the
same for a document already declared, filters included. Both fetch through the
tracker's own fetcher, so what you see is what tracking will get.

The helpers here (`parse_selector`, `document_declaration`, `check_lines`) are
shared by those commands (termshift.commands.try_page) and the `/declare` page of
the viewer.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

from termshift.contrib.lint import canonical_declaration, canonical_terms
from termshift.errors import TermshiftError
from termshift.schema import selector_problems, service_problems
from termshift.validate_network import (
    MIN_LENGTH,
    DocumentInspection,
    Finding,
)

DEFAULT_SELECT = "body"
PLACEHOLDER_TYPE = "Terms of Service"  # only to check a bare terms declaration against the schema


# ------------------------------------------------------------ declarations


class SelectorTextError(TermshiftError):
    """A selector as typed that is not one; `source` names the option or form field."""

    def __init__(self, message: str, source: str) -> None:
        super().__init__(message)
        self.message = message
        self.source = source


def parse_selector(text: str, source: str) -> str | dict[str, str]:
    """One selector as typed: a CSS selector, or a range as JSON (`{"startAfter": "#a", "endBefore": "#b"}`).

    Raises SelectorTextError naming `source` (the option or form field).
    """
    text = text.strip()
    if not text:
        raise SelectorTextError("an empty selector", source)
    if not text.startswith("{"):
        return text
    try:
        value = json.loads(text)
    except json.JSONDecodeError as error:
        raise SelectorTextError(
            f"{text!r} starts with '{{' but is not valid JSON ({error.msg}); a range looks like "
            '{"startAfter": "#start", "endBefore": "#end"}', source) from None
    if not isinstance(value, dict) or not all(isinstance(item, str) for item in value.values()):
        raise SelectorTextError(f"{text!r}: a range is an object of CSS selectors", source)
    return value


def selectors_value(items: list[str | dict[str, str]]) -> str | dict | list | None:
    """How a declaration writes them: nothing, one selector, or a list."""
    if not items:
        return None
    return items[0] if len(items) == 1 else list(items)


def document_declaration(url: str, select: Any, remove: Any = None, browser: bool = False) -> dict[str, Any]:
    """A single-document terms declaration, in canonical key order."""
    declaration: dict[str, Any] = {"fetch": url, "select": select}
    if remove is not None:
        declaration["remove"] = remove
    if browser:
        declaration["executeClientScripts"] = True
    return canonical_terms(declaration)


def service_declaration(name: str, terms_type: str, terms: dict[str, Any]) -> dict[str, Any]:
    return canonical_declaration({"name": name, "terms": {terms_type: terms}})


def declaration_problems(declaration: dict[str, Any], terms_type: str = PLACEHOLDER_TYPE) -> list[str]:
    """Schema problems of a terms declaration, bad CSS selectors included, as `field: reason` lines."""
    data = {"name": "-", "terms": {terms_type: declaration}}
    problems = service_problems(data) + selector_problems(data)
    prefix = f'$.terms["{terms_type}"]'
    return [f"{problem.json_path.replace(prefix, '$', 1)}: {problem.reason}" for problem in problems]


def default_service_name(url: str) -> str:
    """A first guess at the service name: the host without `www.`."""
    host = urlsplit(url).hostname or "Service"
    return host.removeprefix("www.")


# ------------------------------------------------------------ check report


@dataclass(frozen=True)
class CheckLine:
    """One line of the check list: `status` is "ok", "fail", "warn" or "skipped"."""

    check: str
    status: str
    message: str = ""
    hint: str = ""
    where: str = ""


def check_lines(inspection: DocumentInspection, noise_checked: bool) -> list[CheckLine]:
    """Every check, passed or not, in the order they run, then the warnings.

    A check that failed several times (a bad `select` and a bad `remove`) has a line
    for each failure. A document that was not fetched (its selectors are not CSS)
    has its fetch check skipped.
    """
    failures: dict[str, list[Finding]] = {}
    for finding in inspection.errors:
        failures.setdefault(finding.check, []).append(finding)
    lines = []
    previous_failed = False
    for check, description in (
        ("fetchable", "the page can be fetched"),
        ("selectors-match", "the selectors extract some content"),
        ("select-items", "each select item matches something"),
        ("long-enough", f"more than {MIN_LENGTH} characters"),
        ("stable", "the same text on a second fetch"),
    ):
        if check in failures:
            for finding in failures[check]:
                where = ".".join(str(part) for part in finding.where)
                lines.append(CheckLine(check, "fail", finding.message, finding.hint, where))
            previous_failed = previous_failed or check in ("fetchable", "selectors-match")
        elif check == "fetchable" and inspection.first is None:
            lines.append(CheckLine(check, "skipped", f"{description} (not fetched: fix the selectors first)"))
        elif previous_failed or (check == "stable" and not noise_checked):
            lines.append(CheckLine(check, "skipped", description))
        else:
            lines.append(CheckLine(check, "ok", description))
    for finding in inspection.warnings:
        where = ".".join(str(part) for part in finding.where)
        lines.append(CheckLine(finding.check, "warn", finding.message, finding.hint, where))
    return lines
