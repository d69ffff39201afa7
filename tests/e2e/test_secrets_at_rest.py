"""After a real `sightline up` with a password-protected camera, the password (and the API keys and
webhook secret given in the environment) is in no file under data_dir, and no file there is readable
by anyone but its owner. The control topic is the one place with credentials (docs/deploy.md); the
embedded broker keeps it in memory, so nothing under data_dir is exempt."""

from __future__ import annotations

import json
import os
import signal
import stat
import subprocess
import sys
from pathlib import Path

import httpx
import pytest

from bus.broker import free_port

from stackkit import wait_for

pytestmark = pytest.mark.e2e
PASSWORD = "Hunter2-at-rest-5e1f"
ADMIN = "admin-key-at-rest-77c3d9a1"
HOOK_SECRET = "hook-secret-at-rest-0b2e"


def test_no_secret_at_rest_under_data_dir(tmp_path: Path) -> None:
    data, port, dead = tmp_path / "data", free_port(), free_port()
    env = {
        **os.environ,
        "SIGHTLINE_BUS__EMBEDDED__PORT": "0",
        "SIGHTLINE_API__API_KEYS": json.dumps([{"key": ADMIN, "role": "admin"}]),
        "SIGHTLINE_STORE__WEBHOOK_SECRET": HOOK_SECRET,
    }
    argv = [sys.executable, "-m", "sightline.cli", "up", "--no-sample", "--port", str(port)]
    up = subprocess.Popen(
        [*argv, "--data-dir", str(data)], env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
    )
    api, h = f"http://127.0.0.1:{port}", {"X-API-Key": ADMIN}
    url = f"rtsp://admin:{PASSWORD}@127.0.0.1:{dead}/live?access_token={PASSWORD}&channel=1"
    try:
        wait_for(lambda: _get(f"{api}/healthz") is not None, 60, "the API")
        r = httpx.post(f"{api}/api/cameras", json={"id": "door", "url": url}, headers=h, timeout=10)
        assert r.status_code == 201, r.text

        def camera_failing() -> bool:  # ingest tried it, logged it and reported why it failed
            cam = _get(f"{api}/api/cameras/door", h)
            return bool(cam and cam.get("status") and cam["status"].get("reason"))

        wait_for(camera_failing, 60, "the camera's failure status")
        cam = _get(f"{api}/api/cameras/door", h)
        assert cam is not None and PASSWORD not in json.dumps(cam)
    finally:
        up.send_signal(signal.SIGINT)
        out, _ = up.communicate(timeout=60)
    assert up.returncode == 0, out
    assert "door" in (data / "logs" / "ingest.log").read_text()  # ingest did log this camera

    leaks, loose = [], []
    for path in [data, *data.rglob("*")]:
        mode = stat.S_IMODE(path.lstat().st_mode)
        if mode & 0o077:
            loose.append(f"{path.relative_to(tmp_path)} {oct(mode)}")
        if path.is_file():
            blob = path.read_bytes()
            leaks += [
                f"{path.relative_to(tmp_path)}: {s}"
                for s in (PASSWORD, ADMIN, HOOK_SECRET)
                if s.encode() in blob
            ]
    assert leaks == []
    assert loose == []
    assert (data / "sightline.db").exists() and (data / "effective-config.yaml").exists()


def _get(url: str, headers: dict[str, str] | None = None) -> dict[str, object] | None:
    try:
        r = httpx.get(url, headers=headers, timeout=2)
    except httpx.HTTPError:
        return None
    return r.json() if r.status_code == 200 else None
