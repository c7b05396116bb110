"""`termshift config check` and `termshift config reference` (termshift.config holds the settings)."""

from __future__ import annotations

import click

from termshift.commands.options import config_option
from termshift.config import ConfigError, configured_path, load_settings, reference_markdown


@click.group("config")
def config_group() -> None:
    """Inspect the configuration (termshift.toml and TERMSHIFT_* variables)."""


@config_group.command("check")
@config_option
def config_check() -> None:
    """Report every bad value with its key and the reason; exit 1 if any."""
    try:
        settings = load_settings(configured_path())
    except ConfigError as error:
        click.echo(str(error), err=True)
        raise SystemExit(1) from None
    # The collection's metadata.yml is configuration too (imported here: it is a declarations-layer file).
    from termshift.collection_metadata import read_metadata, settings_metadata_path

    metadata = read_metadata(settings_metadata_path(settings))
    for problem in metadata.errors:
        click.echo(str(problem), err=True)
    if metadata.errors:
        raise SystemExit(1)
    click.echo(f"configuration OK ({settings.source or 'defaults'})"
               + (f", metadata OK ({metadata.path})" if metadata.exists else ""))


@config_group.command("reference")
def config_reference() -> None:
    """Print the Markdown table of all settings (for the README)."""
    click.echo(reference_markdown(), nl=False)
