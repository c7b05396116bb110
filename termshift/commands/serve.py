"""`termshift serve`: the web viewer on a local port.

    termshift serve [--data DIR | --versions REPO [--snapshots REPO]] [--declarations DIR]
                    [--host 127.0.0.1] [--port 5000] [--index FILE] [--with-scheduler] [--debug]

`serve()` is the same thing as a function (used by `termshift demo`, termshift.commands.demo).

The viewer is served by waitress, a production WSGI server: pure Python (nothing to compile,
runs wherever Termshift does), with `web.threads` threads per process. Python runs one thread
at a time per process, so `web.processes` (or `--processes`) more than 1 starts that many
serving processes in all on the same listening socket, once the index is complete: this
process keeps the scheduler of `--with-scheduler` and the index's first build; the others
(started as `termshift serve … --listen-fd N`, restarted if they die, stopped with this one)
only answer requests; each accepts a connection only while one of its threads is free
(`accept_only_with_a_free_thread`). Admin sessions are shared through a file beside the index.
`--debug` serves with Werkzeug's development server instead, for working on Termshift itself.
To bring your own server, point it at the factory `termshift.web:create_app()`.
"""

from __future__ import annotations

import logging
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import click

from termshift.commands.options import config_option, data_option, declarations_option, settings_for_command
from termshift.config import WebSettings
from termshift.logs import configure as configure_logging

log = logging.getLogger(__name__)


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
    processes: int | None = None,
    listen_fd: int | None = None,
    parent_pid: int | None = None,
) -> None:
    """Serve the viewer until interrupted; the archive's new commits are indexed on start
    (in the background when there are many: pages answer at once and show the progress).

    With `--data`, the data folder may be empty or missing (the scheduler, another
    process, has not recorded anything yet): the viewer says "nothing recorded yet" and
    picks the archive up when it appears. With `with_scheduler`, the scheduler (tracking, deliveries, dataset) runs in this
    process too: the small-deployment setup.
    """
    from termshift.web.app import create_app

    child_command = _child_command(data_dir, declarations_dir, versions_repo, snapshots_repo, index_path,
                                   refresh_interval)
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
    if listen_fd is not None:  # one of several serving processes: started by the first, it only answers
        app = create_app(versions_repo, snapshots_repo, declarations, index_path,
                         settings=settings, refresh_interval=refresh_interval)
        _stop_with_parent(parent_pid if parent_pid is not None else os.getppid())
        _serve_production(app, host or settings.web.host, port or settings.web.port, settings.web, False,
                          listen_fd=listen_fd)
        return
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
    processes = settings.web.processes if processes is None else processes
    _serve_production(app, host, port, settings.web, with_scheduler,
                      processes=processes or os.cpu_count() or 1, child_command=child_command)


def _child_command(data_dir: Path | None, declarations_dir: Path | None, versions_repo: Path | None,
                   snapshots_repo: Path | None, index_path: Path | None, refresh_interval: float) -> list[str]:
    """`termshift serve` as another serving process runs it (its listening socket is added)."""
    from termshift.config import configured_path

    command = [sys.executable, "-m", "termshift.cli", "serve", "--refresh-interval", str(refresh_interval)]
    for option, value in (("--config", configured_path()), ("--data", data_dir), ("--versions", versions_repo),
                          ("--snapshots", snapshots_repo), ("--declarations", declarations_dir),
                          ("--index", index_path)):
        if value is not None:
            command += [option, str(Path(value).resolve())]
    return command


