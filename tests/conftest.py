"""Shared fixtures. Area-specific fixtures live in tests/support/ modules."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from tests.support.servers import LOOPBACK_ALLOW_ENV, LOOPBACK_NETWORK

REPO_ROOT = Path(__file__).resolve().parent.parent
SHARED = REPO_ROOT.parent / "shared"
CORPUS = SHARED / "corpus" / "demo"


@pytest.fixture(scope="session")
def corpus_dir() -> Path:
    """../shared/corpus/demo, or skip: a user's fresh clone does not have it."""
    if not (CORPUS / "snapshots.bundle").is_file():
        pytest.skip("../shared/corpus/demo is not available")
    return CORPUS


@pytest.fixture(scope="session")
def repo_declarations() -> Path:
    """The project's own collection of declarations."""
    return REPO_ROOT / "declarations"


# Every test serves its pages from loopback (127.0.0.x stands for many hosts), which the
# fetchers refuse by default (fetcher.allow_private_targets). Tests opt in here, once for
# all: in-process settings built from DEFAULTS (load_settings or by hand) get the allow-list
# as their default, and child processes (`termshift track` started by a test) get it from
# the environment (a test that builds a clean environment adds LOOPBACK_ALLOW_ENV). A test
# of the refusal sets its own, narrower list.


TEST_FETCH_ALLOW = [LOOPBACK_NETWORK]  # for a test that writes its own configuration file


@pytest.fixture(autouse=True, scope="session")
def _fetchers_may_reach_loopback():
    from termshift.config import DEFAULTS

    allow = list(TEST_FETCH_ALLOW)
    original = DEFAULTS["fetcher"]["allow_private_targets"]
    DEFAULTS["fetcher"]["allow_private_targets"] = (allow, original[1])
    [(variable, value)] = LOOPBACK_ALLOW_ENV.items()
    previous = os.environ.get(variable)
    os.environ[variable] = value
    yield
    DEFAULTS["fetcher"]["allow_private_targets"] = original
    if previous is None:
        os.environ.pop(variable, None)
    else:
        os.environ[variable] = previous


# -- Redis (distributed mode): a real redis-server on a loopback port ------------------------


@pytest.fixture(scope="session")
def redis_server():
    """A `redis-server` for the whole session (no persistence, temp folder), or skip without one."""
    from tests.support.redis_server import RedisServer, redis_server_path

    if redis_server_path() is None:
        pytest.skip("redis-server is not installed (scripts/test.sh installs Debian's redis-server)")
    with RedisServer() as server:
        yield server


@pytest.fixture
def redis_url(redis_server) -> str:
    """The session's Redis, emptied for this test (restarted first if a test stopped it)."""
    import redis

    if redis_server.process is None or redis_server.process.poll() is not None:
        redis_server.start()
    client = redis.Redis.from_url(redis_server.url)
    try:
        client.flushall()
    finally:
        client.close()
    return redis_server.url
