"""`termshift history record SERVICE TYPE`: keep the old declaration when a page changes.

termshift.contrib.history finds the date and writes the history file; here it is told.
"""

from __future__ import annotations

from pathlib import Path

import click

from termshift.commands.options import config_option, data_option, declarations_option, settings_for_command
from termshift.contrib.history import HistoryError, format_valid_until, record_history
from termshift.declarations import ServiceFiles
from termshift.filters import BUILTIN_FILTERS


@click.group("history")
def history_group() -> None:
    """Manage the past declarations of a service (<Service>.history.json)."""


@history_group.command("record")
@click.argument("service_id", metavar="SERVICE")
@click.argument("terms_type", metavar="TYPE")
@declarations_option
@data_option
@config_option
@click.option("--force", is_flag=True,
              help="Record even though the declaration still extracts the newest snapshot.")
def record_command(service_id: str, terms_type: str, declarations_dir: Path | None, data_dir: Path | None,
                   force: bool) -> None:
    """Move the current TYPE declaration of SERVICE into its history file.

    Its validUntil is the date of the newest snapshot in the archive that it
    still extracts. The current declaration is left for you to edit. Refused
    (exit 1) while it still extracts the newest snapshot, unless --force.
    """
    settings = settings_for_command(declarations_dir=declarations_dir, data_dir=data_dir)
    try:
        valid_until, searches = record_history(settings.declarations, settings.data, service_id, terms_type,
                                               force=force)
    except HistoryError as error:
        raise click.ClickException(str(error)) from None
    history_file = ServiceFiles(settings.declarations, service_id).history
    click.echo(f'Recorded the current "{terms_type}" declaration of {service_id} in {history_file}, '
               f"valid until {valid_until}.")
    for search in searches:
        snapshot = search.snapshot
        click.echo(f"  {search.document.location}: the newest of its {search.total} snapshot(s) it extracts is "
                   f"{snapshot.id[:10]}, fetched {format_valid_until(snapshot.fetch_date)}")
        if search.first_failure is not None:
            click.echo(f"    {search.newer_failures} newer snapshot(s) do not extract, the first fetched "
                       f"{format_valid_until(search.first_failure.fetch_date)}: the new declaration must fit them")
        else:
            click.echo("    it still extracts the newest snapshot (recorded with --force)")
    click.echo(f'Now edit "{terms_type}" in {ServiceFiles(settings.declarations, service_id).declaration}, '
               f'then check it with: termshift preview "{service_id}" "{terms_type}"')
    custom = [call.name for document in searches for call in document.document.filters
              if call.name not in BUILTIN_FILTERS]
    if custom:
        click.echo(f"Note: filter functions ({', '.join(sorted(set(custom)))}) have no history: if you change "
                   "one, write a new function with another name instead, so past snapshots keep the old one.")
