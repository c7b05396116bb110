"""A local web server that replays real archived pages at their original paths.

Give it an OTA-format snapshots repository (the demo bundle, cloned) and a
collection of declarations: for each declared URL it serves that document's
archived pages, one local address per original host (`docs.github.com` →
127.0.0.1, `buffer.com` → 127.0.0.2…), so that the fetcher sees as many hosts as
the real collection has. `step` chooses which archived page every URL serves:
step 0 is the oldest page kept, step 1 the next… (clamped to the last), so a test
can serve snapshot N in a first tracking run and N+k in the next one.

`write_declarations(dest)` writes the collection with every URL pointed at this
server; document ids (derived from the URL path) stay the same.

    with ReplayServer.from_repository(repo, declarations, keep=40) as server:
        server.write_declarations(tmp / "declarations")
        server.step = 0        # run 1 sees the oldest kept pages
        ...
        server.step = 39       # run 2 sees the latest ones
"""

from __future__ import annotations

import json
import shutil
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit

from termshift.archive_repo import RecordRepository
from termshift.declarations import load_collection
from tests.support.servers import Exchange, LocalServer


@dataclass
class ReplayedDocument:
    """One declared URL and the archived pages it serves, oldest first."""

    url: str  # as declared
    source: tuple[str, str]  # (service id, terms type) whose snapshots are replayed
    pages: list[str] = field(default_factory=list)
    snapshot_ids: list[str] = field(default_factory=list)

    @property
    def host(self) -> str:
        return urlsplit(self.url).hostname or ""

    @property
    def path(self) -> str:
        parts = urlsplit(self.url)
        return (parts.path or "/") + (f"?{parts.query}" if parts.query else "")


class ReplayServer(LocalServer):
    """Serves `documents` (by original URL); see the module docstring."""

    def __init__(self, documents: Iterable[ReplayedDocument], declarations_dir: Path) -> None:
        self.documents = {document.url: document for document in documents}
        original_hosts = sorted({document.host for document in self.documents.values()})
        self.address_of = {host: f"127.0.0.{index + 1}" for index, host in enumerate(original_hosts)}
        super().__init__(list(self.address_of.values()))
        self.declarations_dir = Path(declarations_dir)
        self.step = 0
        self._by_address_and_path = {
            (self.address_of[document.host], document.path): document for document in self.documents.values()
        }
        self.route("/", self._replay)

    @classmethod
    def from_repository(
        cls,
        repository: Path,
        declarations_dir: Path,
        *,
        terms: Iterable[tuple[str, str]] | None = None,
        keep: int = 10,
    ) -> ReplayServer:
        """The latest `keep` pages of each declared URL of `terms` (default: every terms).

        Several terms may share one URL (Buffer's page holds four): the first of them
        provides the pages.
        """
        collection = load_collection(Path(declarations_dir))
        if collection.errors:
            raise ValueError(f"{declarations_dir}: {collection.errors}")
        wanted = set(terms) if terms is not None else None
        snapshots = RecordRepository(Path(repository), "snapshots", read_only=True)
        documents: dict[str, ReplayedDocument] = {}
        try:
            for service_id, service in sorted(collection.services.items()):
                for terms_type, declared in service.terms.items():
                    if wanted is not None and (service_id, terms_type) not in wanted:
                        continue
                    for document in declared.documents:
                        if document.location in documents:
                            continue
                        file_id = document.id if declared.combined else None
                        history = snapshots.history(service_id, terms_type, file_id)[:keep]
                        if not history:
                            raise ValueError(f"{repository}: no snapshot of {service_id} / {terms_type}")
                        history.reverse()
                        documents[document.location] = ReplayedDocument(
                            url=document.location,
                            source=(service_id, terms_type),
                            pages=[str(snapshot.content) for snapshot in history],
                            snapshot_ids=[str(snapshot.id) for snapshot in history],
                        )
        finally:
            snapshots.close()
        return cls(documents.values(), declarations_dir)

    # -- what is served -------------------------------------------------------------------

    def page(self, url: str, step: int | None = None) -> str:
        """The page served for the declared `url` at `step` (default: the current one)."""
        document = self.documents[url]
        index = min(self.step if step is None else step, len(document.pages) - 1)
        return document.pages[index]

    def local_url(self, url: str) -> str:
        """Where this server serves the declared `url`."""
        document = self.documents[url]
        return self.url(document.path, self.address_of[document.host])

    def _replay(self, exchange: Exchange) -> None:
        path = exchange.handler.path
        document = self._by_address_and_path.get((exchange.host, path))
        if document is None:
            exchange.send(404, f"No archived page at {path}")
            return
        exchange.send(200, self.page(document.url))

    # -- the collection pointing here --------------------------------------------------------

    def write_declarations(self, destination: Path) -> Path:
        """Copy the declarations, keeping only the terms whose every URL is replayed here,
        rewritten to point at this server (nothing else may be fetched: a test never leaves
        the machine). Services left without terms are dropped; history and filters files of
        the others come along."""
        destination = Path(destination)
        destination.mkdir(parents=True, exist_ok=True)
        for path in sorted(self.declarations_dir.glob("*.json")):
            if path.name.endswith(".history.json"):
                continue
            service_id = path.name[: -len(".json")]
            data = json.loads(path.read_text(encoding="utf-8"))
            data["terms"] = {
                terms_type: self._rewrite(declaration)
                for terms_type, declaration in data["terms"].items()
                if all(url in self.documents for url in _locations(declaration))
            }
            if not data["terms"]:
                continue
            (destination / path.name).write_text(json.dumps(data, indent=2, ensure_ascii=False), encoding="utf-8")
            for suffix in (".history.json", ".filters.py"):
                companion = self.declarations_dir / f"{service_id}{suffix}"
                if companion.is_file():
                    if suffix == ".filters.py":
                        shutil.copy(companion, destination / companion.name)
                    else:
                        history = json.loads(companion.read_text(encoding="utf-8"))
                        (destination / companion.name).write_text(
                            json.dumps(self._rewrite(history), indent=2, ensure_ascii=False), encoding="utf-8")
        return destination

    def _rewrite(self, value: object) -> object:
        if isinstance(value, dict):
            return {key: self._rewrite(item) for key, item in value.items()}
        if isinstance(value, list):
            return [self._rewrite(item) for item in value]
        if isinstance(value, str) and value in self.documents:
            return self.local_url(value)
        return value


def _locations(declaration: dict) -> list[str]:
    """The URLs a terms declaration fetches."""
    if "combine" in declaration:
        return [item.get("fetch") or declaration.get("fetch") for item in declaration["combine"]]
    return [declaration.get("fetch")]
