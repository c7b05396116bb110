"""`termshift lint`: check (or --fix) the canonical form of a collection's files (termshift.contrib.lint)."""

from __future__ import annotations

from pathlib import Path

import click

from termshift.commands.options import (
    config_option,
    declarations_option,
    services_option,
    settings_for_command,
)
from termshift.contrib.lint import (
    MAX_DIFF_LINES,
    JsonLint,
    RuffLint,
    collection_files,
    lint_json_file,
    lint_python_files,
    write_text_atomically,
)


@click.command("lint")
@declarations_option
@services_option
@config_option
@click.option("--fix", is_flag=True, help="Rewrite the files in canonical form and apply ruff's fixes.")
def lint_command(declarations_dir: Path | None, services: tuple[str, ...], fix: bool) -> None:
    """Check that declaration, history and filters files are in canonical form.

    JSON files: 2-space indentation, keys in the usual order (name, terms; fetch,
    select, remove, filter, executeClientScripts, combine, validUntil), history
    entries sorted by date, a final newline. Python filters: ruff check and ruff
    format. Prints a short diff for each file that differs; exit 1 when any does
    (without --fix) or when something cannot be fixed automatically.
    """
    directory = settings_for_command(declarations_dir=declarations_dir).declarations
    if not directory.is_dir():
        raise click.ClickException(f"declarations folder not found: {directory}")
    json_files, python_files = collection_files(directory, services)
    failed = 0
    for path in json_files:
        failed += _report_json(lint_json_file(path), fix)
    ruff = lint_python_files(python_files, fix=fix, cwd=directory)
    failed += _report_ruff(ruff, python_files, fix)
    checked = len(json_files) + len(python_files)
    click.echo(f"{checked} file{'' if checked == 1 else 's'} checked: "
               + (f"{failed} with problems" if failed else "all canonical"))
    click.get_current_context().exit(1 if failed else 0)


def _report_json(lint: JsonLint, fix: bool) -> int:
    """Print the outcome for one JSON file; 1 when it still needs a human, else 0."""
    if lint.problem is not None:
        click.echo(f"{lint.path}: {lint.problem}")
        return 1
    if lint.is_canonical:
        return 0
    if fix:
        write_text_atomically(lint.path, lint.canonical)
        click.echo(f"{lint.path}: rewritten in canonical form")
        return 0
    click.echo(f"{lint.path}: not in canonical form (`termshift lint --fix` rewrites it):")
    for line in lint.diff():
        click.echo(f"    {line}")
    return 1


def _report_ruff(ruff: RuffLint, python_files: list[Path], fix: bool) -> int:
    """Print what ruff found; the number of filters files that still need a human."""
    if not python_files:
        return 0
    if not ruff.available:
        click.echo("ruff is not installed: the Python filters files were not checked "
                   "(pip install ruff)", err=True)
        return 0
    for failure in ruff.failures:
        click.echo(failure)
    for problem in ruff.problems:
        click.echo(str(problem))
    if ruff.unformatted:
        click.echo("Python filters not formatted as `ruff format` would "
                   "(`termshift lint --fix` reformats them):")
        lines = [line for diff in ruff.unformatted.values() for line in diff]
        for line in lines[:MAX_DIFF_LINES]:
            click.echo(f"    {line}")
    elif fix:
        click.echo(f"ruff: {len(python_files)} filters file{'' if len(python_files) == 1 else 's'} checked")
    return len(ruff.files_with_problems(python_files))
