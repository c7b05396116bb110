"""MIME type <-> file extension, as OTA's `mime` package maps them for record files.

The extension of a record file is the only place the MIME type survives in the
git layout (`GitHub/Privacy Policy.html`), so the mapping must be stable across
machines: we use an explicit table for the types OTA archives, then Python's
built-in table (never the host's /etc/mime.types, which varies).
"""

from __future__ import annotations

import mimetypes

MARKDOWN = "text/markdown"

_EXTENSIONS = {
    "text/html": "html",
    "application/pdf": "pdf",
    "text/plain": "txt",
    "application/xhtml+xml": "xhtml",
    "text/markdown": "md",
    "application/xml": "xml",
    "text/xml": "xml",
    "application/json": "json",
    "text/csv": "csv",
}
_MIME_TYPES = {
    "html": "text/html",
    "htm": "text/html",
    "pdf": "application/pdf",
    "txt": "text/plain",
    "xhtml": "application/xhtml+xml",
    "md": MARKDOWN,
    "xml": "application/xml",
    "json": "application/json",
    "csv": "text/csv",
}
# Built-in defaults only: `MimeTypes()` does not read the host's files.
_BUILTIN = mimetypes.MimeTypes()

# Types whose content is handled as text (str, stored as UTF-8); everything else is bytes.
_TEXT_SUFFIXES = ("+xml", "+json")
_TEXT_TYPES = {"application/xml", "application/json", "application/javascript"}


def essence(mime_type: str) -> str:
    """`text/html; charset=utf-8` -> `text/html` (the parameters never reach the file name)."""
    return mime_type.split(";", 1)[0].strip().lower()


def extension_for(mime_type: str) -> str:
    """File extension (without dot) for a MIME type; ValueError when none is known."""
    base = essence(mime_type)
    if base in _EXTENSIONS:
        return _EXTENSIONS[base]
    guessed = _BUILTIN.guess_extension(base)
    if not guessed:
        raise ValueError(f"no file extension is known for MIME type {mime_type!r}")
    return guessed.lstrip(".")


def mime_type_for(extension: str) -> str:
    """MIME type for a file extension; `application/octet-stream` when unknown."""
    ext = extension.lower().lstrip(".")
    if ext in _MIME_TYPES:
        return _MIME_TYPES[ext]
    guessed, _encoding = _BUILTIN.guess_type(f"file.{ext}", strict=False)
    return guessed or "application/octet-stream"


def is_text(mime_type: str) -> bool:
    """True when records of this type hold text (str) rather than bytes (PDF, images...)."""
    base = essence(mime_type)
    return base.startswith("text/") or base in _TEXT_TYPES or base.endswith(_TEXT_SUFFIXES)
