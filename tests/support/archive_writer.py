"""Helper process for tests/test_archive_crash.py: record records until killed.

    python -m tests.support.archive_writer DATA_DIR FIRST_SEQUENCE

Opens the archive in DATA_DIR (which recovers from the previous, killed, writer), prints
`ready`, then records a snapshot and a version per sequence number, forever. After each
record is committed it prints `<repo> <sequence> <commit id>` and flushes, so every line
the test reads names a commit that must survive the kill.

Every content is a function of its sequence number (`expected_content`), carried in an
`x-sequence` trailer, so the test can check each record read back byte for byte.
"""

from __future__ import annotations

import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path

from termshift.archive_repo import Archive, Snapshot, Version

SERVICES = ("service·A", "Service B!", "Third")
START = datetime(2024, 1, 1, tzinfo=UTC)


def document_of(sequence: int) -> tuple[str, str, str | None, str]:
    """(service id, terms type, document id, MIME type) of the snapshot number `sequence`."""
    service = SERVICES[sequence % len(SERVICES)]
    document_id = "tos" if sequence % 2 else None
    mime_type = "application/pdf" if sequence % 5 == 0 else "text/html"
    return service, "Terms of Service", document_id, mime_type


def expected_content(kind: str, sequence: int) -> str | bytes:
    """The content recorded for `sequence`: ~20 KB, different for every sequence."""
    _service, _type, _document_id, mime_type = document_of(sequence)
    lines = "".join(f"<p>clause {n} of record {sequence}</p>\n" for n in range(600))
    if kind == "versions":
        return f"# Terms {sequence}\n\n" + lines.replace("<p>", "").replace("</p>", "")
    if mime_type == "application/pdf":
        return b"%PDF-1.4\n\x00\xff\xfe" + lines.encode() + bytes(range(256))
    return f"<html><body>{lines}</body></html>"


def record_forever(data_dir: Path, first: int) -> None:
    archive = Archive.open(data_dir)
    print("ready", flush=True)
    sequence = first
    while True:
        service, terms_type, document_id, mime_type = document_of(sequence)
        date = START + timedelta(minutes=sequence)
        metadata = {"x-sequence": str(sequence), "x-fetcher": "htmlOnly"}
        snapshot = archive.snapshots.record(
            Snapshot(service, terms_type, date, expected_content("snapshots", sequence), mime_type=mime_type,
                     document_id=document_id, metadata=metadata)
        )
        print(f"snapshots {sequence} {snapshot.id}", flush=True)
        version = archive.versions.record(
            Version(service, terms_type, date, expected_content("versions", sequence),
                    snapshot_ids=[snapshot.id], metadata={"x-sequence": str(sequence)})
        )
        print(f"versions {sequence} {version.id}", flush=True)
        sequence += 1


if __name__ == "__main__":
    record_forever(Path(sys.argv[1]), int(sys.argv[2]))
