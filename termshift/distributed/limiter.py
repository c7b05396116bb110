"""Politeness over the whole fleet: a per-host limiter kept in Redis.

`fetcher.per_host` (requests in flight at once on a host) and `fetcher.host_delay`
(seconds between the starts of two requests to a host) hold for every worker process
on every machine together, not per process:

    limiter = RedisHostLimiter("redis://broker:6379/0", per_host=1, delay=1.0)
    async with limiter.slot("example.com"):
        ...  # download

A slot is a **lease**: an entry in the host's sorted set whose score is its expiry
time. The holder renews it (every `lease / 3` seconds) while its request runs and
removes it when done; a holder that is SIGKILLed (or whose machine is lost) stops
renewing, and its slot frees itself when the lease runs out. Taking a slot is one
Lua script, so it is atomic: drop the expired leases, refuse when `per_host` are
held or when the host's last start is less than `delay` ago, else add the lease and
note the start. The time is Redis's own (`TIME`), so machines with skewed clocks
agree. A refused caller waits the time the script says (the delay left), at most
`poll` seconds when every slot is taken, and asks again.

The keys of a host share a hash tag (`termshift:limiter:{<host>}:…`) so that the
script also runs on a Redis Cluster; they expire on their own when a host is idle.
Needs Redis ≥ 5 (a script that calls TIME before writing).

The fetch worker (`trackers.fetch_http.RoutingDownloadHandler`) uses this limiter in
place of its in-process one when the "fetcher" settings carry a `host_limiter`
specification (`host_limiter_spec()`), which is how distributed workers fetch.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from typing import Any, TypeVar

from termshift.errors import ErrorKind, FetchError

__all__ = [
    "DEFAULT_LEASE",
    "DEFAULT_POLL",
    "Lease",
    "RedisHostLimiter",
    "from_spec",
    "host_limiter_spec",
    "redact_url",
]

log = logging.getLogger(__name__)

T = TypeVar("T")

# Seconds a slot is held without renewal: how long a killed worker's slot stays taken.
DEFAULT_LEASE = 15.0
# Longest wait between two attempts when every slot of a host is taken.
DEFAULT_POLL = 0.05

# KEYS: leases (sorted set: lease id -> expiry, ms), last start (ms).
# ARGV: lease id, per_host, delay (ms), lease (ms).
# Returns {1, now} when the slot is taken, {0, wait in ms} when refused.
_ACQUIRE = """
local clock = redis.call('TIME')
local now = tonumber(clock[1]) * 1000 + math.floor(tonumber(clock[2]) / 1000)
local per_host = tonumber(ARGV[2])
local delay = tonumber(ARGV[3])
local lease = tonumber(ARGV[4])
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now)
if redis.call('ZCARD', KEYS[1]) >= per_host then
  local first = redis.call('ZRANGE', KEYS[1], 0, 0, 'WITHSCORES')
  return {0, math.max(1, tonumber(first[2]) - now)}
end
if delay > 0 then
  local last = redis.call('GET', KEYS[2])
  if last and now < tonumber(last) + delay then
    return {0, tonumber(last) + delay - now}
  end
end
redis.call('ZADD', KEYS[1], now + lease, ARGV[1])
redis.call('PEXPIRE', KEYS[1], lease * 2)
if delay > 0 then
  redis.call('SET', KEYS[2], now, 'PX', delay)
end
return {1, now}
"""

# KEYS: leases. ARGV: lease id, lease (ms). Returns 1 when renewed, 0 when the lease was lost.
_RENEW = """
if not redis.call('ZSCORE', KEYS[1], ARGV[1]) then
  return 0
end
local clock = redis.call('TIME')
local now = tonumber(clock[1]) * 1000 + math.floor(tonumber(clock[2]) / 1000)
local lease = tonumber(ARGV[2])
redis.call('ZADD', KEYS[1], 'XX', now + lease, ARGV[1])
redis.call('PEXPIRE', KEYS[1], lease * 2)
return 1
"""


@dataclass
class Lease:
    """A slot held on a host: `granted_ms` is Redis's time when it was granted."""

    host: str
    id: str
    granted_ms: int
    lost: bool = False  # the lease ran out while held (the holder stalled longer than the lease)


