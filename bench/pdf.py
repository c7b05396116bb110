"""Cost of extracting PDFs under limits (a forked child with RLIMIT_AS and a time limit).

For each PDF — the test fixture, and generated text PDFs of 1, 20 and 200 pages —
it extracts the text `--runs` times in-process (pdfminer directly, as before the
limits) and through `pdf_to_text` (the limited child), checks that both give the
same text, and prints the median time of each and the difference.

Usage: python bench/pdf.py [--runs 5] [--pdf FILE ...]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from termshift.trackers.pdf import _text_lines, pdf_to_text  # noqa: E402
from tests.fixtures.pdf.make_pdfs import pdf_document  # noqa: E402

FIXTURE = ROOT / "tests" / "fixtures" / "pdf" / "terms.pdf"


def text_pdf(pages: int, lines_per_page: int = 40) -> bytes:
    """A PDF of `pages` pages, each with `lines_per_page` lines of text (Helvetica)."""
    objects = [b"<< /Type /Catalog /Pages 2 0 R >>", b""]  # the page tree is filled in below
    kids = []
    font = 3
    objects.append(b"<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica >>")
    for page in range(pages):
        lines = b"".join(
            b"BT /F1 11 Tf 56 %d Td (Section %d.%d. The provider may change these terms at any time.) Tj ET\n"
            % (780 - 18 * line, page + 1, line + 1)
            for line in range(lines_per_page)
        )
        objects.append(b"<< /Length %d >>\nstream\n" % len(lines) + lines + b"\nendstream")
        content = len(objects)
        objects.append(b"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 612 792] /Contents %d 0 R "
                       b"/Resources << /Font << /F1 %d 0 R >> >> >>" % (content, font))
        kids.append(len(objects))
    objects[1] = b"<< /Type /Pages /Kids [%s] /Count %d >>" % (b" ".join(b"%d 0 R" % kid for kid in kids), pages)
    return pdf_document(objects)


def median_seconds(function, runs: int) -> tuple[float, object]:
    times, result = [], None
    for _ in range(runs):
        started = time.perf_counter()
        result = function()
        times.append(time.perf_counter() - started)
    return statistics.median(times), result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--pdf", type=Path, nargs="*", default=[])
    arguments = parser.parse_args()
    inputs = [(FIXTURE.name, FIXTURE.read_bytes())] if FIXTURE.is_file() else []
    inputs += [(f"{pages} page(s)", text_pdf(pages)) for pages in (1, 20, 200)]
    inputs += [(path.name, path.read_bytes()) for path in arguments.pdf]
    print(f"{'PDF':<16} {'bytes':>9} {'in-process ms':>14} {'limited ms':>11} {'overhead ms':>12}  same text")
    for name, data in inputs:
        direct, lines = median_seconds(lambda data=data: "\n\n".join(_text_lines(data)), arguments.runs)
        limited, text = median_seconds(lambda data=data, name=name: pdf_to_text(data, name), arguments.runs)
        print(f"{name:<16} {len(data):>9} {direct * 1000:>14.1f} {limited * 1000:>11.1f} "
              f"{(limited - direct) * 1000:>12.1f}  {'yes' if text == lines else 'NO'}")


if __name__ == "__main__":
    main()
