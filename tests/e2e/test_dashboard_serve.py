"""`sightline serve` as a real process: camera passwords appear in no response and no log line,
and a SIGTERM stop exits 0."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from bus.broker import free_port

pytestmark = [pytest.mark.e2e, pytest.mark.broker]
PASSWORD = "Zq8-very-secret"


def test_serve_process_never_logs_a_password_and_stops_cleanly(
    kafka_bootstrap: str, topic_prefix: str, tmp_path: Path
) -> None:
    port = free_port()
    env = {
        **os.environ,
        "SIGHTLINE_LOG_LEVEL": "DEBUG",
        "SIGHTLINE_DATA_DIR": str(tmp_path / "data"),
        "SIGHTLINE_BUS__TOPIC_PREFIX": topic_prefix,
    }
    log_path = tmp_path / "serve.log"
    with open(log_path, "wb") as log:
        proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "sightline.cli",
                "serve",
                "--port",
                str(port),
                "--bootstrap",
                kafka_bootstrap,
            ],
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                if httpx.get(f"{base}/healthz", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            assert proc.poll() is None and time.monotonic() < deadline, log_path.read_text()
            time.sleep(0.2)
        url = f"rtsp://admin:{PASSWORD}@192.0.2.10:554/h264?password={PASSWORD}"
        bodies = [
            httpx.post(f"{base}/api/cameras", json={"id": "gate", "url": url}, timeout=15),
            httpx.get(f"{base}/api/cameras", timeout=5),
            httpx.get(f"{base}/api/cameras/gate", timeout=5),
            httpx.patch(f"{base}/api/cameras/gate", json={"url": f"concat:{url}"}, timeout=5),
            httpx.post(f"{base}/api/cameras", json={"id": "gate 2", "url": url}, timeout=5),
            httpx.get(f"{base}/metrics", timeout=5),
        ]
        assert [r.status_code for r in bodies] == [201, 200, 200, 422, 422, 200]
        assert bodies[2].json()["url"] == "rtsp://admin:***@192.0.2.10:554/h264?password=***"
        for r in bodies:
            assert PASSWORD not in r.text
    finally:
        proc.send_signal(signal.SIGTERM)
        rc = proc.wait(15)
    logs = log_path.read_text()
    assert rc == 0, logs
    assert "dashboard on http://127.0.0.1" in logs  # the log is really captured
    assert PASSWORD not in logs
