"""Build small OTA-format archives (versions and snapshots repositories) for tests.

Plain `git` commands, one commit per record, exactly as OTA lays them out
(ota-behaviour.md §2.5): files at `<service>/<terms type>[ #<document id>].<ext>`,
subjects `First record of` / `Record new changes of` / `Apply technical or declaration
upgrade on`, a version body naming its snapshot(s), `X-…` trailers, and author and
committer dates both set to the fetch date. It does not use termshift.archive_repo, so
the viewer is tested against archives written independently of the code that reads them.
"""

from __future__ import annotations

import os
import subprocess
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

SNAPSHOT_TEMPLATE = "https://github.com/OpenTermsArchive/demo-snapshots/commit/%SNAPSHOT_ID"
ENGINE = "15.1.0"


def _git(repo: Path, *arguments: str, env: dict | None = None) -> str:
    result = subprocess.run(
        ["git", *arguments], cwd=repo, capture_output=True, text=True, check=True,
        env={**os.environ, "LC_ALL": "C", **(env or {})},
    )
    return result.stdout.strip()


def _init(repo: Path) -> None:
    repo.mkdir(parents=True, exist_ok=True)
    _git(repo, "init", "-q", "-b", "main")
    for key, value in (("core.quotePath", "false"), ("core.autocrlf", "false"),
                       ("user.name", "Open Terms Archive Bot"), ("user.email", "bot@opentermsarchive.org"),
                       ("commit.gpgsign", "false")):
        _git(repo, "config", key, value)


def when(text: str) -> datetime:
    """`2024-03-18T18:30:09Z` → an aware datetime."""
    return datetime.fromisoformat(text.replace("Z", "+00:00")).astimezone(UTC)


@dataclass
class ArchiveFactory:
    """A data folder with `versions/` and `snapshots/` repositories, filled record by record."""

    root: Path
    template: str = SNAPSHOT_TEMPLATE
    recorded: set[str] = field(default_factory=set)

    def __post_init__(self) -> None:
        self.versions = self.root / "versions"
        self.snapshots = self.root / "snapshots"
        _init(self.versions)
        _init(self.snapshots)

    def _commit(self, repo: Path, path: str, content: str | bytes, date: str, message: str) -> str:
        file = repo / path
        file.parent.mkdir(parents=True, exist_ok=True)
        if isinstance(content, bytes):
            file.write_bytes(content)
        else:
            file.write_text(content, encoding="utf-8")
        stamp = when(date).strftime("%Y-%m-%dT%H:%M:%S+0000")
        _git(repo, "add", "--", path)
        _git(repo, "commit", "-q", "--no-verify", "--allow-empty-message", "-m", message, "--", path,
             env={"GIT_AUTHOR_DATE": stamp, "GIT_COMMITTER_DATE": stamp})
        return _git(repo, "rev-parse", "HEAD")

    @staticmethod
    def _prefix(first: bool, technical: bool) -> str:
        if first:
            return "First record of"
        return "Apply technical or declaration upgrade on" if technical else "Record new changes of"

    def snapshot(self, service_id: str, terms_type: str, date: str, content: str | bytes, *,
                 document_id: str | None = None, extension: str = "html",
                 location: str = "https://example.com/terms", fetcher: str = "htmlOnly") -> str:
        """Record a snapshot; returns its commit id."""
        suffix = f" #{document_id}" if document_id else ""
        path = f"{service_id}/{terms_type}{suffix}.{extension}"
        first = path not in self.recorded
        self.recorded.add(path)
        body = f"Document ID {document_id}\n\n" if document_id else ""
        message = (f"{self._prefix(first, False)} {service_id} {terms_type}\n\n{body}"
                   f"X-engine-version: {ENGINE}\nX-fetcher: {fetcher}\nX-source-document-location: {location}\n")
        return self._commit(self.snapshots, path, content, date, message)

    def version(self, service_id: str, terms_type: str, date: str, content: str, *,
                snapshot_ids: list[str] | None = None, technical: bool = False) -> str:
        """Record a version extracted from `snapshot_ids`; returns its commit id."""
        path = f"{service_id}/{terms_type}.md"
        first = path not in self.recorded
        self.recorded.add(path)
        references = [self.template.replace("%SNAPSHOT_ID", sid) for sid in snapshot_ids or []]
        if len(references) == 1:
            body = f"This version was recorded after extracting from snapshot {references[0]}\n\n"
        elif references:
            body = (f"This version was recorded after extracting from and assembling the following snapshots "
                    f"from {len(references)} source documents:\n" + "".join(f"- {r}\n" for r in references) + "\n")
        else:
            body = ""
        message = f"{self._prefix(first, technical)} {service_id} {terms_type}\n\n{body}X-engine-version: {ENGINE}\n"
        return self._commit(self.versions, path, content, date, message)

    def record(self, service_id: str, terms_type: str, date: str, page: str, markdown: str, *,
               technical: bool = False) -> tuple[str, str]:
        """A snapshot and the version extracted from it: (snapshot id, version id)."""
        snapshot_id = self.snapshot(service_id, terms_type, date, page)
        return snapshot_id, self.version(service_id, terms_type, date, markdown, snapshot_ids=[snapshot_id],
                                         technical=technical)

    def remove(self, service_id: str, terms_type: str, date: str) -> str:
        """Delete a document's version file (terms no longer tracked)."""
        path = f"{service_id}/{terms_type}.md"
        stamp = when(date).strftime("%Y-%m-%dT%H:%M:%S+0000")
        _git(self.versions, "rm", "-q", "--", path)
        _git(self.versions, "commit", "-q", "-m", f"Remove {service_id} {terms_type}",
             env={"GIT_AUTHOR_DATE": stamp, "GIT_COMMITTER_DATE": stamp})
        return _git(self.versions, "rev-parse", "HEAD")

    def commit_other_file(self, repo: Path, path: str, content: str, date: str, message: str) -> str:
        """A commit that is not a record (README, licence…), which readers must ignore."""
        return self._commit(repo, path, content, date, message)

    def rewrite_last_commit(self, repo: Path, message: str) -> str:
        """Amend HEAD (its id changes): history as a force-push would rewrite it."""
        stamp = _git(repo, "log", "-1", "--format=%aI")
        _git(repo, "commit", "-q", "--amend", "-m", message,
             env={"GIT_AUTHOR_DATE": stamp, "GIT_COMMITTER_DATE": stamp})
        return _git(repo, "rev-parse", "HEAD")


