"""PDF snapshots to text (reference §2.4, PDF path; §4.3 X24–X26).

The fixtures are made by tests/fixtures/pdf/make_pdfs.py, object by object.
"""

from __future__ import annotations

import resource
import zlib
from pathlib import Path

import pytest

from termshift.errors import ExtractError
from termshift.trackers.pdf import pdf_to_text
from tests.fixtures.pdf.make_pdfs import pdf_document

FIXTURES = Path(__file__).parent / "fixtures" / "pdf"
LOCATION = "https://example.com/terms.pdf"


def test_each_text_line_is_a_paragraph_in_reading_order_across_pages():
    text = pdf_to_text((FIXTURES / "terms.pdf").read_bytes(), LOCATION)
    assert text.split("\n\n") == [
        "TestCompany Developer Agreement",
        "1\\. Relationship With TestCompany. Et pulvinar integer platea sociosqu.",
        "2\\. Developer Benefits. Sit hac turpis dictumst placerat malesuada.",
        "3\\. Restrictions. Ut potenti elementum nostra aptent porttitor.",
        "Last updated: 1 March 2024 \u2014 \u00e9t\u00e9",
    ]


def test_output_is_trimmed_without_empty_paragraphs():
    text = pdf_to_text((FIXTURES / "terms.pdf").read_bytes(), LOCATION)
    assert text == text.strip()
    assert "\n\n\n" not in text
    assert all(paragraph.strip() == paragraph and paragraph for paragraph in text.split("\n\n"))


def test_pdf_without_a_text_layer():
    with pytest.raises(ExtractError) as error:
        pdf_to_text((FIXTURES / "terms-without-text.pdf").read_bytes(), LOCATION)
    assert str(error.value) == (
        f"The PDF file at '{LOCATION}' contains no text, it might contain scanned images of text "
        "instead of actual text"
    )


@pytest.mark.parametrize(
    "data",
    [
        b"<html><body>Not a PDF</body></html>",
        b"",
        b"%PDF-1.4\n1 0 obj\n<< /Type /Catalog",  # cut short
    ],
)
def test_unparsable_pdf(data):
    with pytest.raises(ExtractError) as error:
        pdf_to_text(data, LOCATION)
    assert str(error.value) == "Can't parse PDF file"
    assert error.value.__cause__ is not None  # the parser's own error is kept for logs


def test_a_pdf_with_a_broken_cross_reference_table_is_still_read():
    # Real-world PDFs often have wrong xref offsets; the parser rebuilds the table.
    data = (FIXTURES / "terms.pdf").read_bytes()
    broken = data.replace(b"startxref\n", b"startxref\n1").replace(b"0000000", b"0000001", 3)
    assert pdf_to_text(broken, LOCATION).startswith("TestCompany Developer Agreement")


# -- hostile PDFs: extraction under a memory and a time limit ----------------------------------------


def flate_bomb_pdf(inflated_bytes: int) -> bytes:
    """A one-page PDF whose content stream is `inflated_bytes` of blanks, Flate-compressed ~1000×."""
    compressor = zlib.compressobj(9)
    chunk = b" " * (1 << 20)
    stream = b"".join(compressor.compress(chunk) for _ in range(inflated_bytes >> 20)) + compressor.flush()
    text = b"BT /F1 12 Tf 72 712 Td (Bomb) Tj ET"
    objects = [
        b"<< /Type /Catalog /Pages 2 0 R >>",
        b"<< /Type /Pages /Kids [3 0 R] /Count 1 >>",
        b"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 612 792] /Contents [4 0 R 6 0 R] "
        b"/Resources << /Font << /F1 5 0 R >> >> >>",
        b"<< /Length %d /Filter /FlateDecode >>\nstream\n" % len(stream) + stream + b"\nendstream",
        b"<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica >>",
        b"<< /Length %d >>\nstream\n" % len(text) + text + b"\nendstream",
    ]
    return pdf_document(objects)


def test_a_decompression_bomb_fails_its_document_under_the_memory_limit():
    bomb = flate_bomb_pdf(256 * 1024 * 1024)  # 256 KiB that inflate to 256 MiB (the same ratio as 20 MiB → 20 GiB)
    assert len(bomb) < 512 * 1024
    peak_before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    with pytest.raises(ExtractError) as error:
        pdf_to_text(bomb, LOCATION, memory_limit=64 * 1024 * 1024, time_limit=60)
    assert str(error.value) == (
        f"The PDF file at '{LOCATION}' needs more than 64 MiB of memory to extract (a decompression bomb?)"
    )
    # This process never held the inflated stream (its peak did not grow by 256 MiB).
    assert (resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - peak_before) * 1024 < 64 * 1024 * 1024


def test_a_pdf_that_takes_too_long_fails_its_document():
    slow = flate_bomb_pdf(64 * 1024 * 1024)  # fits in memory, but takes pdfminer seconds to read
    with pytest.raises(ExtractError) as error:
        pdf_to_text(slow, LOCATION, time_limit=0.5)
    assert str(error.value) == f"The PDF file at '{LOCATION}' takes more than 0.5 seconds to extract"


def test_extraction_in_a_child_gives_the_same_text_as_in_process():
    from termshift.trackers.pdf import _text_lines

    data = (FIXTURES / "terms.pdf").read_bytes()
    assert pdf_to_text(data, LOCATION) == "\n\n".join(_text_lines(data))
