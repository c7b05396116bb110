"""The web viewer: Flask app, SQLite index of the archive, JSON twins, OTA-compatible API.

`create_app` is imported lazily, so `termshift.web.index.refresh_index` (called by the
tracking run) does not load Flask.
"""

from __future__ import annotations

from typing import Any

__all__ = ["create_app"]


def __getattr__(name: str) -> Any:
    if name == "create_app":
        from termshift.web.app import create_app

        return create_app
    raise AttributeError(name)
