"""`termshift import-ota`: bring an Open Terms Archive collection into Termshift.

Declarations and history files have the same format in both projects, so they
are copied as they are and checked with the schema checks. Filters are the one
thing that does not carry over: OTA's are JavaScript (`<id>.filters.js`), ours
are Python (`<id>.filters.py`, see docs/filters.md). The JavaScript files are
copied too, as the reference to port from (a service keeps failing validation
with "JavaScript filters must be ported" until its `.filters.py` exists), and
the command lists, for each, the functions it exports and which declarations
call them, with the Python signature each port needs. It writes no stubs: a
filter that pretends to work would hide the noise it was written to remove.
"""

from __future__ import annotations

import filecmp
import json
import re
import shutil
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import click

from termshift.cli import declarations_option
from termshift.collection_metadata import metadata_path, read_metadata, settings_metadata_path
from termshift.config import config_option, settings_for_command
from termshift.declarations import DeclarationError, FilterCall
from termshift.filters import BUILTIN_FILTERS
from termshift.schema import json_path
from termshift.validate import validate_collection

# What is copied, by file-name ending. The filters history has no Termshift equivalent
# (past filter versions are not resolved); it is copied for reference only.
COPIED_SUFFIXES = (".history.json", ".json", ".filters.js", ".filters.history.js")
PORT_NEEDED = "JavaScript filters must be ported"


# ------------------------------------------------------------ JavaScript exports


@dataclass(frozen=True)
class JsExport:
    """A name exported by a filters module; `source` is set for `export { x } from '…'`."""

    name: str
    source: str | None = None


@dataclass
class JsModule:
    exports: list[JsExport] = field(default_factory=list)
    star_sources: list[str] = field(default_factory=list)  # `export * from '…'`

    @property
    def names(self) -> list[str]:
        return [export.name for export in self.exports]


_IDENTIFIER = r"[A-Za-z_$][\w$]*"
_DECLARATION_EXPORT = re.compile(
    rf"\bexport\s+(?:async\s+)?(?:function\s*\*?|const|let|var|class)\s*({_IDENTIFIER})")
_LIST_EXPORT = re.compile(r"\bexport\s*\{([^}]*)\}(?:\s*from\s*(['\"])(.*?)\2)?")
_STAR_EXPORT = re.compile(r"\bexport\s*\*\s*(?:as\s+(" + _IDENTIFIER + r")\s*)?from\s*(['\"])(.*?)\2")


def strip_js_comments(source: str) -> str:
    """`source` without `//` and `/* */` comments, leaving string literals alone.

    A small scanner rather than a regular expression, because URLs in strings
    (`"https://…"`) contain `//`. Regular-expression literals are not recognised;
    in filters they hardly ever contain quotes or comment markers.
    """
    output: list[str] = []
    index, length = 0, len(source)
    while index < length:
        character = source[index]
        if character in "'\"`":
            end = index + 1
            while end < length and source[end] != character:
                end += 2 if source[end] == "\\" else 1
            output.append(source[index:end + 1])
            index = end + 1
        elif source.startswith("//", index):
            newline = source.find("\n", index)
            index = length if newline < 0 else newline
        elif source.startswith("/*", index):
            end = source.find("*/", index + 2)
            index = length if end < 0 else end + 2
            output.append(" ")
        else:
            output.append(character)
            index += 1
    return "".join(output)


