"""A real Redis server for tests: Debian's `redis-server` on a free loopback port.

    with RedisServer() as server:
        client = redis.Redis.from_url(server.url)

No persistence (no RDB, no AOF), its files in a temporary folder, stopped (and the
folder removed) on exit. `stop()` and `start()` again on the same port let a test take
the broker down and bring it back. The pytest fixtures are in tests/conftest.py
(`redis_server`, session-wide; `redis_url`, emptied before each test); tests that
need Redis are skipped when `redis-server` is not installed (`scripts/test.sh`
installs it).
"""

from __future__ import annotations

import shutil
import socket
import subprocess
import tempfile
import time
from pathlib import Path

__all__ = ["RedisServer", "redis_server_path"]


def redis_server_path() -> str | None:
    """The `redis-server` executable, or None when it is not installed."""
    return shutil.which("redis-server") or next(
        (path for path in ("/usr/bin/redis-server", "/usr/sbin/redis-server") if Path(path).is_file()), None)


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


class RedisServer:
    """One `redis-server` process on 127.0.0.1, without persistence."""

    def __init__(self, executable: str | None = None) -> None:
        executable = executable or redis_server_path()
        if executable is None:
            raise FileNotFoundError("redis-server is not installed (scripts/test.sh installs it)")
        self.executable = executable
        self.port = 0
        self.process: subprocess.Popen[bytes] | None = None
        self._folder: Path | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self, attempts: int = 5) -> RedisServer:
        """Start the server (on the same port as before after a `stop()`); wait until it answers."""
        if self._folder is None:
            self._folder = Path(tempfile.mkdtemp(prefix="termshift-redis-"))
        last_error = "no answer"
        for _attempt in range(attempts):
            port = self.port or _free_port()  # a free port may be taken before the server binds it: retried
            self.process = subprocess.Popen(
                [self.executable, "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no",
                 "--dir", str(self._folder), "--daemonize", "no", "--logfile", "", "--loglevel", "warning",
                 "--protected-mode", "yes", "--databases", "1"],
                stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
            )
            if self._wait_ready(port):
                self.port = port
                return self
            self.process.kill()
            last_error = self.process.communicate()[1].decode("utf-8", "replace").strip() or last_error
            self.process = None
            time.sleep(0.2)
        raise RuntimeError(f"redis-server did not start: {last_error}")

    def _wait_ready(self, port: int, timeout: float = 10.0) -> bool:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            assert self.process is not None
            if self.process.poll() is not None:
                return False
            try:
                with socket.create_connection(("127.0.0.1", port), timeout=0.5) as connection:
                    connection.sendall(b"PING\r\n")
                    if connection.recv(16).startswith(b"+PONG"):
                        return True
            except OSError:
                pass
            time.sleep(0.02)
        return False

    def stop(self) -> None:
        """Stop the server at once (SIGKILL: nothing to save anyway); the port is kept for `start()`."""
        if self.process is not None:
            self.process.kill()
            self.process.wait()
            if self.process.stderr is not None:
                self.process.stderr.close()
            self.process = None

    def close(self) -> None:
        self.stop()
        if self._folder is not None:
            shutil.rmtree(self._folder, ignore_errors=True)
            self._folder = None

    def __enter__(self) -> RedisServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.close()
