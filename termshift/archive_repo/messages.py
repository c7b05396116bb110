"""OTA's commit conventions for the snapshots and versions repositories.

Everything a reader of an OTA repository relies on lives here, as pure functions:
the file path of a record (`<service>/<terms type>[ #<document id>].<ext>`), the
commit subject (`First record of …`), the body (document ID, snapshot references)
and the trailers (`X-fetcher: htmlOnly`). Reference: ota-behaviour.md §2.5.2-2.5.3.

Service and terms type are always read from the file path, never from the subject:
ids contain spaces, so a subject cannot be split back reliably.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from enum import Enum

DOCUMENT_ID_SEPARATOR = " #"
SNAPSHOT_ID_MARKER = "%SNAPSHOT_ID"
DEFAULT_SNAPSHOT_ID_TEMPLATE = "./data/snapshots/%SNAPSHOT_ID"

SINGLE_SNAPSHOT_PREFIX = "This version was recorded after extracting from snapshot"
MULTIPLE_SNAPSHOTS_PREFIX = (
    "This version was recorded after extracting from and assembling the following snapshots "
    "from {count} source documents:"
)
DOCUMENT_ID_PREFIX = "Document ID"


class RecordKind(Enum):
    """What a record commit is, as told by its subject prefix."""

    FIRST_RECORD = "First record of"
    CHANGE = "Record new changes of"
    TECHNICAL_UPGRADE = "Apply technical or declaration upgrade on"


# Prefixes written by older OTA engines; still recognised when reading.
LEGACY_PREFIXES = {
    "Start tracking": RecordKind.FIRST_RECORD,
    "Update": RecordKind.CHANGE,
    "Refilter": RecordKind.TECHNICAL_UPGRADE,
}
_ALL_PREFIXES = {kind.value: kind for kind in RecordKind} | LEGACY_PREFIXES

_TRAILER_KEY = re.compile(r"^[A-Za-z0-9]+(?:-[A-Za-z0-9]+)*:$")
# OTA's `\b[0-9a-f]{5,40}\b`; ASCII so that `\b` means what it means in JavaScript.
_SNAPSHOT_ID = re.compile(r"\b[0-9a-f]{5,40}\b", re.ASCII)


# --- subjects -------------------------------------------------------------------------------

def kind_of(is_first_record: bool, is_technical_upgrade: bool) -> RecordKind:
    """The subject kind of a new record: a first record wins over a technical upgrade."""
    if is_first_record:
        return RecordKind.FIRST_RECORD
    if is_technical_upgrade:
        return RecordKind.TECHNICAL_UPGRADE
    return RecordKind.CHANGE


def format_subject(kind: RecordKind, service_id: str, terms_type: str) -> str:
    """`Record new changes of GitHub Privacy Policy`."""
    return f"{kind.value} {service_id} {terms_type}"


def parse_subject(subject: str) -> RecordKind | None:
    """The kind of a record commit from its subject, or None for other commits (README…).

    A prefix must be followed by a space, so `Updated README` is not a legacy `Update`.
    """
    for prefix, kind in _ALL_PREFIXES.items():
        if subject.startswith(prefix + " "):
            return kind
    return None


# --- bodies ---------------------------------------------------------------------------------

def format_snapshot_body(document_id: str | None) -> str:
    """`Document ID <id>` for a document of combined terms, else nothing."""
    return f"{DOCUMENT_ID_PREFIX} {document_id}" if document_id else ""


def format_version_body(snapshot_ids: Iterable[str], template: str = DEFAULT_SNAPSHOT_ID_TEMPLATE) -> str:
    """The sentence linking a version to the snapshot(s) it was extracted from.

    `template` is OTA's `snapshotIdentiferTemplate`; its `%SNAPSHOT_ID` is replaced by each id.
    """
    ids = list(snapshot_ids)
    references = [template.replace(SNAPSHOT_ID_MARKER, snapshot_id) for snapshot_id in ids]
    if not references:
        return ""
    if len(references) == 1:
        return f"{SINGLE_SNAPSHOT_PREFIX} {references[0]}"
    lines = [MULTIPLE_SNAPSHOTS_PREFIX.format(count=len(references))]
    lines += [f"- {reference}" for reference in references]
    return "\n".join(lines)


def snapshot_ids_in(body: str) -> list[str]:
    """Every 5-40 character lower-case hex word of a version body, as OTA reads snapshot ids."""
    return _SNAPSHOT_ID.findall(body)


# --- trailers -------------------------------------------------------------------------------

def trailer_key(key: str) -> str:
    """`x-source-document-location` -> `X-source-document-location` (OTA's spelling)."""
    return key[:1].upper() + key[1:].lower()


def format_trailers(metadata: Mapping[str, str]) -> str:
    """One `Key: value` line per entry, empty values skipped.

    Raises ValueError for a key or value that could not be parsed back.
    """
    lines = []
    for key, value in metadata.items():
        value = "" if value is None else str(value)
        if value == "":
            continue
        if not _TRAILER_KEY.match(f"{key}:"):
            raise ValueError(f"metadata key {key!r}: must be words of letters and digits joined by '-'")
        if "\n" in value or "\r" in value or value != value.strip():
            raise ValueError(f"metadata {key!r}: value must be one line without surrounding spaces")
        lines.append(f"{trailer_key(key)}: {value}")
    return "\n".join(lines)


def parse_trailers(message: str) -> dict[str, str]:
    """Trailers of a commit message, keys lower-cased (OTA's `parseTrailers`).

    Only the last paragraph counts, and only if it holds a `:`. A line counts when its key
    matches `^[A-Za-z0-9]+(-[A-Za-z0-9]+)*:$` and its value is not empty; values may
    contain colons. Trailing whitespace of the message is ignored first, as OTA's git
    client hands over trimmed bodies.
    """
    paragraphs = re.split(r"\n\n+", message.rstrip())
    last = paragraphs[-1]
    if ":" not in last:
        return {}
    trailers = {}
    for line in last.split("\n"):
        line = line.strip()
        colon = line.find(":")
        if colon == -1:
            continue
        key, value = line[: colon + 1], line[colon + 1 :].strip()
        if value and _TRAILER_KEY.match(key):
            trailers[key[:-1].lower()] = value
    return trailers


# --- whole messages -------------------------------------------------------------------------

def format_message(subject: str, body: str, trailers: str) -> str:
    """Subject, body and trailers as paragraphs, as git's message cleanup would leave them."""
    return "\n\n".join(part for part in (subject, body, trailers) if part) + "\n"


def split_message(message: str) -> tuple[str, str]:
    """(subject, body): the first line, and everything after the blank line."""
    subject, _newline, rest = message.partition("\n")
    return subject.strip(), rest.strip("\n")


# --- file paths -----------------------------------------------------------------------------

def _check_segment(value: str, field: str, *, allow_separator: bool) -> None:
    """Reject what cannot be a path segment of an OTA repository, naming the field."""
    if not value:
        raise ValueError(f"{field}: must not be empty")
    if "/" in value:
        raise ValueError(f"{field} {value!r}: must not contain '/'")
    if any(char in value for char in "\0\n\r"):
        raise ValueError(f"{field} {value!r}: must not contain NUL or line breaks")
    if value.startswith("."):
        raise ValueError(f"{field} {value!r}: must not start with '.'")
    if not allow_separator and DOCUMENT_ID_SEPARATOR in value:
        raise ValueError(f"{field} {value!r}: must not contain ' #' (it separates the document id)")


def record_path(service_id: str, terms_type: str, document_id: str | None, extension: str) -> str:
    """`<service>/<terms type>[ #<document id>].<ext>`, always with `/`.

    An empty document id is like none (OTA treats it as falsy). Raises ValueError naming
    the field for ids that would not read back to the same values.
    """
    _check_segment(service_id, "service id", allow_separator=True)
    _check_segment(terms_type, "terms type", allow_separator=False)
    if document_id and any(char in document_id for char in "/\0\n\r"):
        raise ValueError(f"document id {document_id!r}: must not contain '/', NUL or line breaks")
    if not extension or not extension.isalnum():
        raise ValueError(f"extension {extension!r}: must be letters and digits")
    suffix = f"{DOCUMENT_ID_SEPARATOR}{document_id}" if document_id else ""
    return f"{service_id}/{terms_type}{suffix}.{extension}"


def parse_record_path(path: str) -> tuple[str, str, str | None, str] | None:
    """(service id, terms type, document id or None, extension), or None for other files.

    Only `<dir>/<name>.<ext>` files count; README, LICENSE and `.github/…` do not.
    """
    service_id, slash, file_name = path.partition("/")
    if not slash or "/" in file_name or not service_id or service_id.startswith("."):
        return None
    stem, dot, extension = file_name.rpartition(".")
    if not dot or not stem or not extension:
        return None
    terms_type, separator, document_id = stem.partition(DOCUMENT_ID_SEPARATOR)
    if not terms_type:
        return None
    return service_id, terms_type, (document_id if separator and document_id else None), extension
