"""`termshift serve --with-scheduler` as a real process: viewer and scheduler together.

The small-deployment setup end to end: the command starts the viewer and the
scheduler, a scheduled tracking run fetches a page from a local server and records
it, the run's index refresh makes the document visible in the viewer (the viewer's
own refresh is switched off, so only the run can have indexed it), and SIGTERM ends
the process cleanly with both repositories intact.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

from tests.conftest import TEST_FETCH_ALLOW
from tests.support.servers import LocalServer, html_page

REPO_ROOT = Path(__file__).resolve().parent.parent
SERVICE, TERMS_TYPE = "ACME", "Terms of Service"
DOCUMENT_PATH = "/ACME/Terms%20of%20Service"
TOTAL_WAIT = 45.0  # seconds for the process to start, run once and show the document
STOP_WAIT = 15.0  # seconds for the process to end after SIGTERM


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def get(url: str) -> tuple[int, bytes]:
    """Status and body of a GET; (0, b"") while nothing listens yet."""
    try:
        with urllib.request.urlopen(url, timeout=5) as response:
            return response.status, response.read()
    except urllib.error.HTTPError as error:
        return error.code, error.read()
    except OSError:
        return 0, b""


def completed_run(base: str) -> dict[str, Any] | None:
    status, body = get(f"{base}/status.json")
    if status != 200:
        return None
    run = json.loads(body).get("last_run")
    return run if run and run.get("status") == "completed" else None


def git_fsck(repository: Path) -> None:
    result = subprocess.run(["git", "-C", str(repository), "fsck", "--strict", "--no-progress"],
                            capture_output=True, text=True, timeout=60, check=False)
    assert result.returncode == 0, f"{repository}: {result.stdout}{result.stderr}"


def test_serve_with_scheduler_tracks_indexes_and_stops_cleanly_on_sigterm(tmp_path: Path) -> None:
    declarations, data, log_path = tmp_path / "declarations", tmp_path / "data", tmp_path / "serve.log"
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    environment = {name: value for name, value in os.environ.items() if not name.startswith("TERMSHIFT_")}
    environment.update({
        "PYTHONPATH": str(REPO_ROOT),
        "TERMSHIFT_SCHEDULE_TRACKING": "every 2s",
        "TERMSHIFT_SCHEDULE_DELIVERIES": "0",
        "TERMSHIFT_SCHEDULE_DATASET": "",  # no weekly export in the middle of the test
        "TERMSHIFT_FETCHER_HOST_DELAY": "0",
        "TERMSHIFT_FETCHER_ALLOW_PRIVATE_TARGETS": ",".join(TEST_FETCH_ALLOW),  # pages come from loopback
    })
    with LocalServer() as pages:
        pages.route("/terms", lambda exchange: exchange.send(200, html_page("Terms", "Be nice to each other.")))
        declarations.mkdir()
        (declarations / f"{SERVICE}.json").write_text(json.dumps({
            "name": SERVICE, "terms": {TERMS_TYPE: {"fetch": pages.url("/terms"), "select": "main"}},
        }), encoding="utf-8")
        with log_path.open("wb") as log_file:
            process = subprocess.Popen(
                [sys.executable, "-m", "termshift.cli", "serve", "--with-scheduler", "--data", str(data),
                 "--declarations", str(declarations), "--port", str(port), "--refresh-interval", "0"],
                cwd=tmp_path, env=environment, stdout=log_file, stderr=subprocess.STDOUT,
            )
        try:
            deadline = time.monotonic() + TOTAL_WAIT
            run = page = None
            while time.monotonic() < deadline and process.poll() is None:
                run = run or completed_run(base)
                if run:
                    page = get(base + DOCUMENT_PATH)
                    if page[0] == 200:
                        break
                time.sleep(0.2)
            output = log_path.read_text(errors="replace")
            assert process.poll() is None, f"serve ended early ({process.returncode}):\n{output[-3000:]}"
            assert run is not None, f"no completed run within {TOTAL_WAIT:g} s:\n{output[-3000:]}"
            assert run["counts"]["new_versions"] == 1
            assert page is not None and page[0] == 200, f"document page: {page and page[0]}\n{output[-3000:]}"
            assert b"First record" in page[1]  # the timeline shows the recorded version
        finally:
            process.send_signal(signal.SIGTERM)
            try:
                code = process.wait(timeout=STOP_WAIT)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
                raise AssertionError(f"serve did not end within {STOP_WAIT:g} s of SIGTERM") from None
    output = log_path.read_text(errors="replace")
    # start_background_scheduler turns SIGTERM into what Ctrl-C does: the server stops, the
    # scheduler shuts down at exit, and the command ends normally.
    assert code == 0, f"exit code {code}:\n{output[-3000:]}"
    assert "Traceback" not in output, output[-3000:]
    assert "(waitress, " in output and "Server stopped." in output  # the production server, stopped cleanly
    git_fsck(data / "snapshots")
    git_fsck(data / "versions")
