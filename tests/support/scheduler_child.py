"""A scheduler process for the scheduler tests, and a small real tracking function.

    python -m tests.support.scheduler_child CONFIG_FILE

runs `termshift.scheduler.run_service` (what `termshift schedule` runs) with the
configuration file, logging as JSON to stderr, with `record_pages` as its tracking
function when `<data>/pages.json` exists, else the real `run_tracking`.

`record_pages` is a tracking run reduced to what the scheduler tests look at: it
fetches each page of `<data>/pages.json` (`[{"service", "type", "url"}]`) from a local
test server, records a snapshot and a version with termshift.archive_repo, and checks
`stop_event` between documents as the real run does. It appends to `<data>/runs.log`
one JSON line per run (`pid`, `start`, `end`, `documents`, `stopped`), and to
`<data>/documents.log` one line per recorded document, so tests can tell what ran
when, in which process.
"""

from __future__ import annotations

import json
import os
import re
import sys
import threading
import time
import urllib.request
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from termshift.archive_repo import Archive, Snapshot, Version
from termshift.config import Settings


def _append(path: Path, entry: dict[str, Any]) -> None:
    with path.open("a", encoding="utf-8") as handle:
        handle.write(json.dumps(entry) + "\n")
        handle.flush()
        os.fsync(handle.fileno())


def record_pages(settings: Settings, services: Any = None, types: Any = None, progress: bool = False,
                 stop_event: threading.Event | None = None) -> dict[str, Any]:
    """Fetch and record every page of `<data>/pages.json`; a summary like RunSummary's."""
    data_dir = Path(settings.data)
    pages = json.loads((data_dir / "pages.json").read_text(encoding="utf-8"))
    started = time.time()
    documents = []
    counts = {"documents_fetched": 0, "snapshots_recorded": 0, "versions_recorded": 0}
    with Archive.open(data_dir, settings.archive) as archive:
        for page in pages:
            if stop_event is not None and stop_event.is_set():
                break
            began = time.monotonic()
            with urllib.request.urlopen(page["url"], timeout=30) as response:
                html = response.read().decode("utf-8")
            counts["documents_fetched"] += 1
            fetched = datetime.now(UTC)
            snapshot = archive.snapshots.record(Snapshot(page["service"], page["type"], fetched, html))
            if snapshot is None:
                snapshot = archive.snapshots.latest(page["service"], page["type"])
            else:
                counts["snapshots_recorded"] += 1
            text = re.sub(r"\s+", " ", re.sub(r"<[^>]+>", " ", html)).strip()
            version = archive.versions.record(Version(page["service"], page["type"], fetched, text,
                                                      snapshot_ids=[snapshot.id]))
            counts["versions_recorded"] += version is not None
            documents.append({"service_id": page["service"], "terms_type": page["type"], "outcome": "ok",
                              "seconds": time.monotonic() - began})
            _append(data_dir / "documents.log", {"pid": os.getpid(), "time": time.time(), "url": page["url"]})
    stopped = bool(stop_event is not None and stop_event.is_set())
    _append(data_dir / "runs.log", {"pid": os.getpid(), "start": started, "end": time.time(),
                                     "documents": len(documents), "stopped": stopped})
    return {"started_at": started, "finished_at": time.time(), "counts": counts, "documents": documents}


def main(config_file: str) -> int:
    from termshift import logs, scheduler
    from termshift.config import load_settings

    settings = load_settings(Path(config_file), environ={})
    logs.configure(settings.logging, json_output=True)
    tracking = record_pages if (Path(settings.data) / "pages.json").is_file() else None
    print("ready", flush=True)
    return scheduler.run_service(settings, tracking=tracking)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1]))