# --------------------------------------------------------------------------- a sample archive

PRIVACY_V1 = """Privacy Policy
==============

We collect your e-mail address. We keep it for one year.

Sharing
-------

We never share your data.

## Your rights

You can ask us to delete your data.
"""
PRIVACY_V2 = PRIVACY_V1.replace("We never share your data.",
                                "We may share your data with our advertising partners.")
PRIVACY_V2_TECHNICAL = PRIVACY_V2.replace("## Your rights", "Your rights\n-----------")
PRIVACY_V3 = PRIVACY_V2_TECHNICAL.replace("We keep it for one year.", "We keep it for five years.") + \
    "\n## Cookies\n\nWe use cookies to measure our audience.\n"
TERMS_V1 = "Terms of Service\n================\n\nBe nice.\n"
HOSTILE_MARKDOWN = (
    "# Conditions générales\n\nBon appétit <script>window.pwned = 1</script>.\n\n"
    "[Click me](javascript:alert(1)) and <img src=x onerror=\"alert(2)\">\n\n"
    "![tracking pixel](https://tracker.example/pixel.png)\n\n[Relative link](/-/changes)\n"
)
HOSTILE_PAGE = """<!doctype html><html><head><title>Hostile</title>
<meta http-equiv="refresh" content="0;url=BEACON?refresh">
<link rel="stylesheet" href="BEACON?css">
<script>try { window.top.document.title = "pwned"; } catch (e) {}
try { localStorage.setItem("pwned", "1"); } catch (e) {}
try { parent.postMessage("pwned", "*"); } catch (e) {}
fetch("BEACON?fetch");</script>
</head><body>
<h1>Conditions</h1>
<img src="BEACON?img" onerror="window.top.document.title='pwned'">
<img src="x" onerror="fetch('BEACON?onerror'); window.top.document.title='pwned'">
<svg onload="fetch('BEACON?svg')"></svg>
<a id="js-link" href="javascript:fetch('BEACON?javascript');window.top.document.title='pwned'">click me</a>
<iframe src="javascript:fetch('BEACON?iframe')"></iframe>
<form id="f" action="BEACON?form" method="post"><input name="a" value="b"></form>
<script>document.getElementById("f").submit();</script>
<object data="BEACON?object"></object>
<p style="background: url(BEACON?style)">Styled</p>
</body></html>
"""


@dataclass
class SampleArchive:
    """What `build_sample_archive` recorded, for tests to refer to."""

    data: Path
    declarations: Path
    factory: ArchiveFactory
    ids: dict[str, str]