def _serve_production(app: Any, host: str, port: int, web: WebSettings, with_scheduler: bool, *,
                      processes: int = 1, child_command: list[str] | None = None,
                      listen_fd: int | None = None) -> None:
    """Serve `app` with waitress until SIGTERM or SIGINT (then return normally); with
    `processes` > 1, other processes serve on the same socket too (see the module's docstring)."""
    import socket

    import waitress

    from termshift.web.app import compile_templates

    spawning = listen_fd is None and processes > 1 and child_command is not None
    # The first process serves alone until the index is complete and the others have started.
    threads = serving_threads(web.threads, several=listen_fd is not None)
    options: dict[str, Any] = {"sockets": [socket.socket(fileno=listen_fd)]} if listen_fd is not None \
        else {"host": host, "port": port}
    server = waitress.create_server(
        app, threads=threads, ident="Termshift",
        max_request_body_size=web.max_request_bytes,
        connection_limit=max(100, threads * 8), asyncore_use_poll=True,
        # X-Forwarded-* headers are the app's business (ProxyFix, `web.trusted_proxies`): waitress
        # drops them unless told otherwise, so with trusted proxies it must pass them on.
        clear_untrusted_proxy_headers=not web.trusted_proxies,
        **options,
    )
    set_threads = accept_only_with_a_free_thread(server, threads) if listen_fd is not None or spawning else None
    # Before the first request: otherwise the first requests would all compile the templates
    # they need at once, each thread its own copy.
    compile_templates(app)
    if not with_scheduler and threading.current_thread() is threading.main_thread():
        # SIGTERM (a service manager, a container stopping) ends the server as Ctrl-C does.
        # (With the scheduler, start_background_scheduler installed a handler doing the same.)
        def interrupt(_signum: int, _frame: Any) -> None:
            raise KeyboardInterrupt

        signal.signal(signal.SIGTERM, interrupt)
    others = None
    if spawning:
        together = serving_threads(web.threads, several=True)

        def started() -> None:
            if set_threads is not None and together != threads:
                set_threads(together)
                log.info("the other serving processes have started: this one now serves with %d thread%s",
                         together, "s" if together > 1 else "")

        others = ServingProcesses(app, child_command, server.socket.fileno(), processes - 1, on_started=started)
        others.start()
    if listen_fd is None:
        click.echo(f"Serving on http://{host}:{port}/ (waitress, {threads} thread{'s' if threads > 1 else ''}"
                   + (f", {processes} processes" if others else "") + ")", err=True)
    else:
        click.echo(f"Serving process {os.getpid()} ready ({threads} thread{'s' if threads > 1 else ''}).", err=True)
    try:
        server.run()  # returns on KeyboardInterrupt, after closing the listening socket
    finally:
        if others is not None:
            others.stop()
    if listen_fd is None:
        click.echo("Server stopped.", err=True)


SINGLE_PROCESS_THREADS = 4


def serving_threads(configured: int, *, several: bool) -> int:
    """Threads of a serving process: `web.threads`, or when it is 0, one per process when
    several processes serve (each is then a worker, as a pre-fork server's) and
    SINGLE_PROCESS_THREADS with one (so that a long page does not hold up the short ones), as
    the first process has while it serves alone (until the index is complete).
    Threads of one process contend for Python's interpreter lock at every SQLite row and
    system call: on 2 cores under 20 clients, 2 processes of 1 thread spent 3.8 ms of CPU
    per document page and 10 ms per 200 KB diff, against 5.2 and 18 ms with 4 threads each."""
    if configured:
        return configured
    return 1 if several else SINGLE_PROCESS_THREADS


def accept_only_with_a_free_thread(server: Any, threads: int) -> Callable[[int], None]:
    """Make a waitress server sharing its listening socket with other processes accept a
    connection only while one of its `threads` is free.

    Waitress accepts whatever arrives and queues it for its threads, however busy they
    are; serving processes on one socket then share connections at random, and a process
    that took a few long diffs keeps taking more while another one idles (on 2 cores and
    20 clients: half the requests waited 300 ms or more behind a busy process, the others
    were answered in 20 ms). A busy process leaving new connections in the socket's queue
    lets a process with a free thread take them, first come first served, as a pre-fork
    server's workers do. Idle keep-alive connections hold no thread, so they do not count.

    The requests in hand are counted here, from the moment a connection's request is queued
    to the end of its service, which then wakes waitress's loop to ask again. (Waitress's
    own count of busy threads falls only after that wake-up: the loop would find the process
    still busy and sleep on, up to its one-second timeout, with a thread free.)

    Returns a function that changes the number of threads (and of requests in hand) later.
    """
    limit = threads
    in_hand = 0
    lock = threading.Lock()
    accepting = server.readable
    queue_task = server.add_task

    def readable() -> bool:
        return accepting() and in_hand < limit

    def add_task(channel: Any) -> None:
        nonlocal in_hand
        with lock:
            in_hand += 1
        queue_task(channel)

    class Channel(server.channel_class):
        def service(self) -> None:
            nonlocal in_hand
            try:
                super().service()
            finally:
                with lock:
                    in_hand -= 1
                server.pull_trigger()

    def set_threads(count: int) -> None:
        nonlocal limit
        limit = count
        server.task_dispatcher.set_thread_count(count)  # a thread in service stops when it is done
        server.pull_trigger()

    server.readable = readable
    server.add_task = add_task
    server.channel_class = Channel
    return set_threads


