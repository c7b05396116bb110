"""`termshift rebuild` and `termshift apply-technical-upgrades` (termshift.trackers.replay does the replay)."""

from __future__ import annotations

from pathlib import Path

import click

from termshift.commands.options import (
    config_option,
    data_option,
    declarations_option,
    services_option,
    settings_for_command,
    types_option,
)
from termshift.errors import TermshiftError
from termshift.trackers.replay import EXIT_SERVICES_SKIPPED, apply_technical_upgrades, rebuild


@click.command("rebuild")
@declarations_option
@click.option("--snapshots", "snapshots_path", required=True, type=click.Path(file_okay=False, path_type=Path),
              help="The snapshots git repository to read (an OTA snapshots repo works).")
@click.option("--versions", "versions_path", required=True, type=click.Path(file_okay=False, path_type=Path),
              help="The versions git repository to write (created when missing; must hold no version).")
@services_option
@types_option
@config_option
@click.option("--quiet", "-q", is_flag=True, help="No progress bar.")
def rebuild_command(
    declarations_dir: Path | None,
    snapshots_path: Path,
    versions_path: Path,
    services: tuple[str, ...],
    types: tuple[str, ...],
    quiet: bool,
) -> None:
    """Re-extract a whole snapshots history into a versions repository.

    Snapshots are read oldest first; each is extracted with the declaration in
    force at its fetch date (history files included), and a version is recorded
    only when the Markdown changes. Prints a summary with the failures per
    document. A service whose declaration, history or filters file does not load
    is skipped whole and reported; the others are replayed. Exit 0 when the
    replay completed, 1 when it could not start, 3 when it completed but skipped
    such services.
    """
    settings = settings_for_command(declarations_dir=declarations_dir)
    try:
        summary = rebuild(
            settings.declarations, snapshots_path, versions_path,
            services=services or None, types=types or None, settings=settings, progress=not quiet,
        )
    except TermshiftError as error:
        raise click.ClickException(str(error)) from None
    click.echo(summary.describe())
    if summary.skipped_services:
        click.get_current_context().exit(EXIT_SERVICES_SKIPPED)


@click.command("apply-technical-upgrades")
@declarations_option
@data_option
@services_option
@types_option
@config_option
@click.option("--quiet", "-q", is_flag=True, help="No progress bar.")
def apply_technical_upgrades_command(
    declarations_dir: Path | None,
    data_dir: Path | None,
    services: tuple[str, ...],
    types: tuple[str, ...],
    quiet: bool,
) -> None:
    """Re-extract each document's latest snapshot with the current declarations.

    Records a version marked "Apply technical or declaration upgrade on …" when
    the result differs from the latest version (after a selector fix, a filter
    change or an engine upgrade). Nothing is fetched. Exit 0 when done, 1 when
    it could not start, 3 when services whose declaration, history or filters
    file does not load were skipped (the others were upgraded).
    """
    settings = settings_for_command(declarations_dir=declarations_dir, data_dir=data_dir)
    try:
        summary = apply_technical_upgrades(
            settings.declarations, settings.data,
            services=services or None, types=types or None, settings=settings, progress=not quiet,
        )
    except TermshiftError as error:
        raise click.ClickException(str(error)) from None
    click.echo(summary.describe())
    if summary.skipped_services:
        click.get_current_context().exit(EXIT_SERVICES_SKIPPED)