def write_declarations(directory: Path) -> Path:
    """Acme (named "Acme Corp", three terms) and Bolt (declared, never recorded)."""
    import json

    directory.mkdir(parents=True, exist_ok=True)
    acme = {"name": "Acme Corp", "terms": {
        "Privacy Policy": {"fetch": "https://acme.example/privacy", "select": "main", "remove": ".ads",
                           "filter": [{"removeQueryParams": ["utm_source"]}]},
        "Terms of Service": {"combine": [{"fetch": "https://acme.example/tos", "select": "main"},
                                         {"fetch": "https://acme.example/tos-annex", "select": "article"}]},
        "Imprint": {"fetch": "https://acme.example/imprint", "select": "main", "executeClientScripts": True},
    }}
    bolt = {"name": "Bolt", "terms": {"Terms of Service": {"fetch": "https://bolt.example/tos", "select": "main"}}}
    (directory / "Acme.json").write_text(json.dumps(acme), encoding="utf-8")
    (directory / "Bolt.json").write_text(json.dumps(bolt), encoding="utf-8")
    return directory


def write_runs_db(data: Path) -> Path:
    """The tracking engine's status table: Acme's Privacy Policy failing, its Terms fine."""
    import sqlite3

    path = data / "runs.sqlite"
    connection = sqlite3.connect(path)
    connection.execute(
        "CREATE TABLE document_status (service_id TEXT, terms_type TEXT, last_success TEXT, failing_since TEXT, "
        "error_kind TEXT, error TEXT, consecutive_failures INTEGER, blocked INTEGER)"
    )
    connection.executemany("INSERT INTO document_status VALUES (?, ?, ?, ?, ?, ?, ?, ?)", [
        ("Acme", "Privacy Policy", "2024-06-01T00:00:00Z", "2024-06-02T12:00:00Z", "transient",
         "Received HTTP code 503", 3, 0),
        ("Acme", "Terms of Service", "2024-06-03T00:00:00Z", None, None, None, 0, 0),
    ])
    connection.commit()
    connection.close()
    return path


def build_sample_archive(root: Path, beacon: str = "https://beacon.invalid/hit") -> SampleArchive:
    """A small but realistic archive: changes, a technical upgrade sharing its date with a change,
    combined terms, a removed document, a hostile version and a hostile snapshot, a README.

    The hostile snapshot's payloads call `beacon` (a URL a browser test can watch)."""
    factory = ArchiveFactory(root / "data")
    ids: dict[str, str] = {}
    factory.commit_other_file(factory.versions, "README.md", "# Versions\n", "2024-01-01T00:00:00Z",
                              "Add README")
    ids["privacy_snapshot_1"], ids["privacy_1"] = factory.record(
        "Acme", "Privacy Policy", "2024-01-10T10:00:00Z", "<main>v1</main>", PRIVACY_V1)
    ids["tos_snapshot_a"] = factory.snapshot("Acme", "Terms of Service", "2024-01-12T08:00:00Z",
                                             "<main>Be nice.</main>", document_id="tos")
    ids["tos_snapshot_b"] = factory.snapshot("Acme", "Terms of Service", "2024-01-12T08:00:00Z",
                                             "<article>Annex</article>", document_id="tos-annex")
    ids["tos_1"] = factory.version("Acme", "Terms of Service", "2024-01-12T08:00:00Z", TERMS_V1,
                                   snapshot_ids=[ids["tos_snapshot_a"], ids["tos_snapshot_b"]])
    ids["imprint_1"] = factory.version("Acme", "Imprint", "2024-01-15T00:00:00Z", "Imprint\n=======\n\nAcme SA.\n",
                                       snapshot_ids=["0123456789abcdef0123456789abcdef01234567"])
    ids["privacy_snapshot_2"], ids["privacy_2"] = factory.record(
        "Acme", "Privacy Policy", "2024-03-18T18:30:09Z", "<main>v2</main>", PRIVACY_V2)
    # A re-extraction of the same snapshot: same date as the change it follows.
    ids["privacy_technical"] = factory.version(
        "Acme", "Privacy Policy", "2024-03-18T18:30:09Z", PRIVACY_V2_TECHNICAL,
        snapshot_ids=[ids["privacy_snapshot_2"]], technical=True)
    ids["hostile_snapshot"] = factory.snapshot("Café & Co", "Terms of Service", "2024-04-01T00:00:00Z",
                                               HOSTILE_PAGE.replace("BEACON", beacon),
                                               location="https://cafe.example/cgv")
    ids["hostile_version"] = factory.version("Café & Co", "Terms of Service", "2024-04-01T00:00:00Z",
                                             HOSTILE_MARKDOWN, snapshot_ids=[ids["hostile_snapshot"]])
    ids["imprint_removed"] = factory.remove("Acme", "Imprint", "2024-05-01T00:00:00Z")
    ids["privacy_snapshot_3"], ids["privacy_3"] = factory.record(
        "Acme", "Privacy Policy", "2024-06-01T00:00:00Z", "<main>v3</main>", PRIVACY_V3)
    declarations = write_declarations(root / "declarations")
    write_runs_db(factory.root)
    return SampleArchive(factory.root, declarations, factory, ids)
