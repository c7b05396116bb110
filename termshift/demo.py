"""`termshift demo`: rebuild a small real history and serve it, offline.

The package ships a slice of Open Terms Archive's public demo collection
(ODC-BY 1.0, attribute "Open Terms Archive"): 288 real snapshots of five
documents and their declarations. The demo clones them into a local folder,
rebuilds the versions history with Termshift's extraction, and starts the viewer.
"""

from __future__ import annotations

import shutil
import subprocess
from importlib import resources
from pathlib import Path

import click

DEMO_BRANCH = "subset"


def demo_data_dir() -> Path:
    """Where the shipped demo data lives inside the installed package."""
    return Path(str(resources.files("termshift") / "demo_data"))


def prepare_demo(directory: Path) -> tuple[Path, Path]:
    """Lay out `directory` with declarations/ and data/snapshots; return (declarations, data).

    Idempotent: an existing demo folder is reused as it is.
    """
    source = demo_data_dir()
    declarations = directory / "declarations"
    data = directory / "data"
    snapshots = data / "snapshots"
    if not declarations.is_dir():
        shutil.copytree(source / "declarations", declarations)
    if not (directory / "metadata.yml").exists():  # the collection's metadata, beside declarations/
        shutil.copyfile(source / "metadata.yml", directory / "metadata.yml")
    if not (snapshots / ".git").is_dir():
        data.mkdir(parents=True, exist_ok=True)
        subprocess.run(
            ["git", "clone", "--quiet", "--branch", DEMO_BRANCH, str(source / "snapshots.bundle"), str(snapshots)],
            check=True,
        )
        # The clone's branch is `subset`; a local `main` keeps OTA's default name.
        subprocess.run(["git", "-C", str(snapshots), "branch", "-q", "-m", DEMO_BRANCH, "main"], check=True)
        subprocess.run(["git", "-C", str(snapshots), "remote", "remove", "origin"], check=True)
    return declarations, data


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
    from termshift.rebuild import rebuild

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
    from termshift.web.cli import serve

    serve(data_dir=data, declarations_dir=declarations, host=host, port=port)
