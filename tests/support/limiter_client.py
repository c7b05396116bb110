"""A process that hammers the fleet-wide limiter (tests/test_distributed_limiter.py starts several).

    python -m tests.support.limiter_client '<json>'

The JSON says: redis url, per_host, delay, lease, the URLs to get (each through a slot on
its host) and how many tasks run at once. With "hold": takes one slot, prints "held",
and keeps it (renewing) until killed. Otherwise prints one JSON line per request:
{"host", "granted_ms", "status"}.
"""

from __future__ import annotations

import asyncio
import json
import sys
import urllib.request
from urllib.parse import urlsplit

from termshift.distributed.limiter import RedisHostLimiter


async def main(options: dict) -> None:
    limiter = RedisHostLimiter(options["redis"], options["per_host"], options["delay"],
                               lease=options.get("lease", 15.0))
    if options.get("hold"):
        async with limiter.slot(options["hold"]):
            print("held", flush=True)
            await asyncio.sleep(3600)
        return
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))  # loopback: never through a proxy
    queue: asyncio.Queue[str] = asyncio.Queue()
    for url in options["urls"]:
        queue.put_nowait(url)

    async def run() -> None:
        while not queue.empty():
            url = queue.get_nowait()
            host = urlsplit(url).hostname or ""
            async with limiter.slot(host) as lease:
                status = await asyncio.to_thread(lambda: opener.open(url, timeout=10).status)  # noqa: B023
            print(json.dumps({"host": host, "granted_ms": lease.granted_ms, "status": status}), flush=True)

    await asyncio.gather(*(run() for _ in range(options.get("tasks", 1))))
    await limiter.aclose()


if __name__ == "__main__":
    asyncio.run(main(json.loads(sys.argv[1])))
