"""What the site's base template (`templates/base.html`) needs from a Flask app.

The viewer's app factory provides it all; a blueprint whose pages extend the base
template (the health blueprint's `/status`) calls `install(app)` when registered, so
its pages keep the site's header, navigation, language switch and footer even in an
app built without the factory (as its tests do).
"""

from __future__ import annotations

from pathlib import Path

from flask import Flask, send_from_directory

from termshift.web import i18n

STATIC_FOLDER = Path(__file__).resolve().parent / "static"
STATIC_URL_PATH = "/-/static"  # as in create_app: never a service id (see urls.RESERVED)


def install(app: Flask) -> None:
    """Languages (template globals and the language choice) and the site's static files."""
    i18n.register(app)
    if "static" not in app.view_functions:
        def static(filename: str):
            return send_from_directory(STATIC_FOLDER, filename, max_age=3600)

        app.add_url_rule(f"{STATIC_URL_PATH}/<path:filename>", "static", static)
