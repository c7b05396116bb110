"""`termshift validate`: check a collection of declarations (termshift.validate runs the checks)."""

from __future__ import annotations

from pathlib import Path

import click

from termshift import validate as validation
from termshift.collection_metadata import read_metadata, settings_metadata_path
from termshift.commands.options import (
    config_option,
    declarations_option,
    services_option,
    settings_for_command,
    types_option,
)
from termshift.schema import suggest, terms_types
from termshift.validate import ValidationReport, validate_collection


def _plural(count: int, word: str) -> str:
    return f"{count} {word}{'' if count == 1 else 's'}"


def summary(report: ValidationReport, schema_only: bool, network_available: bool) -> str:
    mode = "schema only" if schema_only else "all checks" if network_available else "offline checks only"
    head = f"{_plural(len(report.services), 'service')} checked ({mode})"
    if not report.services and not report.errors:
        return f"{head}: nothing to validate"
    warnings = f", {_plural(report.warning_count, 'warning')}" if report.warning_count else ""
    if report.error_count == 0:
        return f"{head}: no errors{warnings}"
    return f"{head}: {_plural(report.error_count, 'error')} in {_plural(len(report.errors), 'service')}{warnings}"


@click.command("validate")
@declarations_option
@services_option
@types_option
@config_option
@click.option("--schema-only", is_flag=True,
              help="Only check the files: JSON, schemas, history files, CSS selectors and filters. "
                   "Fetches nothing and runs no filter code.")
@click.option("--modified", is_flag=True,
              help="Only the services and terms types changed since the merge base with --base (git).")
@click.option("--base", default=None, metavar="REF", help="Branch or commit for --modified (default: main).")
def validate_command(declarations_dir: Path | None, services: tuple[str, ...], types: tuple[str, ...],
                     schema_only: bool, modified: bool, base: str | None) -> None:
    """Check the declarations of a collection; exit 1 if anything is wrong.

    Each problem is printed as FILE: JSON PATH: REASON; harmless ones that OTA
    tolerates as "warning: ..." (they do not change the exit status). Files are
    always checked whole; --types only narrows the checks made per terms type.
    Filters files are read, never run (network checks excepted: they extract
    pages, filters included, as tracking does).
    """
    settings = settings_for_command(declarations_dir=declarations_dir)
    directory = settings.declarations
    if not directory.is_dir():
        raise click.ClickException(f"declarations folder not found: {directory}")
    for terms_type in types:
        if terms_type not in terms_types():
            hint = suggest(terms_type, terms_types())
            raise click.BadParameter(f"unknown terms type '{terms_type}'"
                                     + (f" (did you mean '{hint}'?)" if hint else ""), param_hint="--types")
    if modified or base:
        from termshift.validate_network import ModifiedSelectionError, validate_modified

        try:
            report = validate_modified(directory, base, service_ids=services, types=types, schema_only=schema_only,
                                       announce=click.echo)
        except ModifiedSelectionError as error:
            raise click.ClickException(f"--modified: {error}") from None
        if not report.services and not report.errors:
            # A pull request that touches no declaration has nothing to validate: that is fine.
            click.echo("Nothing changed in the declarations: nothing to validate.")
            return
    else:
        report = validate_collection(directory, service_ids=services, types=types, schema_only=schema_only)
    network_available = any(check.network for check in validation.CHECKS)
    if not schema_only and not network_available:
        click.echo("Network checks (fetching pages, matching selectors) are not implemented yet: "
                   "running the checks that need no network.", err=True)
    for errors in report.errors.values():
        for error in errors:
            click.echo(str(error))
    metadata = read_metadata(settings_metadata_path(settings))  # the collection's metadata.yml, if any
    for error in metadata.errors:
        click.echo(str(error))
    for warnings in report.warnings.values():
        for warning in warnings:
            click.echo(f"warning: {warning}")
    click.echo(summary(report, schema_only, network_available))
    if metadata.errors:
        click.echo(f"{metadata.path}: {_plural(len(metadata.errors), 'error')} in the collection's metadata")
    click.get_current_context().exit(0 if report.ok and not metadata.errors else 1)
