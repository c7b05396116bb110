"""The dataset export (`termshift dataset`): the versions as a ZIP release, in Open Terms Archive's layout (§3.8).

    <name>.zip
    └── <name>/
        ├── README.md          counts, first and last dates, layout, licence
        ├── LICENSE            ODbL 1.0 notice
        ├── versions.csv       one row per version, for analysts (Termshift's addition)
        └── <service>/<terms type>/<YYYY-MM-DDTHH-MM-SSZ>.md   one file per version commit

`<name>` is `--file` (without `.zip`), else `<dataset.title, lower-cased, characters
outside [a-zA-Z0-9.-_] turned into "-">-<YYYY-MM-DD>` as OTA. Every version commit is
exported, oldest first, technical upgrades included, content as stored. Two commits of
one document dated the same second (a technical upgrade re-extracts a snapshot and
keeps its date) would need the same file name: the later one is kept in the ZIP, as
unzipping OTA's archive would keep it; both are rows of versions.csv.

The LICENSE file names the ODbL 1.0 and links to its full text: the full text could not
be bundled (this project is built without internet access), so the notice points to the
authoritative copy at opendatacommons.org.
"""

from __future__ import annotations

import csv
import io
import logging
import os
import re
import zipfile
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from termshift.config import Settings
from termshift.errors import TermshiftError
from termshift.textdiff import count_changes

log = logging.getLogger(__name__)

ODBL_URL = "https://opendatacommons.org/licenses/odbl/1-0/"
CSV_COLUMNS = ("service", "terms_type", "date", "version_id", "snapshot_ids", "words_added", "words_removed",
               "is_first_record", "is_technical_upgrade")
FILE_DATE_FORMAT = "%Y-%m-%dT%H-%M-%SZ"

LICENSE_TEXT = f"""\
This dataset is made available under the Open Database License (ODbL) v1.0.

    Open Database License (ODbL) v1.0
    {ODBL_URL}
    Full text: {ODBL_URL}  (also https://opendatacommons.org/licenses/odbl/1-0/index.html)

Any rights in individual contents of the database are licensed under the Database
Contents License: https://opendatacommons.org/licenses/dbcl/1-0/

In short (this summary is not the licence; the full text at the address above is):
you are free to share, create and adapt this database, as long as you
- attribute: credit the dataset as the licence requires, and keep this notice with
  any copy or adapted database;
- share alike: distribute an adapted database only under the ODbL;
- keep it open: if you redistribute the database, or an adapted version of it, with
  technical restrictions, also make a version without them available.

Note: this file carries the licence's name, address and summary; the complete legal
text is published at the address above and applies in full.
"""


class DatasetError(TermshiftError, RuntimeError):
    """The dataset cannot be exported; the message says why."""


@dataclass
class DatasetSummary:
    """What an export contains."""

    path: Path
    versions: int = 0
    files: int = 0  # fewer than versions when two commits share a document and a second
    services: set[str] = field(default_factory=set)
    documents: set[tuple[str, str]] = field(default_factory=set)
    first: datetime | None = None
    last: datetime | None = None

    def as_dict(self) -> dict[str, Any]:
        return {"path": str(self.path), "versions": self.versions, "files": self.files,
                "services": len(self.services), "documents": len(self.documents),
                "first": _iso(self.first), "last": _iso(self.last)}


def _iso(moment: datetime | None) -> str | None:
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ") if moment else None


def archive_basename(title: str, release_date: datetime) -> str:
    """OTA's name: the title lower-cased, other characters than [a-zA-Z0-9.-_] as "-", and the date."""
    slug = re.sub(r"[^a-zA-Z0-9._-]", "-", title.lower())
    return f"{slug}-{release_date.astimezone(UTC):%Y-%m-%d}"


@dataclass
class _Row:
    version: Any
    name: str
    words_added: int
    words_removed: int


def _indexed_word_counts(data_dir: Path) -> dict[str, tuple[int, int]]:
    """(words added, words removed) per version commit, from the viewer's index (brought up
    to date first: it is incremental, and after a run it already is). Empty when the
    index cannot be had (no viewer, read-only folder): counts are then computed here."""
    try:
        from termshift.web.index import refresh_index, word_counts

        refresh_index(data_dir)
        return word_counts(data_dir)
    except Exception as error:  # noqa: BLE001 - the export does not need the index, only its figures
        log.info("viewer index unavailable (%s): counting words for versions.csv", error)
        return {}


def _versions(data_dir: Path) -> Iterator[_Row]:
    """Every version, oldest first, with its file name and word counts against the previous one."""
    from termshift.archive_repo import Archive

    if not (data_dir / "versions").is_dir():
        raise DatasetError(f"{data_dir / 'versions'}: no versions repository (run `termshift track` first)")
    indexed = _indexed_word_counts(data_dir)
    previous: dict[tuple[str, str], str] = {}
    archive = Archive.open(data_dir, read_only=True)
    try:
        for version in archive.versions.iterate():
            key = (version.service_id, version.terms_type)
            content = version.content if isinstance(version.content, str) else version.content.decode("utf-8")
            if version.id in indexed:
                added, removed = indexed[version.id]
            else:
                added, removed = count_changes(previous.get(key, ""), content)
            previous[key] = content
            name = f"{version.service_id}/{version.terms_type}/{version.fetch_date_utc.strftime(FILE_DATE_FORMAT)}.md"
            yield _Row(version, name, added, removed)
    finally:
        archive.close()


# What a spreadsheet reads as the start of a formula (OWASP's "CSV injection").
FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")


