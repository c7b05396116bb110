"""`termshift serve`: the web viewer on a local port.

    termshift serve [--data DIR | --versions REPO [--snapshots REPO]] [--declarations DIR]
                    [--host 127.0.0.1] [--port 5000] [--index FILE] [--with-scheduler] [--debug]

`serve()` is the same thing as a function (used by `termshift demo`, termshift.commands.demo).

The viewer is served by waitress, a production WSGI server: pure Python (nothing to compile,
runs wherever Termshift does), one process with `web.threads` threads, so the scheduler of
`--with-scheduler`, the index's background refresh and the admin sessions live in the same
process as the requests (a pre-forking server such as gunicorn would run them once per worker).
`--debug` serves with Werkzeug's development server instead, for working on Termshift itself.
To bring your own server, point it at the factory `termshift.web:create_app()`.
"""

from __future__ import annotations

import signal
import threading
import time
from pathlib import Path
from typing import Any

import click

from termshift.commands.options import config_option, data_option, declarations_option, settings_for_command
from termshift.config import WebSettings
from termshift.logs import configure as configure_logging


def _existing(path: Path | None, option: str) -> Path | None:
    if path is not None and not Path(path).is_dir():
        raise click.BadParameter(f"{path}: no such directory", param_hint=option)
    return Path(path) if path is not None else None


def serve(
    data_dir: Path | None = None,
    declarations_dir: Path | None = None,
    *,
    versions_repo: Path | None = None,
    snapshots_repo: Path | None = None,
    index_path: Path | None = None,
    host: str | None = None,
    port: int | None = None,
    refresh_interval: float = 5.0,
    with_scheduler: bool = False,
    debug: bool = False,
) -> None:
    """Serve the viewer until interrupted; the archive's new commits are indexed on start
    (in the background when there are many: pages answer at once and show the progress).

    With `--data`, the data folder may be empty or missing (the scheduler, another
    process, has not recorded anything yet): the viewer says "nothing recorded yet" and
    picks the archive up when it appears. With `with_scheduler`, the scheduler (tracking, deliveries, dataset) runs in this
    process too: the small-deployment setup.
    """
    from termshift.web.app import create_app

    if versions_repo is not None and data_dir is not None:
        raise click.UsageError("give either --data or --versions, not both")
    if snapshots_repo is not None and versions_repo is None:
        raise click.UsageError("--snapshots goes with --versions")
    settings = settings_for_command(declarations_dir=declarations_dir, data_dir=data_dir)
    configure_logging(settings.logging)
    if with_scheduler:
        if versions_repo is not None:
            raise click.UsageError("--with-scheduler records into a data folder: use --data, not --versions")
        from termshift.archive_repo import Archive

        Archive.open(settings.data, settings.archive).close()  # a fresh deployment starts with empty repositories
    declarations = declarations_dir or (settings.declarations if settings.declarations.is_dir() else None)
    if versions_repo is None:
        # A data folder: its repositories may not exist yet (picked up when they appear).
        versions_repo = settings.data / "versions"
        snapshots_repo = snapshots_repo or settings.data / "snapshots"
        index_path = index_path or settings.data / "index.sqlite"
        if not versions_repo.is_dir():
            click.echo(f"Nothing recorded yet in {settings.data}: the viewer shows the archive once "
                       "the first tracking run has recorded it.", err=True)
    else:
        _existing(versions_repo, "--versions")
        _existing(snapshots_repo, "--snapshots")
    _existing(declarations, "--declarations")
    started = time.perf_counter()
    click.echo(f"Indexing {versions_repo}" + (f" and {snapshots_repo}" if snapshots_repo else "") + " ...", err=True)
    app = create_app(versions_repo, snapshots_repo, declarations, index_path,
                     settings=settings, refresh_interval=refresh_interval)
    progress = app.extensions["termshift"].index_progress()
    if progress.complete:
        stats = app.config.get("STARTUP_INDEX_STATS", {})
        new = sum(part.get("new", 0) for part in stats.values())
        click.echo(f"Index ready in {time.perf_counter() - started:.1f} s ({new} new records).", err=True)
    else:
        click.echo(f"Indexing {progress.versions_total - progress.versions_indexed} new versions in the "
                   "background; pages show the progress (also /status.json).", err=True)
    host = host or settings.web.host
    port = port or settings.web.port
    if with_scheduler:
        from termshift.scheduler import start_background_scheduler

        start_background_scheduler(settings)
        click.echo("Scheduler started: tracking, webhook deliveries and dataset exports run in this process.",
                   err=True)
    for problem in app.config.get("STARTUP_PROBLEMS", []):
        click.echo(f"Warning: {problem['public']} {problem['detail']}", err=True)
    if debug:
        from werkzeug.serving import run_simple

        click.echo("Warning: --debug serves with Werkzeug's development server: never in production.", err=True)
        click.echo(f"Serving on http://{host}:{port}/ (development server)", err=True)
        app.debug = True
        run_simple(host, port, app, threaded=True, use_reloader=False, use_debugger=False)
        return
    _serve_production(app, host, port, settings.web, with_scheduler)