def javascript_exports(source: str) -> JsModule:
    """The named exports of an ES module (`export function f`, `export async function f`,
    `export const f =`, `export { a, b as c }`, `export { x } from '…'`, `export * from '…'`).

    A default export is left out: declarations call filters by name.
    """
    code = strip_js_comments(source)
    found: list[tuple[int, JsExport]] = []
    for match in _DECLARATION_EXPORT.finditer(code):
        found.append((match.start(), JsExport(match.group(1))))
    for match in _LIST_EXPORT.finditer(code):
        for item in match.group(1).split(","):
            words = item.split()
            if not words:
                continue
            name = words[-1] if len(words) == 3 and words[1] == "as" else words[0]
            found.append((match.start(), JsExport(name, match.group(3))))
    module = JsModule()
    for match in _STAR_EXPORT.finditer(code):
        if match.group(1):
            found.append((match.start(), JsExport(match.group(1), match.group(3))))
        else:
            module.star_sources.append(match.group(3))
    seen: set[str] = set()
    for _position, export in sorted(found, key=lambda pair: pair[0]):
        if export.name not in seen:
            seen.add(export.name)
            module.exports.append(export)
    return module


# ------------------------------------------------------------- filter uses


@dataclass(frozen=True)
class FilterUse:
    file: Path
    json_path: str
    with_params: bool  # called as f(document, params, context)


def _filter_lists(declaration: Any, prefix: tuple) -> list[tuple[tuple, list]]:
    if not isinstance(declaration, dict):
        return []
    lists = [((*prefix, "filter"), declaration["filter"])] if isinstance(declaration.get("filter"), list) else []
    for index, item in enumerate(declaration.get("combine") or []):
        if isinstance(item, dict) and isinstance(item.get("filter"), list):
            lists.append(((*prefix, "combine", index, "filter"), item["filter"]))
    return lists


def _terms_declarations(path: Path) -> list[tuple[tuple, Any]]:
    """(JSON path prefix, terms declaration) of a declaration or history file; [] if unreadable."""
    try:
        data = json.loads(path.read_text(encoding="utf-8-sig"))
    except (OSError, ValueError):
        return []
    if not isinstance(data, dict):
        return []
    if path.name.endswith(".history.json"):
        return [((terms_type, index), entry) for terms_type, entries in data.items()
                if isinstance(entries, list) for index, entry in enumerate(entries)]
    terms = data.get("terms")
    return [(("terms", terms_type), value) for terms_type, value in terms.items()] if isinstance(terms, dict) else []


def filter_uses(files: list[Path]) -> dict[str, list[FilterUse]]:
    """Filter name -> every place a declaration or history file calls it (built-ins left out)."""
    uses: dict[str, list[FilterUse]] = {}
    for path in files:
        if not path.is_file():
            continue
        for prefix, declaration in _terms_declarations(path):
            for list_path, items in _filter_lists(declaration, prefix):
                for index, item in enumerate(items):
                    try:
                        call = FilterCall.from_declaration(item)
                    except (AttributeError, ValueError, TypeError):
                        continue  # malformed: the schema check reports it
                    if call.name not in BUILTIN_FILTERS:
                        uses.setdefault(call.name, []).append(
                            FilterUse(path, json_path((*list_path, index)), call.passes_params))
    return uses


# -------------------------------------------------------------- importing


@dataclass
class FilterPort:
    """One service whose JavaScript filters need a Python port."""

    service_id: str
    javascript: Path
    module: JsModule
    uses: dict[str, list[FilterUse]]

    @property
    def python_file(self) -> str:
        return f"{self.service_id}.filters.py"

    def signature(self, name: str) -> str:
        with_params = any(use.with_params for use in self.uses.get(name, []))
        return f"{name}(document, params, context)" if with_params else f"{name}(document, context)"

    @property
    def missing(self) -> list[str]:
        """Names the declarations call but the module does not visibly export."""
        return [name for name in self.uses if name not in self.module.names]


@dataclass
class ImportReport:
    source: Path
    destination: Path
    copied: list[Path] = field(default_factory=list)
    unchanged: list[Path] = field(default_factory=list)
    skipped: list[Path] = field(default_factory=list)  # exists with other content, not overwritten
    services: list[str] = field(default_factory=list)
    errors: list[DeclarationError] = field(default_factory=list)  # schema problems, ports excluded
    ports: list[FilterPort] = field(default_factory=list)


