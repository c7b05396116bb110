"""`termshift schedule` (and `python scheduler.py`): Termshift as a service (termshift.scheduler)."""

from __future__ import annotations

from pathlib import Path

import click

from termshift import logs
from termshift.commands.options import config_option, data_option, declarations_option, settings_for_command


@click.command("schedule")
@config_option(help="Configuration file (default: $TERMSHIFT_CONFIG or ./termshift.toml).", metavar=None)
@declarations_option(help="Folder of service declarations.")
@data_option(help="Folder holding snapshots/, versions/ and the service's databases.")
@click.option("--log-json/--no-log-json", default=None, help="One JSON object per log line (default: logging.json).")
@click.option("--once", is_flag=True, help="Run one tracking run (with index refresh, publishing and deliveries) and exit.")
def schedule_command(declarations_dir: Path | None, data_dir: Path | None, log_json: bool | None,
                     once: bool) -> None:
    """Run Termshift as a service: tracking on schedule.tracking, webhook deliveries,
    weekly dataset exports. Stops cleanly on SIGTERM or Ctrl-C.

    A service whose declaration, history or filters file does not load is skipped by
    each run and reported (log, /status); the others are tracked. With --once, exit 0
    when the run went through, 3 when it did but skipped such services, 1 otherwise."""
    from termshift.scheduler import SchedulerService, run_service  # APScheduler: only when the command runs

    settings = settings_for_command(declarations_dir, data_dir)
    logs.configure(settings.logging, json_output=log_json)
    if once:
        service = SchedulerService(settings)
        status = service.run_tracking()
        if service.publisher is not None:
            service.publisher.wait()
        if status in ("ok", "stopped"):
            service.run_deliveries()
        if status == "ok" and service.last_skipped:
            raise SystemExit(3)  # as `termshift track`: completed, but services were skipped
        raise SystemExit(0 if status == "ok" else 1)
    raise SystemExit(run_service(settings))
