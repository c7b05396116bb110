"""Importing (`termshift import-ota`): bring an Open Terms Archive collection into Termshift.

Declarations, history files, JavaScript filters and their history have the same
format in both projects, so they are copied as they are and checked with the
schema checks of `validate` (JavaScript filters are parsed, never run: see
docs/filters.md). Nothing is left to port: JavaScript filters run unchanged.
"""

from __future__ import annotations

import filecmp
import shutil
from dataclasses import dataclass, field
from pathlib import Path

from termshift.collection_metadata import metadata_path, read_metadata
from termshift.declarations import DeclarationError
from termshift.errors import TermshiftError
from termshift.validate import validate_collection

# What is copied, by file-name ending.
COPIED_SUFFIXES = (".history.json", ".json", ".filters.js", ".filters.history.js")


@dataclass
class ImportReport:
    source: Path
    destination: Path
    copied: list[Path] = field(default_factory=list)
    unchanged: list[Path] = field(default_factory=list)
    skipped: list[Path] = field(default_factory=list)  # exists with other content, not overwritten
    services: list[str] = field(default_factory=list)
    errors: list[DeclarationError] = field(default_factory=list)  # what `validate --schema-only` finds
    javascript_filters: list[Path] = field(default_factory=list)  # run as they are


class NoCollectionError(TermshiftError):
    """The folder to import is neither a collection nor a declarations folder."""


def find_declarations_folder(directory: Path) -> Path:
    """DIR itself, or DIR/declarations for a collection root. Raises NoCollectionError."""
    directory = Path(directory)
    if not directory.is_dir():
        raise NoCollectionError(f"{directory}: no such folder")
    inner = directory / "declarations"
    if inner.is_dir():
        return inner
    if any(directory.glob("*.json")):
        return directory
    raise NoCollectionError(
        f"{directory}: neither a collection (no 'declarations' folder) nor a declarations folder (no *.json file)")


def _copied_name(path: Path) -> bool:
    return path.is_file() and path.name.endswith(COPIED_SUFFIXES) and not path.name.startswith(".")


def _service_id(name: str) -> str:
    for suffix in COPIED_SUFFIXES:
        if name.endswith(suffix):
            return name[: -len(suffix)]
    return name


def _copy(path: Path, target: Path, report: ImportReport, overwrite: bool) -> None:
    if target.exists() and filecmp.cmp(path, target, shallow=False):
        report.unchanged.append(target)
    elif target.exists() and not overwrite:
        report.skipped.append(target)
    else:
        shutil.copyfile(path, target)
        report.copied.append(target)


def import_collection(source: Path, destination: Path, *, overwrite: bool = False,
                      metadata_destination: Path | None = None) -> ImportReport:
    """Copy the collection at `source` into `destination`, then check what was copied.

    The collection's `metadata.yml` (at its root, beside `declarations/`) is copied to
    `metadata_destination` (default: beside `destination`) and checked too.
    """
    source = find_declarations_folder(source)
    destination = Path(destination)
    destination.mkdir(parents=True, exist_ok=True)
    report = ImportReport(source, destination)
    for path in sorted(filter(_copied_name, source.iterdir())):
        _copy(path, destination / path.name, report, overwrite)
    metadata = metadata_path(None, source)
    if metadata is not None and metadata.is_file():
        target = metadata_destination or metadata_path(None, destination)
        _copy(metadata, target, report, overwrite)
        if target in report.copied or target in report.unchanged:
            report.errors.extend(read_metadata(target).errors)
    imported = {_service_id(path.name) for path in report.copied + report.unchanged}
    report.services = sorted(service for service in imported
                             if (destination / f"{service}.json").is_file())
    if report.services:
        validation = validate_collection(destination, service_ids=report.services, schema_only=True)
        report.errors += [error for errors in validation.errors.values() for error in errors]
    report.javascript_filters = [destination / f"{service}{suffix}" for service in report.services
                                 for suffix in (".filters.js", ".filters.history.js")
                                 if (destination / f"{service}{suffix}").is_file()]
    return report
