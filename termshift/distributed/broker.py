"""Dramatiq on Redis, as Termshift uses it: the broker, the job actor's declaration, sending jobs.

Both sides declare the same actor (`ACTOR_NAME` on `queue`): the coordinator to send
jobs (`send_job`), the workers with the function that runs them
(`termshift.distributed.worker`). A message carries one `TermsJob` as JSON.

Two changes to Dramatiq's Redis broker (see docs/scaling.md):

- **Maintenance on a clock.** Dramatiq requeues the messages of dead workers (silent
  for `heartbeat_timeout`) during "maintenance", which it runs on a random one in a
  thousand broker commands; with a few workers that can take minutes. Here it runs on
  every `heartbeat()` once `maintenance_interval` has passed, so a SIGKILLed worker's
  job is delivered again about `heartbeat_timeout` after its last sign of life.
- **Heartbeats of their own.** Dramatiq's heartbeat rides on broker commands, and a
  worker busy with all its prefetched messages sends none: a job longer than
  `heartbeat_timeout` would be taken for dead and run twice. `heartbeat()` is called
  by the worker's own thread (`worker.Heartbeat`).

Delivery is at least once; results are made idempotent by `results.ResultStore`.
"""

from __future__ import annotations

import threading
import time
from typing import Any

from dramatiq.brokers.redis import RedisBroker
from dramatiq.common import dq_name

from termshift.distributed.jobs import TermsJob

__all__ = [
    "ACTOR_NAME",
    "DEFAULT_HEARTBEAT_TIMEOUT",
    "DEFAULT_QUEUE",
    "TermshiftRedisBroker",
    "declare_job_actor",
    "job_time_limit",
    "make_broker",
    "queue_depth",
    "send_job",
]

ACTOR_NAME = "termshift_track_terms"
DEFAULT_QUEUE = "termshift"
NAMESPACE = "termshift-dramatiq"
# Seconds without a sign of life after which a worker is taken for dead and its jobs delivered again.
DEFAULT_HEARTBEAT_TIMEOUT = 30.0
# Retries of a job whose actor raised: only a result that could not be stored raises (Redis down).
MAX_RETRIES = 5


class TermshiftRedisBroker(RedisBroker):
    """Dramatiq's RedisBroker with queue maintenance on a clock (see the module docstring)."""

    def __init__(self, *, url: str, heartbeat_timeout: float = DEFAULT_HEARTBEAT_TIMEOUT,
                 maintenance_interval: float | None = None, **options: Any) -> None:
        options.setdefault("namespace", NAMESPACE)
        super().__init__(url=url, heartbeat_timeout=int(heartbeat_timeout * 1000), maintenance_chance=0, **options)
        self.url = url
        self.maintenance_interval = heartbeat_timeout / 6 if maintenance_interval is None else maintenance_interval
        self._next_maintenance = 0.0
        self._local = threading.local()  # set in the heartbeat's thread only, while it asks for maintenance

    def _should_do_maintenance(self, command: str) -> int:
        # Dramatiq asks this for every broker command: only heartbeat() gets a yes (never at random).
        return int(command == "qsize" and getattr(self._local, "maintain", False))

    def heartbeat(self) -> None:
        """Tell Redis this worker is alive, and requeue the jobs of dead workers when maintenance is due.

        Call it from one thread, every `maintenance_interval` or more often.
        """
        now = time.monotonic()
        self._local.maintain = now >= self._next_maintenance
        if self._local.maintain:
            self._next_maintenance = now + self.maintenance_interval
        try:
            for queue in sorted(self.get_declared_queues()):
                for name in (queue, dq_name(queue)):
                    self.do_qsize(name)  # any command refreshes the heartbeat; "qsize" changes nothing
        finally:
            self._local.maintain = False


def make_broker(url: str, *, heartbeat_timeout: float = DEFAULT_HEARTBEAT_TIMEOUT,
                maintenance_interval: float | None = None) -> TermshiftRedisBroker:
    """The broker at `url` (redis://…), with Dramatiq's default middleware and at most MAX_RETRIES retries."""
    from dramatiq.middleware import default_middleware
    from dramatiq.middleware.retries import Retries

    middleware = [Retries(max_retries=MAX_RETRIES, min_backoff=1000, max_backoff=60000) if kind is Retries else kind()
                  for kind in default_middleware]
    return TermshiftRedisBroker(url=url, heartbeat_timeout=heartbeat_timeout,
                                maintenance_interval=maintenance_interval, middleware=middleware)


def declare_job_actor(broker: TermshiftRedisBroker, function: Any = None, *, queue: str = DEFAULT_QUEUE) -> Any:
    """Declare the job actor on `broker`; `function(job_json)` runs jobs (None on the sending side)."""
    import dramatiq

    def not_here(job: dict[str, Any]) -> None:  # pragma: no cover - a coordinator runs no jobs
        raise RuntimeError("this process only sends jobs")

    return dramatiq.actor(function or not_here, actor_name=ACTOR_NAME, queue_name=queue, broker=broker,
                          max_retries=MAX_RETRIES)


def job_time_limit(job: TermsJob) -> int:
    """Milliseconds a job may run before Dramatiq interrupts it (and retries it).

    Generous: every document fetched with all its retries and the browser fallback, then extracted.
    """
    fetcher = job.fetcher
    per_document = (float(fetcher.get("timeout", 30.0)) * (int(fetcher.get("retries", 2)) + 2)
                    + 2 * float(fetcher.get("wait_for_selectors", 10.0)) + float(fetcher.get("host_delay", 1.0)) + 30)
    return int((60 + per_document * max(1, len(job.documents))) * 1000)


def send_job(actor: Any, job: TermsJob) -> Any:
    """Queue a job; returns Dramatiq's message."""
    return actor.send_with_options(args=(job.to_json(),), time_limit=job_time_limit(job))


def queue_depth(broker: TermshiftRedisBroker, queue: str = DEFAULT_QUEUE) -> dict[str, int]:
    """Jobs waiting in the queue, and jobs fetched by workers but not acknowledged (in flight or prefetched)."""
    client = broker.client
    waiting = int(client.llen(f"{broker.namespace}:{queue}"))
    in_flight = 0
    for key in client.scan_iter(match=f"{broker.namespace}:__acks__.*.{queue}", count=500):
        in_flight += int(client.scard(key))
    return {"waiting": waiting, "in_flight": in_flight}
