"""A collection's `metadata.yml`: who runs it, what it covers, where its data is.

Open Terms Archive collections ship a `metadata.yml` at their root (the folder
holding `declarations/`): id, name, tagline, description, languages,
jurisdictions, dataset and repository URLs, governance, tracking periods… Its
fields are those of the `Metadata` schema of OTA's collection API, mirrored in
`termshift/schema/collection-metadata.schema.json`.

- `metadata_path(configured, declarations_dir)`: where the file is (the `metadata`
  setting, else `metadata.yml` beside the declarations folder).
- `read_metadata(path) -> CollectionMetadata`: the parsed file and every problem
  in it as `DeclarationError`s (`<file>: <json path>: <reason>`); it never raises.
- `MetadataFile(path)`: the same, read again only when the file changes (for the viewer).
- `localised(data, language)`: the fields with the file's `i18n.<language>` applied.

The file is optional: a collection without one simply has no metadata.
"""

from __future__ import annotations

import json
import logging
import os
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from termshift.config import Settings
from termshift.declarations import DeclarationError
from termshift.schema import json_path, metadata_problems

log = logging.getLogger(__name__)

METADATA_FILE = "metadata.yml"
MAX_BYTES = 1024 * 1024  # a metadata file is a few kilobytes; anything this big is a mistake


class _Loader(yaml.SafeLoader):
    """YAML's safe subset, with dates left as the strings written (`startDate: 2025-07-17`),
    and without aliases (`*name`): nested ones expand exponentially once served as JSON.

    The schema wants strings (`format: date`); OTA's checker parses the file the same way.
    """

    def compose_node(self, parent, index):  # type: ignore[override]
        if self.check_event(yaml.AliasEvent):
            event = self.peek_event()
            raise yaml.composer.ComposerError(None, None, "aliases (*name) are not allowed here",
                                              event.start_mark)
        return super().compose_node(parent, index)


_Loader.yaml_implicit_resolvers = {
    first: [(tag, regexp) for tag, regexp in resolvers if tag != "tag:yaml.org,2002:timestamp"]
    for first, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()
}


@dataclass(frozen=True)
class CollectionMetadata:
    """The metadata of a collection: `data` is None when there is no usable file."""

    path: Path | None
    data: dict[str, Any] | None = None
    errors: list[DeclarationError] = field(default_factory=list)

    @property
    def exists(self) -> bool:
        return self.data is not None


def metadata_path(configured: Path | str | None, declarations_dir: Path | str | None) -> Path | None:
    """The metadata file of a collection, whether or not it exists.

    `configured` (the `metadata` setting) wins; otherwise `metadata.yml` in the
    declarations folder's parent, the collection root, as in OTA. None when neither is known.
    """
    if configured:
        return Path(configured)
    if declarations_dir is None:
        return None
    return Path(declarations_dir).resolve().parent / METADATA_FILE


def settings_metadata_path(settings: Settings) -> Path | None:
    """`metadata_path` for a command's `termshift.config.Settings`."""
    return metadata_path(settings.metadata, settings.declarations)


def read_metadata(path: Path | str | None) -> CollectionMetadata:
    """Parse and check the file; a missing file is no error (the file is optional)."""
    if path is None:
        return CollectionMetadata(None)
    path = Path(path)
    try:
        if path.stat().st_size > MAX_BYTES:
            return CollectionMetadata(path, None, [DeclarationError(path, "$", f"larger than {MAX_BYTES} bytes")])
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return CollectionMetadata(path)
    except (OSError, UnicodeDecodeError) as error:
        return CollectionMetadata(path, None, [DeclarationError(path, "$", f"cannot be read: {error}")])
    try:
        data = yaml.load(text, Loader=_Loader)
    except yaml.YAMLError as error:
        return CollectionMetadata(path, None, [DeclarationError(path, "$", f"not valid YAML: {_yaml_reason(error)}")])
    if not isinstance(data, dict):
        got = "an empty file" if data is None else "a list" if isinstance(data, list) else repr(data)[:80]
        return CollectionMetadata(path, None, [DeclarationError(
            path, "$", f"expected a mapping of fields (id: …, name: …, tagline: …), got {got}")])
    data = _json_safe(data)
    errors = [DeclarationError(path, json_path(problem.path), problem.reason) for problem in metadata_problems(data)]
    return CollectionMetadata(path, data, errors)


def _yaml_reason(error: yaml.YAMLError) -> str:
    mark = getattr(error, "problem_mark", None)
    problem = getattr(error, "problem", None) or str(error)
    return f"line {mark.line + 1}, column {mark.column + 1}: {problem}" if mark else problem


def _json_safe(data: dict) -> dict:
    """What JSON can carry: YAML sets, binary or odd keys become strings, as OTA's JSON would show."""
    return json.loads(json.dumps(data, default=str))


def localised(data: dict[str, Any], language: str) -> dict[str, Any]:
    """`data` with its `i18n.<language>` translations merged in (nested objects merged too)."""
    i18n = data.get("i18n")
    translations = i18n.get(language) if isinstance(i18n, dict) else None
    if not isinstance(translations, dict):
        return data
    return _merge(data, translations)


def _merge(base: dict, overlay: dict) -> dict:
    merged = dict(base)
    for key, value in overlay.items():
        if key == "i18n":
            continue
        if isinstance(value, dict) and isinstance(merged.get(key), dict):
            merged[key] = _merge(merged[key], value)
        else:
            merged[key] = value
    return merged


class MetadataFile:
    """The metadata of a file, read again only when its modification time or size changes."""

    def __init__(self, path: Path | None):
        self.path = path
        self._lock = threading.Lock()
        self._stamp: tuple | None = None
        self._metadata = CollectionMetadata(path)
        self.generation = 0  # grows each time the file is read again (for caches of pages)

    def _current_stamp(self) -> tuple | None:
        try:
            stat = os.stat(self.path) if self.path is not None else None
        except OSError:
            return None
        return (stat.st_mtime_ns, stat.st_size, stat.st_ino) if stat else None

    def get(self) -> CollectionMetadata:
        stamp = self._current_stamp()
        with self._lock:
            if stamp != self._stamp:
                self._metadata = read_metadata(self.path) if stamp is not None else CollectionMetadata(self.path)
                self._stamp = stamp
                self.generation += 1
                for error in self._metadata.errors:
                    log.warning("collection metadata: %s", error)
            return self._metadata
