"""The demo collection: a small real history that `termshift demo` rebuilds and serves, offline.

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
