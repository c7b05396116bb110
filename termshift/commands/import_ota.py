"""`termshift import-ota`: copy an Open Terms Archive collection in (termshift.contrib.import_ota)."""

from __future__ import annotations

from pathlib import Path

import click

from termshift.collection_metadata import settings_metadata_path
from termshift.commands.options import config_option, declarations_option, settings_for_command
from termshift.contrib.import_ota import ImportReport, NoCollectionError, import_collection


@click.command("import-ota")
@click.argument("source", type=click.Path(file_okay=False, path_type=Path))
@declarations_option
@config_option
@click.option("--overwrite", is_flag=True, help="Replace files that already exist with other content.")
def import_ota_command(source: Path, declarations_dir: Path | None, overwrite: bool) -> None:
    """Copy an Open Terms Archive collection's declarations into this collection.

    SOURCE is the collection root (holding declarations/) or its declarations
    folder. Declarations, history files, JavaScript filters and filters history
    files, and the collection's metadata.yml (beside declarations/), are copied
    (an existing file with other content is kept unless
    --overwrite) and checked with `validate --schema-only` (JavaScript filters
    are parsed, not run). They run unchanged: nothing is left to port. Exit 1
    on an error.
    """
    settings = settings_for_command(declarations_dir=declarations_dir)
    try:
        report = import_collection(source, settings.declarations, overwrite=overwrite,
                                   metadata_destination=settings_metadata_path(settings))
    except NoCollectionError as error:
        raise click.UsageError(str(error)) from None
    _print_files(report)
    for error in report.errors:
        click.echo(str(error))
    click.echo(f"Schema check of {len(report.services)} service(s): "
               + (f"{len(report.errors)} error(s)" if report.errors else "no errors"))
    _print_javascript(report)
    click.get_current_context().exit(1 if report.errors else 0)


def _print_files(report: ImportReport) -> None:
    click.echo(f"Imported from {report.source} into {report.destination}: {len(report.copied)} file(s) copied, "
               f"{len(report.unchanged)} already identical, {len(report.skipped)} kept.")
    for path in report.skipped:
        click.echo(f"  kept {path.name}: it exists with other content (--overwrite replaces it)")


def _print_javascript(report: ImportReport) -> None:
    if not report.javascript_filters:
        click.echo("No JavaScript filters.")
        return
    click.echo(f"JavaScript filters: {len(report.javascript_filters)} file(s), run as they are (nothing to port; "
               "they run in a sandbox, but they are code: review them, see docs/filters.md):")
    for path in report.javascript_filters:
        click.echo(f"  {path.name}")
