"""`termshift try URL` and `termshift preview SERVICE [TYPE]`: see what a declaration extracts.

The checks and the declaration drafting are termshift.contrib.trypage's (shared with the
`/declare` page); here they are printed.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import click

from termshift.commands.options import config_option, declarations_option, settings_for_command
from termshift.config import Settings
from termshift.contrib.lint import canonical_terms, format_json
from termshift.contrib.trypage import (
    DEFAULT_SELECT,
    SelectorTextError,
    check_lines,
    declaration_problems,
    default_service_name,
    document_declaration,
    parse_selector,
    selectors_value,
    service_declaration,
)
from termshift.declarations import ServiceLoadError, SourceDocument, Terms, load_service
from termshift.schema import suggest, terms_types
from termshift.validate_network import DEFAULT_NOISE_DELAY, DocumentInspection, inspect_documents

_MARKS = {"ok": "  ok  ", "fail": " FAIL ", "warn": " warn ", "skipped": " skip "}


def _echo_section(title: str) -> None:
    click.echo(f"\n── {title} " + "─" * max(3, 70 - len(title)))


def echo_inspection(inspection: DocumentInspection, noise_checked: bool) -> None:
    """The Markdown (or why there is none), then the checks."""
    first = inspection.first
    how = f"fetched with {first.fetcher}" if first is not None and first.fetcher else "not fetched"
    if inspection.markdown is not None:
        _echo_section(f"Markdown of {inspection.document.location} ({len(inspection.markdown)} characters, {how})")
        click.echo(inspection.markdown)
    else:
        _echo_section(f"No Markdown from {inspection.document.location} ({how})")
    _echo_section("Checks")
    for line in check_lines(inspection, noise_checked):
        where = f" [{line.where}]" if line.where else ""
        click.echo(f"{_MARKS[line.status]} {line.check}{where}: {line.message}")
        if line.hint and line.status in ("fail", "warn"):
            click.echo(f"        hint: {line.hint}")


# ---------------------------------------------------------------- commands


def _settings(declarations_dir: Path | None = None) -> Settings:
    return settings_for_command(declarations_dir=declarations_dir)


def _check_type(terms_type: str | None) -> None:
    if terms_type is not None and terms_type not in terms_types():
        hint = suggest(terms_type, terms_types())
        raise click.BadParameter(f"unknown terms type '{terms_type}'" + (f" (did you mean '{hint}'?)" if hint else ""),
                                 param_hint="--type")


@click.command("try")
@click.argument("url")
@click.option("--select", "select_texts", multiple=True, metavar="SELECTOR",
              help="CSS selector of the content to keep, or a range as JSON; repeat for several "
                   f"(default: {DEFAULT_SELECT}).")
@click.option("--remove", "remove_texts", multiple=True, metavar="SELECTOR",
              help="CSS selector (or JSON range) of content to leave out; repeat for several.")
@click.option("--browser", is_flag=True, help="Run the page's JavaScript in Chromium (executeClientScripts).")
@click.option("--type", "terms_type", default=None, help="Terms type, to print a whole service declaration.")
@click.option("--name", default=None, help="Service name for that declaration (default: the host name).")
@click.option("--delay", type=click.FloatRange(min=0), default=DEFAULT_NOISE_DELAY, show_default=True,
              help="Seconds between the two fetches of the noise check.")
@click.option("--once", is_flag=True, help="Fetch only once: no noise check.")
@config_option
def try_command(url: str, select_texts: tuple[str, ...], remove_texts: tuple[str, ...], browser: bool,
                terms_type: str | None, name: str | None, delay: float, once: bool) -> None:
    """Fetch URL, extract it with the given selectors and print the Markdown.

    Then the checks (fetchable, the selectors match, long enough, the same text
    on a second fetch a few seconds later) with hints, and the declaration to
    paste into declarations/<Service>.json. Exit 1 when a check fails.
    """
    _check_type(terms_type)
    try:
        select_items = [parse_selector(text, "--select") for text in select_texts]
        remove_items = [parse_selector(text, "--remove") for text in remove_texts]
    except SelectorTextError as error:
        raise click.BadParameter(error.message, param_hint=error.source) from None
    if not select_items:
        # On standard output, before the report it explains: a separate stream could show it after
        # everything else (when both are captured), far from the Markdown it is about.
        click.echo(f"No --select given: extracting the whole <{DEFAULT_SELECT}>. Find the element that holds "
                   "the terms (right-click > Inspect in a browser) and pass it with --select.")
        select_items = [DEFAULT_SELECT]
    declaration = document_declaration(url, selectors_value(select_items), selectors_value(remove_items), browser)
    problems = declaration_problems(declaration)
    if problems:
        raise click.UsageError("this declaration would not be valid:\n  " + "\n  ".join(problems))
    document = SourceDocument(url, declaration["select"], declaration.get("remove"),
                              execute_client_scripts=True if browser else None)
    [inspection] = inspect_documents([(document, None)], _settings().fetcher, delay=None if once else delay)
    echo_inspection(inspection, noise_checked=not once)
    if terms_type:
        service_name = name or default_service_name(url)
        _echo_section(f"Declaration: save as declarations/{service_name}.json")
        click.echo(format_json(service_declaration(service_name, terms_type, declaration)), nl=False)
    else:
        _echo_section('Terms declaration: paste under "terms" > "<Terms type>" in declarations/<Service>.json')
        click.echo(format_json(declaration), nl=False)
    click.get_current_context().exit(1 if inspection.errors else 0)


@click.command("preview")
@click.argument("service_id", metavar="SERVICE")
@click.argument("terms_type", metavar="[TYPE]", required=False)
@declarations_option
@click.option("--delay", type=click.FloatRange(min=0), default=DEFAULT_NOISE_DELAY, show_default=True,
              help="Seconds between the two fetches of the noise check.")
@click.option("--once", is_flag=True, help="Fetch only once: no noise check.")
@config_option
def preview_command(service_id: str, terms_type: str | None, declarations_dir: Path | None,
                    delay: float, once: bool) -> None:
    """Fetch a declared document and print what it extracts, with the checks.

    Without TYPE, every terms type of SERVICE. Exit 1 when a check fails.
    """
    settings = _settings(declarations_dir)
    service = _load(settings.declarations, service_id)
    chosen = _chosen_terms(service.terms, terms_type, service_id)
    documents = [(terms, document) for terms in chosen for document in terms.documents]
    inspections = inspect_documents([(document, service.filters) for _terms, document in documents],
                                    settings.fetcher,
                                    delay=None if once else delay)
    failed = False
    for (terms, document), inspection in zip(documents, inspections, strict=True):
        position = f", document {terms.documents.index(document) + 1} of {len(terms.documents)}" \
            if terms.combined else ""
        click.echo(f"\n{service_id} — {terms.type}{position}")
        echo_inspection(inspection, noise_checked=not once)
        failed = failed or bool(inspection.errors)
    for terms in chosen:
        _echo_section(f'Declaration of "{terms.type}" in {service.path}')
        click.echo(format_json(_declared(service.path, terms)), nl=False)
    click.get_current_context().exit(1 if failed else 0)


def _load(directory: Path, service_id: str) -> Any:
    try:
        return load_service(directory, service_id)
    except ServiceLoadError as error:
        if not (directory / f"{service_id}.json").is_file():
            from termshift.declarations import list_service_ids

            hint = suggest(service_id, list_service_ids(directory)) if directory.is_dir() else None
            raise click.ClickException(f"no declaration of service '{service_id}' in {directory}"
                                       + (f" (did you mean '{hint}'?)" if hint else "")) from None
        raise click.ClickException(f"{service_id} does not load:\n{error}") from None


def _chosen_terms(terms: dict[str, Terms], terms_type: str | None, service_id: str) -> list[Terms]:
    if terms_type is None:
        return list(terms.values())
    if terms_type not in terms:
        hint = suggest(terms_type, terms)
        raise click.ClickException(f"{service_id} declares no '{terms_type}'"
                                   + (f" (did you mean '{hint}'?)" if hint else f"; it declares: {', '.join(terms)}"))
    return [terms[terms_type]]


def _declared(path: Path, terms: Terms) -> dict[str, Any]:
    """The terms declaration as written in the file (shared combine fields kept)."""
    try:
        return canonical_terms(json.loads(path.read_text(encoding="utf-8-sig"))["terms"][terms.type])
    except (OSError, ValueError, KeyError):
        return terms.to_declaration()
