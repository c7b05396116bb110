"""`termshift dataset`: export the versions as a ZIP release (termshift.dataset builds it)."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import click

from termshift.commands.options import config_option, data_option, settings_for_command
from termshift.dataset import DatasetError, _iso, archive_basename, export_dataset


@click.command("dataset")
@click.option("--file", "-f", "file_name", default=None,
              help="Name of the ZIP file (default: <dataset.title>-<YYYY-MM-DD>.zip in the current folder).")
@data_option(help="Folder holding the versions/ repository (default: ./data).")
@config_option(help="Configuration file (default: $TERMSHIFT_CONFIG or ./termshift.toml).", metavar=None)
def dataset_command(file_name: str | None, data_dir: Path | None) -> None:
    """Export every version to a ZIP dataset (OTA's layout, plus versions.csv)."""
    settings = settings_for_command(data_dir=data_dir)
    section = settings.dataset
    output = Path(file_name) if file_name else Path(archive_basename(section.title, datetime.now(UTC)))
    try:
        summary = export_dataset(settings.data, output, title=section.title,
                                 versions_repository_url=section.versions_repository_url)
    except DatasetError as error:
        raise click.ClickException(str(error)) from None
    click.echo(f"{summary.path}: {summary.versions} versions of {len(summary.documents)} terms from "
               f"{len(summary.services)} services ({_iso(summary.first)} to {_iso(summary.last)})")
