"""`termshift serve` as a user runs it: a real process, a real port, a real HTTP client."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

from tests.support.archive_factory import build_sample_archive

ROOT = Path(__file__).resolve().parent.parent


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def serve(*arguments: str, cwd: Path) -> subprocess.Popen:
    environment = {**os.environ, "PYTHONPATH": str(ROOT), "XDG_CACHE_HOME": str(cwd / "cache")}
    return subprocess.Popen([sys.executable, "-m", "termshift.cli", "serve", *arguments], cwd=cwd,
                            env=environment, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)


def get_json(url: str, timeout: float = 60) -> dict:
    deadline = time.monotonic() + timeout
    while True:
        try:
            with urllib.request.urlopen(url, timeout=2) as response:
                return json.loads(response.read())
        except OSError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.1)


def test_serve_a_data_folder_with_declarations_and_tracking_status(tmp_path):
    sample = build_sample_archive(tmp_path)
    port = free_port()
    process = serve("--data", str(sample.data), "--declarations", str(sample.declarations),
                    "--host", "127.0.0.1", "--port", str(port), cwd=tmp_path)
    try:
        service = get_json(f"http://127.0.0.1:{port}/Acme.json")
        assert service["name"] == "Acme Corp"
        states = {d["terms_type"]: d["status"]["state"] for d in service["documents"]}
        assert states == {"Imprint": "unknown", "Privacy Policy": "failing", "Terms of Service": "ok"}
        # The snapshots repository of the data folder is served too.
        snapshot = get_json(f"http://127.0.0.1:{port}/-/snapshot/{sample.ids['privacy_snapshot_1']}.json")
        assert snapshot["service"]["id"] == "Acme"
    finally:
        process.terminate()
        output = process.communicate(timeout=10)[0].decode()
    assert "Index ready in" in output and f"Serving on http://127.0.0.1:{port}/ (waitress, " in output
    assert (sample.data / "index.sqlite").is_file()  # the index lives in the data folder


def test_serve_names_a_missing_repository(tmp_path):
    process = serve("--versions", str(tmp_path / "nowhere"), "--port", str(free_port()), cwd=tmp_path)
    output = process.communicate(timeout=60)[0].decode()
    assert process.returncode == 2
    assert "nowhere" in output and "no such directory" in output


def test_serve_refuses_data_and_versions_together(tmp_path):
    process = serve("--data", str(tmp_path), "--versions", str(tmp_path), cwd=tmp_path)
    output = process.communicate(timeout=60)[0].decode()
    assert process.returncode == 2 and "either --data or --versions" in output


def get(url: str) -> tuple[int, str]:
    try:
        with urllib.request.urlopen(url, timeout=10) as response:
            return response.status, response.read().decode()
    except urllib.error.HTTPError as error:
        return error.code, error.read().decode()


def test_serve_starts_before_anything_is_recorded_and_picks_the_archive_up(tmp_path):
    """Two-process deployment: `serve` may start before the scheduler's first run."""
    data = tmp_path / "data"  # does not exist yet
    port = free_port()
    process = serve("--data", str(data), "--host", "127.0.0.1", "--port", str(port), "--refresh-interval", "0.2",
                    cwd=tmp_path)
    base = f"http://127.0.0.1:{port}"
    try:
        home = get_json(f"{base}/index.json")
        assert home["services"] == []
        status, page = get(f"{base}/")
        assert status == 200 and "Nothing recorded yet" in page
        assert get(f"{base}/healthz")[0] in (200, 503)  # the probe answers, whatever it says
        build_sample_archive(tmp_path)  # the first tracking run records into the data folder
        deadline = time.monotonic() + 60
        while True:
            services = {service["id"] for service in get_json(f"{base}/index.json")["services"]}
            if "Acme" in services and get(f"{base}/Acme/Privacy%20Policy.json")[0] == 200:
                break
            assert time.monotonic() < deadline, "the archive was not picked up"
            time.sleep(0.2)
        document = get_json(f"{base}/Acme/Privacy%20Policy.json")
        deadline = time.monotonic() + 60
        while len(document["versions"]) < 3:  # the rest of the run may still be being indexed
            assert time.monotonic() < deadline
            time.sleep(0.2)
            document = get_json(f"{base}/Acme/Privacy%20Policy.json")
        assert "Nothing recorded yet" not in get(f"{base}/")[1]
    finally:
        process.terminate()
        output = process.communicate(timeout=10)[0].decode()
    assert process.returncode != 2, output
    assert "Nothing recorded yet" in output
