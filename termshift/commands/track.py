"""`termshift track`: one tracking run from the command line (termshift.trackers.run does the run).

SIGINT (Ctrl-C) and SIGTERM ask the run to stop after the documents in hand; a second
one stops at once. Log lines are printed above the progress bar, not through it.
"""

from __future__ import annotations

import logging
import signal
import sys
import threading
from collections.abc import Iterator
from contextlib import contextmanager, nullcontext
from pathlib import Path
from typing import Any

import click

from termshift.commands.options import (
    config_option,
    data_option,
    declarations_option,
    services_option,
    settings_for_command,
    types_option,
)
from termshift.errors import TermshiftError
from termshift.trackers.replay import EXIT_SERVICES_SKIPPED
from termshift.trackers.run import TrackConfigurationError, run_tracking

log = logging.getLogger("termshift.track")


@contextmanager
def _stop_on_signals(stop_event: threading.Event) -> Iterator[None]:
    """SIGINT (Ctrl-C) and SIGTERM ask the run to stop cleanly; a second one stops at once."""

    def ask_to_stop(signum: int, _frame: Any) -> None:
        if stop_event.is_set():
            raise KeyboardInterrupt
        log.warning("stopping after the documents in hand (%s); again to abort", signal.Signals(signum).name)
        stop_event.set()

    previous = {signum: signal.signal(signum, ask_to_stop) for signum in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)


@click.command("track")
@declarations_option
@data_option
@services_option
@types_option
@config_option
@click.option("--broker", "broker_url", default=None, metavar="URL",
              help="Distributed run: hand the documents to `termshift worker` processes through this broker "
                   "(redis://…) and record their results here (default: distributed.broker, empty: track here).")
@click.option("--quiet", "-q", is_flag=True, help="No progress bar (the log lines remain).")
@click.option("--deliver", is_flag=True,
              help="After the run, deliver the queued webhooks until none is due (for cron; the scheduler "
                   "delivers on its own).")
@click.option("--deliver-timeout", type=click.FloatRange(min=0), default=300.0, show_default=True,
              help="Longest time --deliver spends delivering, in seconds.")
def track_command(
    declarations_dir: Path | None,
    data_dir: Path | None,
    services: tuple[str, ...],
    types: tuple[str, ...],
    quiet: bool,
    broker_url: str | None,
    deliver: bool,
    deliver_timeout: float,
) -> None:
    """Fetch every declared document once and record what changed.

    Pages are recorded as snapshots, and a new version is recorded when the
    extracted Markdown changed. One line per terms is logged as it completes,
    then a summary. Exit status: 0 when the run completed (even if some
    documents failed: see the summary), 1 when it was interrupted or another run
    holds the data folder, 2 when it cannot start (bad options, an unknown
    service asked for), 3 when it completed but skipped services whose
    declaration, history or filters file does not load (each problem is named
    with its file, JSON path and reason; every other service was tracked).
    """
    from termshift import logs
    from termshift.listeners import run_listeners
    from termshift.locking import RunLock, RunLockBusy

    settings = settings_for_command(declarations_dir=declarations_dir, data_dir=data_dir)
    logs.configure(settings.logging)
    source = None
    if broker_url or settings.distributed.broker:
        from termshift.distributed.coordinator import Coordinator

        source = Coordinator(settings, broker_url or settings.distributed.broker)
    stop_event = threading.Event()
    lock = RunLock(Path(settings.data))
    try:
        lock.acquire("termshift track")
    except RunLockBusy as busy:
        click.echo(f"error: {busy}", err=True)
        sys.exit(1)
    try:
        with _stop_on_signals(stop_event), _logging_beside_bar(not quiet):
            summary = run_tracking(settings, services or None, types or None, progress=not quiet,
                                   stop_event=stop_event, listeners=run_listeners(settings), source=source)
    except TrackConfigurationError as error:
        click.echo("error: the tracking run cannot start:", err=True)
        for problem in error.errors:
            click.echo(f"  {problem}", err=True)
        sys.exit(2)
    except TermshiftError as error:
        if source is None:
            raise
        from termshift.distributed.coordinator import BrokerUnavailable

        if not isinstance(error, BrokerUnavailable):
            raise
        click.echo(f"error: {error}", err=True)  # nothing was written, or the run resumes next time
        sys.exit(1)
    finally:
        lock.release()
    click.echo(summary.describe())
    if deliver:
        from termshift.alerts.delivery import drain

        report = drain(Path(settings.data), settings.webhooks, max_seconds=deliver_timeout)
        click.echo(f"webhooks: {report.delivered} delivered, {report.retried} to retry, {report.failed} failed, "
                   f"in {report.seconds:.1f} s")
    if summary.status != "completed":
        sys.exit(1)
    if summary.skipped:
        sys.exit(EXIT_SERVICES_SKIPPED)


def _logging_beside_bar(enabled: bool) -> Any:
    """Log lines printed above the progress bar instead of through it."""
    if not enabled or not sys.stderr.isatty():
        return nullcontext()
    from tqdm.contrib.logging import logging_redirect_tqdm

    return logging_redirect_tqdm()
