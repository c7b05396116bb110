"""`termshift demo`: rebuild the demo history (termshift.demo) and serve it, offline."""

from __future__ import annotations

from pathlib import Path

import click

from termshift.demo import prepare_demo


@click.command("demo")
@click.option("--dir", "directory", type=click.Path(file_okay=False, path_type=Path),
              default=Path("termshift-demo"), show_default=True, help="Folder for the demo archive.")
@click.option("--host", default="127.0.0.1", show_default=True, help="Address the viewer listens on.")
@click.option("--port", default=5000, show_default=True, type=int, help="Port the viewer listens on.")
@click.option("--no-serve", is_flag=True, help="Only rebuild the archive; do not start the viewer.")
def demo_command(directory: Path, host: str, port: int, no_serve: bool) -> None:
    """Rebuild a small real history (shipped with Termshift) and serve it.

    Works offline: the snapshots are real pages archived by Open Terms Archive
    (ODC-BY 1.0). The versions are extracted by Termshift on your machine.
    """
    from termshift.trackers.replay import rebuild

    declarations, data = prepare_demo(directory)
    versions = data / "versions"
    if not (versions / ".git").is_dir():
        click.echo(f"Rebuilding the demo history into {versions} ...")
        summary = rebuild(declarations, data / "snapshots", versions, progress=True)
        click.echo(summary.describe())
    else:
        click.echo(f"Reusing {versions}")
    if no_serve:
        return
    from termshift.commands.serve import serve

    serve(data_dir=data, declarations_dir=declarations, host=host, port=port)
