"""Support for the alerts tests (feeds and webhooks).

`VersionsRepo` builds versions repositories in Open Terms Archive's format with
plain `git` commands. The alerts must not depend on how `termshift.archive_repo`
writes, only on the format, so the tests build what it writes: one commit per
version, one `.md` file per commit at `<service>/<terms type>.md`, OTA's
subjects, author date = commit date = fetch date.

`webhook_settings(**overrides)` are `[webhooks]` settings for fast tests: short timeouts and
backoff, 127.0.0.1 allowed as a target.
"""

from __future__ import annotations

import os
import subprocess
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from termshift.config import WebhooksSettings

BASE_URL = "https://terms.example.org"

SUBJECTS = {
    "first": "First record of",
    "change": "Record new changes of",
    "technical": "Apply technical or declaration upgrade on",
}


@dataclass
class Recorded:
    """What the tests know about a version they committed (mirrors archive_repo's Version)."""

    service_id: str
    terms_type: str
    id: str
    fetch_date: datetime
    is_first_record: bool
    is_technical_upgrade: bool
    content: str


def git(repo: Path, *args: str, env: dict[str, str] | None = None) -> str:
    return subprocess.run(
        ["git", "-C", str(repo), *args], check=True, capture_output=True, text=True,
        env={**os.environ, **(env or {})},
    ).stdout.strip()


class VersionsRepo:
    """A versions repository under `data_dir/versions`."""

    def __init__(self, data_dir: Path) -> None:
        self.path = Path(data_dir) / "versions"
        self.path.mkdir(parents=True, exist_ok=True)
        git(self.path, "init", "-q", "-b", "main")
        git(self.path, "config", "user.name", "Termshift Bot")
        git(self.path, "config", "user.email", "bot@termshift.invalid")
        git(self.path, "config", "core.quotePath", "false")
        (self.path / "README.md").write_text("Not a record: at the root.\n", encoding="utf-8")
        git(self.path, "add", "README.md")
        git(self.path, "commit", "-q", "-m", "Add README", env=self._dates(datetime(2020, 1, 1, tzinfo=UTC)))
        self.clock = datetime(2024, 1, 1, 8, 0, tzinfo=UTC)

    @staticmethod
    def _dates(when: datetime) -> dict[str, str]:
        stamp = when.strftime("%Y-%m-%dT%H:%M:%SZ")
        return {"GIT_AUTHOR_DATE": stamp, "GIT_COMMITTER_DATE": stamp}

    def record(
        self, service_id: str, terms_type: str, content: str, kind: str | None = None,
        fetch_date: datetime | None = None,
    ) -> Recorded:
        """Commit `content` as the next version; `kind` defaults to first or change as appropriate."""
        file = self.path / service_id / f"{terms_type}.md"
        first = not file.exists()
        kind = kind or ("first" if first else "change")
        if fetch_date is None:
            self.clock += timedelta(hours=1)
            fetch_date = self.clock
        file.parent.mkdir(parents=True, exist_ok=True)
        file.write_text(content, encoding="utf-8")
        relative = f"{service_id}/{terms_type}.md"
        git(self.path, "add", "--", relative)
        message = f"{SUBJECTS[kind]} {service_id} {terms_type}\n\nX-engine-version: 0.1.0"
        git(self.path, "commit", "-q", "--no-verify", "-m", message, "--", relative, env=self._dates(fetch_date))
        return Recorded(
            service_id=service_id, terms_type=terms_type, id=git(self.path, "rev-parse", "HEAD"),
            fetch_date=fetch_date, is_first_record=kind == "first",
            is_technical_upgrade=kind == "technical", content=content,
        )


def webhook_settings(**overrides: Any) -> WebhooksSettings:
    """The `[webhooks]` settings (what `termshift.alerts` reads), tuned for tests."""
    webhooks = {
        "allow_private_targets": ["127.0.0.1"],
        "timeout": 1.0,
        "concurrency": 4,
        "retry_base": 0.05,
        "retry_max": 0.2,
        "max_age": 60.0,
        **overrides,
    }
    return WebhooksSettings(**{key: tuple(value) if isinstance(value, list) else value
                               for key, value in webhooks.items()})
