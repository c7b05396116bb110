"""PDF snapshots to text (reference §2.4, PDF path; §4.3 X24–X26).

The fixtures are made by tests/fixtures/pdf/make_pdfs.py, object by object.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from termshift.trackers.errors import ExtractError
from termshift.trackers.pdf import pdf_to_text

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