class RedisHostLimiter:
    """At most `per_host` slots held at once per host, and grants `delay` seconds apart, fleet-wide.

    An asyncio object (the fetch worker runs on Twisted's asyncio reactor): one per
    process, any number of concurrent `slot()` calls.
    """

    def __init__(
        self,
        url: str,
        per_host: int,
        delay: float,
        *,
        lease: float = DEFAULT_LEASE,
        poll: float = DEFAULT_POLL,
        namespace: str = "termshift",
    ) -> None:
        if per_host < 1:
            raise ValueError("per_host must be at least 1")
        if lease <= 0:
            raise ValueError("lease must be more than 0")
        self.url = url
        self.per_host = per_host
        self.delay = max(0.0, float(delay))
        self.lease = float(lease)
        self.poll = float(poll)
        self.namespace = namespace
        self._client: Any = None
        self._acquire: Any = None
        self._renew: Any = None

    def _keys(self, host: str) -> tuple[str, str]:
        base = f"{self.namespace}:limiter:{{{host}}}"
        return f"{base}:leases", f"{base}:last"

    def _connect(self) -> None:
        if self._client is None:
            import redis.asyncio

            self._client = redis.asyncio.Redis.from_url(self.url)
            self._acquire = self._client.register_script(_ACQUIRE)
            self._renew = self._client.register_script(_RENEW)

    async def acquire(self, host: str) -> Lease:
        """Wait for a slot on `host` and take it. Raises a transient FetchError when Redis is unreachable."""
        self._connect()
        leases, last = self._keys(host)
        lease_id = uuid.uuid4().hex
        while True:
            try:
                granted, value = await _honouring_cancellation(self._acquire(
                    keys=[leases, last],
                    args=[lease_id, self.per_host, round(self.delay * 1000), round(self.lease * 1000)],
                ), on_cancel=lambda: self._client.zrem(leases, lease_id))
            except Exception as error:  # noqa: BLE001 - redis' errors: the document fails, transiently
                raise _unreachable(self.url, error) from None
            if granted:
                return Lease(host, lease_id, int(value))
            wait = int(value) / 1000
            # Jitter spreads the waiters of one host out; the delay left is waited exactly.
            await asyncio.sleep(min(wait, self.poll) + random.uniform(0, self.poll / 5))

    async def renew(self, lease: Lease) -> bool:
        """Push the lease's expiry `lease` seconds ahead; False when it had already run out."""
        leases, _last = self._keys(lease.host)
        renewed = bool(await _honouring_cancellation(self._renew(keys=[leases], args=[lease.id, round(self.lease * 1000)])))
        if not renewed and not lease.lost:
            lease.lost = True
            log.warning("the slot on %s ran out before its request ended (a stall longer than %g s): "
                        "another request to the host may have started meanwhile", lease.host, self.lease)
        return renewed

    async def release(self, lease: Lease) -> None:
        leases, _last = self._keys(lease.host)
        await self._client.zrem(leases, lease.id)

    @contextlib.asynccontextmanager
    async def slot(self, host: str) -> AsyncIterator[Lease]:
        """Hold a slot on `host` for the duration of the block (renewed meanwhile)."""
        lease = await self.acquire(host)
        keeper = asyncio.ensure_future(self._keep(lease))
        try:
            yield lease
        finally:
            keeper.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await keeper
            # A release that fails (Redis gone) is not an error: the lease runs out by itself.
            with contextlib.suppress(Exception):
                await self.release(lease)

    async def _keep(self, lease: Lease) -> None:
        while True:
            await asyncio.sleep(self.lease / 3)
            try:
                await self.renew(lease)
            except Exception as error:  # noqa: BLE001 - try again at the next turn, the lease has time left
                log.warning("could not renew the slot on %s: %s", lease.host, error)

    async def in_flight(self, host: str) -> int:
        """Slots held on `host` now (expired leases not counted)."""
        self._connect()
        leases, _last = self._keys(host)
        now_s, now_us = await self._client.time()
        return int(await self._client.zcount(leases, f"({now_s * 1000 + now_us // 1000}", "+inf"))

    async def aclose(self) -> None:
        if self._client is not None:
            client, self._client = self._client, None
            await client.aclose()


async def _honouring_cancellation(call: Awaitable[T], on_cancel: Callable[[], Awaitable[Any]] | None = None) -> T:
    """Await a Redis call, and raise CancelledError if the task was cancelled meanwhile.

    The Redis client waits for its socket writes with `asyncio.wait_for`, which on
    Python 3.11 returns normally when the write ends as the cancellation arrives: the
    cancellation is lost, and a caller waiting for a slot (or a lease keeper being
    stopped) would go on polling forever. A cancellation request counted during the
    call (`Task.cancelling()`) but never raised is raised here. `on_cancel()` undoes
    what the call did (a slot it took) before.
    """
    task = asyncio.current_task()
    requested = task.cancelling() if task is not None else 0
    result = await call
    if task is not None and task.cancelling() > requested:
        if on_cancel is not None:
            with contextlib.suppress(Exception):
                await on_cancel()
        raise asyncio.CancelledError("cancelled during a Redis call")
    return result


def _unreachable(url: str, error: BaseException) -> FetchError:
    return FetchError(f"The fleet-wide host limiter (Redis at {redact_url(url)}) is unreachable: {error}",
                      ErrorKind.TRANSIENT)


def redact_url(url: str) -> str:
    """`url` without its user name and password (for messages and logs)."""
    from urllib.parse import urlsplit, urlunsplit

    parts = urlsplit(url)
    if parts.username is None and parts.password is None:
        return url
    netloc = parts.hostname or ""
    if parts.port is not None:
        netloc += f":{parts.port}"
    return urlunsplit(parts._replace(netloc=netloc))


# -- plugging it into the fetch worker ----------------------------------------------------------


def host_limiter_spec(url: str, *, lease: float = DEFAULT_LEASE, poll: float = DEFAULT_POLL,
                      namespace: str = "termshift") -> dict[str, Any]:
    """The `host_limiter` entry of the "fetcher" settings that makes the fetch worker use this limiter.

    Plain data (it travels to the fetch worker process with the job); `from_spec` builds the
    limiter there, with the batch's `per_host` and `host_delay`.
    """
    return {"factory": f"{__name__}.from_spec", "url": url, "lease": lease, "poll": poll, "namespace": namespace}


def from_spec(spec: dict[str, Any], per_host: int, delay: float) -> RedisHostLimiter:
    return RedisHostLimiter(spec["url"], per_host, delay, lease=float(spec.get("lease", DEFAULT_LEASE)),
                            poll=float(spec.get("poll", DEFAULT_POLL)),
                            namespace=str(spec.get("namespace", "termshift")))
