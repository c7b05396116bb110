"""The fleet-wide per-host limiter (termshift.distributed.limiter) against a real Redis.

Several real processes take slots on the same hosts and fetch from a loopback server
that counts the requests in flight per host; a process holding a slot is SIGKILLed and
its slot comes back when its lease runs out; the fetch worker (a real Scrapy crawl in
its own process) honours the limiter when the fetcher settings name it.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

pytest.importorskip("redis")

from termshift.config import load_settings  # noqa: E402
from termshift.distributed.limiter import RedisHostLimiter, host_limiter_spec, redact_url  # noqa: E402
from termshift.errors import ErrorKind, FetchError  # noqa: E402
from termshift.trackers.fetcher import FetchRequest, iter_fetch  # noqa: E402
from tests.support.servers import LocalServer, html_page  # noqa: E402

pytestmark = pytest.mark.redis

REPO_ROOT = Path(__file__).resolve().parent.parent


def start_client(options: dict) -> subprocess.Popen[str]:
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(REPO_ROOT), os.environ.get("PYTHONPATH")]))}
    return subprocess.Popen([sys.executable, "-m", "tests.support.limiter_client", json.dumps(options)],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env, cwd=REPO_ROOT)


def run_clients(options: list[dict], timeout: float = 60) -> list[dict]:
    processes = [start_client(option) for option in options]
    records = []
    for process in processes:
        out, err = process.communicate(timeout=timeout)
        assert process.returncode == 0, err
        records.extend(json.loads(line) for line in out.splitlines())
    return records


@pytest.fixture
def pages():
    with LocalServer(hosts=2, latency=0.04) as server:
        server.add_page("/page", html_page("Page", "Some text."))
        yield server


def test_processes_together_never_exceed_per_host_in_flight(redis_url, pages):
    urls = [pages.url("/page", host) for host in (0, 1)] * 8  # 16 requests per process, two hosts
    option = {"redis": redis_url, "per_host": 2, "delay": 0.0, "urls": urls, "tasks": 4}
    records = run_clients([option] * 4)  # 4 processes × 4 tasks = 16 callers on 2 hosts
    assert len(records) == 64 and {record["status"] for record in records} == {200}
    for host in pages.hosts:
        # The server counts a request in flight from the moment it reads it to its answer:
        # within the holder's slot, so never above per_host if the limiter holds.
        assert pages.max_in_flight(host) == 2, pages.max_in_flight(host)


def test_grants_to_a_host_are_delay_apart_over_all_processes(redis_url, pages):
    urls = [pages.url("/page")] * 4
    option = {"redis": redis_url, "per_host": 3, "delay": 0.15, "urls": urls, "tasks": 2}
    started = time.monotonic()
    records = run_clients([option] * 3)
    grants = sorted(record["granted_ms"] for record in records)  # Redis's clock, one for all processes
    assert len(grants) == 12
    gaps = [later - earlier for earlier, later in zip(grants, grants[1:], strict=False)]
    assert min(gaps) >= 150, gaps
    assert time.monotonic() - started >= 11 * 0.15
    assert pages.max_in_flight(pages.hosts[0]) <= 3


def test_a_killed_holders_slot_frees_itself_when_its_lease_runs_out(redis_url):
    lease = 1.0
    holder = start_client({"redis": redis_url, "per_host": 1, "delay": 0.0, "lease": lease, "hold": "example.org"})
    try:
        assert holder.stdout is not None
        assert holder.stdout.readline().strip() == "held", holder.stderr.read() if holder.stderr else ""
        limiter = RedisHostLimiter(redis_url, 1, 0.0, lease=lease)

        async def scenario() -> tuple[float, int]:
            # Renewed by its living holder, the slot outlasts its lease...
            await asyncio.sleep(1.5 * lease)
            with pytest.raises(TimeoutError):
                await asyncio.wait_for(limiter.acquire("example.org"), 0.5)
            assert await limiter.in_flight("example.org") == 1
            # ...and frees itself within one lease once the holder is killed.
            os.kill(holder.pid, signal.SIGKILL)
            holder.wait()
            killed = time.monotonic()
            lease_taken = await asyncio.wait_for(limiter.acquire("example.org"), 10)
            waited = time.monotonic() - killed
            await limiter.release(lease_taken)
            count = await limiter.in_flight("example.org")
            await limiter.aclose()
            return waited, count

        waited, count = asyncio.run(scenario())
        assert waited <= lease + 0.5, waited
        assert count == 0
    finally:
        if holder.poll() is None:
            holder.kill()
            holder.wait()


def test_a_cancelled_waiter_or_slot_stops_whenever_the_cancellation_lands(redis_url):
    # Cancelled at random moments, a good share of them inside a Redis call: the Redis
    # client's own asyncio.wait_for can lose such a cancellation (Python 3.11), and a
    # waiter that went on polling would hang its caller (a download's time-out, a
    # test's wait_for) for ever. A lease keeper renewing every few ms is stopped the same way.
    import random

    async def scenario() -> list[str]:
        holder = RedisHostLimiter(redis_url, 1, 0.0, lease=30)
        taken = await holder.acquire("busy.example")
        waiter = RedisHostLimiter(redis_url, 1, 0.0, lease=0.01, poll=0.001)
        stuck = []
        for attempt in range(300):
            if attempt % 2:
                task = asyncio.ensure_future(waiter.acquire("busy.example"))  # never granted
            else:
                task = asyncio.ensure_future(hold_a_slot(waiter, f"free{attempt}.example"))
            await asyncio.sleep(random.uniform(0, 0.004))
            task.cancel()
            done, _ = await asyncio.wait([task], timeout=2)
            if not done:
                stuck.append(f"attempt {attempt} did not stop")
                task.print_stack()
                break
        await holder.release(taken)
        assert await waiter.in_flight("busy.example") == 0
        await holder.aclose()
        await waiter.aclose()
        return stuck

    async def hold_a_slot(limiter: RedisHostLimiter, host: str) -> None:
        async with limiter.slot(host):
            await asyncio.sleep(1)  # renewed every ~3 ms meanwhile

    assert asyncio.run(scenario()) == []


def test_an_unreachable_redis_fails_the_request_transiently_without_its_password(redis_server):
    url = f"redis://user:secret@127.0.0.1:{closed_port()}/0"
    limiter = RedisHostLimiter(url, 1, 0.0)

    async def attempt() -> None:
        try:
            await limiter.acquire("example.org")
        finally:
            await limiter.aclose()

    with pytest.raises(FetchError) as caught:
        asyncio.run(attempt())
    assert caught.value.kind is ErrorKind.TRANSIENT
    assert "fleet-wide host limiter" in str(caught.value) and "secret" not in str(caught.value)
    assert redact_url(url) == f"redis://127.0.0.1:{url.rsplit(':', 1)[1]}"


def closed_port() -> int:
    import socket

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def test_the_fetch_worker_honours_the_fleet_limiter(redis_url, tmp_path):
    """Two fetch batches at once, each its own Scrapy process: one request in flight on the host, not two."""
    with LocalServer(hosts=1, latency=0.2) as server:
        for number in range(4):
            server.add_page(f"/doc{number}", html_page(f"Doc {number}", "Text."))
        settings = load_settings(environ={}, overrides={"fetcher": {
            "per_host": 1, "host_delay": 0.0, "timeout": 10.0, "retries": 0}}).fetcher
        outcomes: list[list] = []

        def batch(numbers: range) -> None:
            requests = [FetchRequest(server.url(f"/doc{number}"), execute_client_scripts=False) for number in numbers]
            outcomes.append(list(iter_fetch(requests, settings, host_limiter=host_limiter_spec(redis_url))))

        threads = [threading.Thread(target=batch, args=(range(start, start + 2),)) for start in (0, 2)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(60)
        results = [result for outcome in outcomes for result in outcome]
        assert len(results) == 4 and all(result.ok for result in results), [r.error for r in results]
        assert server.max_in_flight(server.hosts[0]) == 1
