"""Text of a PDF snapshot, as the Markdown of its version (reference §2.4, PDF path).

OTA converts PDFs with a pdf.js-based toolchain that makes each text line a paragraph.
Byte-identical output is out of reach in Python; this keeps the same shape: one paragraph
per text line, in reading order, separated by blank lines, with a line that starts like an
ordered-list item (`1. `) escaped (`1\\. `) as OTA's Markdown serialiser does, so it stays
text rather than becoming a list.
"""

from __future__ import annotations

import io
import logging
import re

from pdfminer.high_level import extract_pages
from pdfminer.layout import LAParams, LTTextContainer, LTTextLine

from termshift.trackers.errors import ExtractError

__all__ = ["pdf_to_text"]

_WHITESPACE = re.compile(r"\s+")
_ORDERED_LIST_START = re.compile(r"^(\d+)\.(?=\s|$)")

# pdfminer logs every recoverable oddity of real-world PDFs at WARNING level.
logging.getLogger("pdfminer").setLevel(logging.ERROR)


def pdf_to_text(data: bytes, location: str) -> str:
    """The text lines of the PDF `data` (fetched from `location`) as blank-line-separated paragraphs.

    Raises ExtractError("Can't parse PDF file") when the file cannot be read, and OTA's
    "contains no text" error when it has no text layer (e.g. scanned pages).
    """
    try:
        lines = list(_text_lines(data))
    except Exception as error:  # noqa: BLE001 — any failure of the parser on untrusted bytes
        raise ExtractError("Can't parse PDF file") from error
    if not lines:
        raise ExtractError(
            f"The PDF file at '{location}' contains no text, it might contain scanned images "
            "of text instead of actual text"
        )
    return "\n\n".join(lines)


def _text_lines(data: bytes):
    """Each non-blank text line of each page, in pdfminer's reading order."""
    for page in extract_pages(io.BytesIO(data), laparams=LAParams()):
        for element in page:
            if isinstance(element, LTTextContainer):
                yield from _lines_of(element)


def _lines_of(container: LTTextContainer):
    lines = [container] if isinstance(container, LTTextLine) else container
    for line in lines:
        text = _WHITESPACE.sub(" ", line.get_text()).strip()
        if text:
            yield _ORDERED_LIST_START.sub(r"\1\\.", text)