def _serve_production(app: Any, host: str, port: int, web: WebSettings, with_scheduler: bool) -> None:
    """Serve `app` with waitress until SIGTERM or SIGINT (then return normally)."""
    import waitress

    threads = web.threads
    server = waitress.create_server(
        app, host=host, port=port, threads=threads, ident="Termshift",
        max_request_body_size=web.max_request_bytes,
        connection_limit=max(100, threads * 8), asyncore_use_poll=True,
        # X-Forwarded-* headers are the app's business (ProxyFix, `web.trusted_proxies`): waitress
        # drops them unless told otherwise, so with trusted proxies it must pass them on.
        clear_untrusted_proxy_headers=not web.trusted_proxies,
    )
    if not with_scheduler and threading.current_thread() is threading.main_thread():
        # SIGTERM (a service manager, a container stopping) ends the server as Ctrl-C does.
        # (With the scheduler, start_background_scheduler installed a handler doing the same.)
        def interrupt(_signum: int, _frame: Any) -> None:
            raise KeyboardInterrupt

        signal.signal(signal.SIGTERM, interrupt)
    click.echo(f"Serving on http://{host}:{port}/ (waitress, {threads} threads)", err=True)
    server.run()  # returns on KeyboardInterrupt, after closing the listening socket
    click.echo("Server stopped.", err=True)


@click.command("serve")
@config_option
@data_option
@click.option("--versions", "versions_repo", type=click.Path(file_okay=False, path_type=Path), default=None,
              help="A versions repository in OTA format (instead of --data), e.g. a clone of OTA's public one.")
@click.option("--snapshots", "snapshots_repo", type=click.Path(file_okay=False, path_type=Path), default=None,
              help="The snapshots repository that goes with --versions.")
@declarations_option
@click.option("--index", "index_path", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="The viewer's SQLite index (default: DATA/index.sqlite, or a per-repository file in ~/.cache).")
@click.option("--host", default=None, help="Address to listen on (default: 127.0.0.1).")
@click.option("--port", type=int, default=None, help="Port to listen on (default: 5000).")
@click.option("--refresh-interval", type=float, default=5.0, show_default=True,
              help="Seconds between checks for new commits (0: never).")
@click.option("--with-scheduler", is_flag=True,
              help="Also run the scheduler in this process: tracking, webhook deliveries, dataset exports.")
@click.option("--debug", is_flag=True,
              help="Serve with Werkzeug's development server (for working on Termshift; never in production).")
def serve_command(data_dir: Path | None, versions_repo: Path | None, snapshots_repo: Path | None,
                  declarations_dir: Path | None, index_path: Path | None, host: str | None, port: int | None,
                  refresh_interval: float, with_scheduler: bool, debug: bool) -> None:
    """Browse the archive: every service, document timeline and diff, with JSON twins and the OTA API.

    Served by waitress, a production WSGI server (`web.threads` threads); behind a TLS proxy,
    set `web.base_url` and `web.trusted_proxies`."""
    serve(data_dir, declarations_dir, versions_repo=versions_repo, snapshots_repo=snapshots_repo,
          index_path=index_path, host=host, port=port, refresh_interval=refresh_interval,
          with_scheduler=with_scheduler, debug=debug)