def find_declarations_folder(directory: Path) -> Path:
    """DIR itself, or DIR/declarations for a collection root. Raises click.UsageError."""
    directory = Path(directory)
    if not directory.is_dir():
        raise click.UsageError(f"{directory}: no such folder")
    inner = directory / "declarations"
    if inner.is_dir():
        return inner
    if any(directory.glob("*.json")):
        return directory
    raise click.UsageError(
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
        report.errors += [error for errors in validation.errors.values() for error in errors
                          if not error.reason.startswith(PORT_NEEDED)]
    report.ports = _ports(destination, report.services)
    return report


def _ports(directory: Path, service_ids: list[str]) -> list[FilterPort]:
    ports = []
    for service_id in service_ids:
        javascript = directory / f"{service_id}.filters.js"
        if not javascript.is_file() or (directory / f"{service_id}.filters.py").is_file():
            continue
        module = javascript_exports(javascript.read_text(encoding="utf-8", errors="replace"))
        uses = filter_uses([directory / f"{service_id}.json", directory / f"{service_id}.history.json"])
        ports.append(FilterPort(service_id, javascript, module, uses))
    return ports


# ---------------------------------------------------------------- command


@click.command("import-ota")
@click.argument("source", type=click.Path(file_okay=False, path_type=Path))
@declarations_option
@config_option
@click.option("--overwrite", is_flag=True, help="Replace files that already exist with other content.")
def import_ota_command(source: Path, declarations_dir: Path | None, overwrite: bool) -> None:
    """Copy an Open Terms Archive collection's declarations into this collection.

    SOURCE is the collection root (holding declarations/) or its declarations
    folder. Declarations, history files, JavaScript filters and the collection's
    metadata.yml (beside declarations/) are copied (an
    existing file with other content is kept unless --overwrite), checked with
    the schema checks, and every JavaScript filter that needs a Python port is
    listed with the declarations that use it. Exit 1 on a schema error.
    """
    settings = settings_for_command(declarations_dir=declarations_dir)
    report = import_collection(source, settings.declarations, overwrite=overwrite,
                               metadata_destination=settings_metadata_path(settings))
    _print_files(report)
    for error in report.errors:
        click.echo(str(error))
    click.echo(f"Schema check of {len(report.services)} service(s): "
               + (f"{len(report.errors)} error(s)" if report.errors else "no errors"))
    _print_ports(report.ports)
    click.get_current_context().exit(1 if report.errors else 0)


def _print_files(report: ImportReport) -> None:
    click.echo(f"Imported from {report.source} into {report.destination}: {len(report.copied)} file(s) copied, "
               f"{len(report.unchanged)} already identical, {len(report.skipped)} kept.")
    for path in report.skipped:
        click.echo(f"  kept {path.name}: it exists with other content (--overwrite replaces it)")


def _print_ports(ports: list[FilterPort]) -> None:
    if not ports:
        click.echo("No JavaScript filter to port.")
        return
    click.echo(f"\nJavaScript filters to port to Python ({len(ports)} service(s); "
               "see docs/filters.md). Until then these services fail validation:")
    for port in ports:
        click.echo(f"\n  {port.javascript.name} -> write {port.python_file} with:")
        for export in port.module.exports:
            where = f" (re-exported from {export.source})" if export.source else ""
            uses = port.uses.get(export.name, [])
            click.echo(f"    def {port.signature(export.name)}{where}")
            for use in uses:
                click.echo(f"        used by {use.file.name} {use.json_path}")
            if not uses:
                click.echo("        not used by any declaration: port it only if you need it")
        for star in port.module.star_sources:
            click.echo(f"    everything exported by {star} (export * from …): port the functions used from it")
        for name in port.missing:
            click.echo(f"    def {port.signature(name)}: called by the declarations but not found among the exports")
            for use in port.uses[name]:
                click.echo(f"        used by {use.file.name} {use.json_path}")