def spreadsheet_safe(text: str) -> str:
    """`text` for a CSV cell: prefixed with `'` when a spreadsheet would run it as a formula
    (a service id `=HYPERLINK(…)` must stay text in Excel or LibreOffice)."""
    return "'" + text if text.startswith(FORMULA_STARTS) else text


def export_dataset(
    data_dir: Path, output: Path, *, title: str = "Termshift", versions_repository_url: str = "",
    release_date: datetime | None = None,
) -> DatasetSummary:
    """Write the dataset ZIP to `output` (atomically: a reader never sees half a file)."""
    data_dir, output = Path(data_dir), Path(output)
    if output.suffix != ".zip":
        output = output.with_name(output.name + ".zip")
    release_date = release_date or datetime.now(UTC)
    base = output.stem
    summary = DatasetSummary(path=output)
    table = io.StringIO()
    writer = csv.writer(table, lineterminator="\n")
    writer.writerow(CSV_COLUMNS)
    output.parent.mkdir(parents=True, exist_ok=True)
    partial = output.with_name(f".{output.name}.partial")
    # The file of each document's latest version waits here until the next version of that
    # document shows up: only then do we know no later commit takes the same name (see the
    # module docstring). Memory: one text per document, not the whole history.
    waiting: dict[tuple[str, str], tuple[str, str]] = {}
    try:
        with zipfile.ZipFile(partial, "w", compression=zipfile.ZIP_DEFLATED, compresslevel=9) as archive:
            for row in _versions(data_dir):
                version = row.version
                key = (version.service_id, version.terms_type)
                if key in waiting and waiting[key][0] != row.name:
                    archive.writestr(f"{base}/{waiting[key][0]}", waiting[key][1])
                    summary.files += 1
                waiting[key] = (row.name, version.content)
                writer.writerow([spreadsheet_safe(version.service_id), spreadsheet_safe(version.terms_type),
                                 _iso(version.fetch_date), version.id,
                                 " ".join(version.snapshot_ids), row.words_added, row.words_removed,
                                 int(bool(version.is_first_record)), int(bool(version.is_technical_upgrade))])
                summary.versions += 1
                summary.services.add(version.service_id)
                summary.documents.add(key)
                summary.first = min(summary.first or version.fetch_date, version.fetch_date)
                summary.last = max(summary.last or version.fetch_date, version.fetch_date)
            for name, content in waiting.values():
                archive.writestr(f"{base}/{name}", content)
                summary.files += 1
            archive.writestr(f"{base}/README.md", readme(title, summary, release_date, versions_repository_url))
            archive.writestr(f"{base}/LICENSE", LICENSE_TEXT)
            archive.writestr(f"{base}/versions.csv", table.getvalue())
    except BaseException:
        partial.unlink(missing_ok=True)
        raise
    os.replace(partial, output)
    log.info("dataset %s: %d versions of %d terms from %d services", output, summary.versions,
             len(summary.documents), len(summary.services))
    return summary


def readme(title: str, summary: DatasetSummary, release_date: datetime, versions_repository_url: str = "") -> str:
    """The README.md at the top of the dataset."""
    day = release_date.astimezone(UTC)
    lines = [
        f"# {title} — {day:%B} {day.day}, {day.year}",
        "",
        f"This dataset holds {summary.versions} versions of {len(summary.documents)} terms documents "
        f"from {len(summary.services)} service providers, recorded from "
        f"{_human_date(summary.first)} to {_human_date(summary.last)}.",
        "",
    ]
    if versions_repository_url:
        lines += [f"It is an export of the versions repository {versions_repository_url}, which holds the "
                  "full history with links to the snapshots each version was extracted from.", ""]
    lines += [
        "## Layout",
        "",
        "- `<service>/<terms type>/<YYYY-MM-DDTHH-MM-SSZ>.md`: one Markdown file per recorded version, "
        "named after the date the page was fetched (UTC). Technical upgrades (a version re-extracted "
        "after the declaration or the engine changed, not a change of the terms) are included.",
        "- `versions.csv`: one row per version, oldest first: " + ", ".join(f"`{c}`" for c in CSV_COLUMNS) + ". "
        "`snapshot_ids` are space-separated; word counts compare with the previous version of the same "
        "terms (a first record counts all its words as added). A text cell that a spreadsheet would "
        "read as a formula (starting with `=`, `+`, `-`, `@`, a tab or a carriage return) is prefixed "
        "with `'`.",
        "",
        "## Licence",
        "",
        f"This dataset is made available under the Open Database License (ODbL) v1.0: {ODBL_URL} "
        "(see `LICENSE`).",
        "",
    ]
    return "\n".join(lines)


def _human_date(moment: datetime | None) -> str:
    if moment is None:
        return "(none)"
    moment = moment.astimezone(UTC)
    return f"{moment:%B} {moment.day}, {moment.year}"


def scheduled_export(settings: Settings) -> dict[str, Any]:
    """The weekly export of the scheduler: into `dataset.directory`, keeping `dataset.keep` files."""
    section = settings.dataset
    directory = Path(section.directory) if section.directory else settings.data / "datasets"
    name = archive_basename(section.title, datetime.now(UTC))
    summary = export_dataset(settings.data, directory / f"{name}.zip", title=section.title,
                             versions_repository_url=section.versions_repository_url)
    if section.keep:
        prefix = archive_basename(section.title, datetime.now(UTC))[: -len("YYYY-MM-DD")]
        exports = sorted(path for path in directory.glob(f"{prefix}*.zip") if path.is_file())
        for old in exports[: -section.keep]:
            old.unlink()
            log.info("dataset %s deleted (dataset.keep = %d)", old, section.keep)
    return summary.as_dict()
