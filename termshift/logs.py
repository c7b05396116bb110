"""Logging for the service: plain text for people, or one JSON object per line for shippers.

`configure(settings.logging, json_output=None)` sets the root logger from `[logging]` (`level`,
`json`; `--log-json` wins). Structured fields go in `extra=`: the JSON formatter writes
every non-standard attribute of a record as a field, so

    log.info("document ok", extra={"event": "document", "service_id": "ACME"})

becomes `{"time": "...", "level": "INFO", "logger": "...", "message": "document ok",
"event": "document", "service_id": "ACME"}`.

`log_documents(documents, run_id)` writes the line per document per run that operators
grep for ("which documents failed last night, and why").
"""

from __future__ import annotations

import json
import logging
import sys
from collections.abc import Iterable
from datetime import UTC, datetime
from typing import Any

from termshift.config import LoggingSettings

log = logging.getLogger("termshift.run")

# Attributes every LogRecord has; anything else was passed with `extra=`.
_STANDARD = set(vars(logging.makeLogRecord({}))) | {"message", "asctime", "taskName"}
# Libraries whose INFO lines say nothing an operator needs (APScheduler logs every job start).
_QUIET = ("apscheduler.executors", "apscheduler.scheduler", "git", "urllib3", "filelock")


class JsonFormatter(logging.Formatter):
    """One JSON object per line: time (UTC, ISO 8601 Z), level, logger, message, extras."""

    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z"),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        for key, value in vars(record).items():
            if key not in _STANDARD and not key.startswith("_"):
                entry[key] = value
        if record.exc_info:
            entry["exception"] = self.formatException(record.exc_info)
        return json.dumps(entry, default=str, ensure_ascii=False)


TEXT_FORMAT = "%(asctime)s %(levelname)-7s %(name)s: %(message)s"


def configure(
    settings: LoggingSettings | None = None, json_output: bool | None = None, stream: Any = None,
) -> logging.Handler:
    """Send the root logger's records to `stream` (stderr) as text or JSON; return the handler.

    `settings` is the `[logging]` section (`Settings.logging`; None: INFO, as text).
    Replaces the handler a previous call installed, so calling twice does not double lines.
    """
    section = settings if settings is not None else LoggingSettings()
    use_json = section.json if json_output is None else json_output
    handler = logging.StreamHandler(stream or sys.stderr)
    handler.setFormatter(JsonFormatter() if use_json else logging.Formatter(TEXT_FORMAT))
    handler.set_name("termshift")
    root = logging.getLogger()
    for existing in list(root.handlers):
        if existing.get_name() == "termshift":
            root.removeHandler(existing)
    root.addHandler(handler)
    root.setLevel(section.level.upper())
    for name in _QUIET:
        logging.getLogger(name).setLevel(max(logging.WARNING, root.level))
    return handler


def log_documents(documents: Iterable[dict[str, Any]], run_id: int | None = None) -> None:
    """One line per document of a run: INFO when it went well, WARNING with the error otherwise."""
    for document in documents:
        failed = document.get("error") or document.get("error_kind")
        fields = {"event": "document", "run_id": run_id, **document}
        text = f"{document['service_id']} — {document['terms_type']}: {document['outcome']}"
        if failed:
            text += f" ({document.get('error_kind') or 'error'}: {document.get('error') or ''})"
            log.warning(text, extra=fields)
        else:
            log.info(text, extra=fields)


def progress_bar(total: int | None, enabled: bool, *, unit: str, only_on_terminal: bool = False) -> Any:
    """A tqdm progress bar on stderr, or a silent one when `enabled` is false.

    With `only_on_terminal`, no bar is drawn when stderr is not a terminal (cron,
    systemd), where the per-document log lines say the same without the noise.
    """
    from tqdm import tqdm

    disable: bool | None = True if not enabled else (None if only_on_terminal else False)
    return tqdm(total=total, unit=unit, file=sys.stderr, dynamic_ncols=True, mininterval=0.5, disable=disable)
