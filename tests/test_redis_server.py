"""The Redis the distributed tests run against: a real redis-server, on loopback, without persistence."""

from __future__ import annotations

import pytest

redis = pytest.importorskip("redis")

pytestmark = pytest.mark.redis


def test_a_real_server_on_loopback_without_persistence(redis_server, redis_url):
    client = redis.Redis.from_url(redis_url)
    try:
        assert redis_url.startswith("redis://127.0.0.1:")
        assert client.ping()
        assert client.config_get("save") == {"save": ""}
        assert client.config_get("appendonly") == {"appendonly": "no"}
        assert client.info("server")["redis_version"]
    finally:
        client.close()


def test_each_test_starts_empty_and_a_stopped_server_comes_back_on_its_port(redis_server, redis_url):
    client = redis.Redis.from_url(redis_url, socket_timeout=2)
    try:
        assert client.dbsize() == 0
        client.set("left-over", "1")
        port = redis_server.port
        redis_server.stop()
        with pytest.raises(redis.ConnectionError):
            client.ping()
        redis_server.start()
        assert redis_server.port == port
        assert client.ping()
        assert client.get("left-over") is None  # nothing persisted
    finally:
        client.close()
