"""`termshift worker --broker URL`: fetch, render and extract jobs of distributed runs."""

from __future__ import annotations

from pathlib import Path

import click

from termshift.commands.options import config_option, declarations_option, settings_for_command

__all__ = ["worker_command"]


@click.command("worker")
@click.option("--broker", "broker_url", required=True, envvar="TERMSHIFT_BROKER", metavar="URL",
              help="The broker's Redis, e.g. redis://broker.internal:6379/0 (or $TERMSHIFT_BROKER).")
@declarations_option
@config_option
@click.option("--threads", type=click.IntRange(min=1), default=1, show_default=True,
              help="Jobs run at once by this process (run one process per core for CPU-bound extraction).")
@click.option("--queue", default=None, help="The queue to take jobs from (default: termshift).")
@click.option("--heartbeat-timeout", type=click.FloatRange(min=0.5), default=None, metavar="SECONDS",
              help="Seconds of silence after which a worker is taken for dead and its jobs delivered again "
                   "(default 30; use the same value on every worker).")
@click.option("--lease", type=click.FloatRange(min=0.5), default=None, metavar="SECONDS",
              help="Seconds a per-host slot of a killed worker stays taken (default 15).")
def worker_command(
    broker_url: str,
    declarations_dir: Path | None,
    threads: int,
    queue: str | None,
    heartbeat_timeout: float | None,
    lease: float | None,
) -> None:
    """Run jobs of distributed tracking runs until stopped (SIGTERM or Ctrl-C).

    A worker fetches the documents of each job (politely: the per-host limits hold over
    the whole fleet, through the broker's Redis), renders the pages that need a browser
    (a local Chromium, or fetcher.browser_endpoint), extracts their Markdown with its
    own copy of the declarations (they must be the coordinator's), and hands the result
    back through the broker. It never writes the archive: the coordinator does.

    A first signal finishes the jobs in progress, then stops; a second one stops at
    once (those jobs are delivered again to another worker).
    """
    from termshift import logs
    from termshift.distributed.limiter import DEFAULT_LEASE
    from termshift.distributed.worker import WorkerOptions, serve

    settings = settings_for_command(declarations_dir=declarations_dir)
    logs.configure(settings.logging)
    options = WorkerOptions(declarations=Path(settings.declarations), fetcher=settings.fetcher,
                            limiter_url=broker_url, lease=lease or DEFAULT_LEASE)
    try:
        serve(broker_url, options, threads=threads, queue=queue, heartbeat_timeout=heartbeat_timeout)
    except Exception as error:  # noqa: BLE001 - a broker that cannot be reached, a bad URL: one clear line
        import redis

        if isinstance(error, redis.RedisError | ValueError):
            from termshift.distributed.limiter import redact_url

            raise click.ClickException(f"the broker at {redact_url(broker_url)} cannot be used: {error}") from None
        raise