class ServingProcesses:
    """The other serving processes: started once the index is complete (so that they do not
    build it too), restarted when one dies, stopped with this process."""

    RESTART_DELAY = 5.0  # seconds before a serving process that died is started again

    def __init__(self, app: Any, command: list[str], fd: int, count: int,
                 on_started: Callable[[], None] | None = None) -> None:
        self.app = app
        self.on_started = on_started  # called once they have been started
        self.command = [*command, "--listen-fd", str(fd), "--parent-pid", str(os.getpid())]
        self.fd = fd
        self.count = count
        self.children: list[subprocess.Popen[bytes]] = []
        self._stopping = threading.Event()
        self._thread = threading.Thread(target=self._run, name="serving processes", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def _spawn(self) -> subprocess.Popen[bytes]:
        return subprocess.Popen(self.command, pass_fds=(self.fd,))

    def _run(self) -> None:
        viewer = self.app.extensions["termshift"]
        while not viewer.index_progress().complete:
            if self._stopping.wait(0.5):
                return
        self.children = [self._spawn() for _ in range(self.count)]
        log.info("%d more serving processes started: %s", self.count, [child.pid for child in self.children])
        if self.on_started is not None:
            self.on_started()
        while not self._stopping.wait(1.0):
            for position, child in enumerate(self.children):
                if child.poll() is not None and not self._stopping.wait(self.RESTART_DELAY):
                    log.warning("serving process %d exited (code %s): starting another", child.pid, child.returncode)
                    self.children[position] = self._spawn()

    def stop(self, timeout: float = 10.0) -> None:
        self._stopping.set()
        self._thread.join(timeout)
        for child in self.children:
            if child.poll() is None:
                child.terminate()
        for child in self.children:
            try:
                child.wait(timeout)
            except subprocess.TimeoutExpired:
                child.kill()
                child.wait()


def _stop_with_parent(parent: int) -> None:
    """A serving process stops (as on SIGTERM) when `parent`, the process that started it, is
    gone, also if it went before this one got here (its parent is then another process)."""

    def watch() -> None:
        while os.getppid() == parent:
            time.sleep(1.0)
        log.warning("the first serving process (%d) is gone: stopping", parent)
        os.kill(os.getpid(), signal.SIGTERM)

    threading.Thread(target=watch, name="parent watch", daemon=True).start()


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
@click.option("--processes", type=click.IntRange(min=0), default=None,
              help="Processes answering requests (default: web.processes; 0: one per core).")
@click.option("--listen-fd", type=int, default=None, hidden=True,
              help="Serve on this inherited listening socket (how the other serving processes are started).")
@click.option("--parent-pid", type=int, default=None, hidden=True,
              help="With --listen-fd: stop when this process (the first one) is gone.")
def serve_command(data_dir: Path | None, versions_repo: Path | None, snapshots_repo: Path | None,
                  declarations_dir: Path | None, index_path: Path | None, host: str | None, port: int | None,
                  refresh_interval: float, with_scheduler: bool, debug: bool, processes: int | None,
                  listen_fd: int | None, parent_pid: int | None) -> None:
    """Browse the archive: every service, document timeline and diff, with JSON twins and the OTA API.

    Served by waitress, a production WSGI server (`web.threads` threads); behind a TLS proxy,
    set `web.base_url` and `web.trusted_proxies`."""
    serve(data_dir, declarations_dir, versions_repo=versions_repo, snapshots_repo=snapshots_repo,
          index_path=index_path, host=host, port=port, refresh_interval=refresh_interval,
          with_scheduler=with_scheduler, debug=debug, processes=processes, listen_fd=listen_fd,
          parent_pid=parent_pid)
