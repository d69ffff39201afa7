"""Secrets at rest: one redaction for every spelling of a credential, private files, a masked
effective config, and an API that never publishes a masked camera URL (issue 18). The store side
(only masked URLs, older rows masked by migration 0002) is tests/unit/test_store_secrets.py."""

from __future__ import annotations

import json
import logging
import os
import stat
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
import yaml
from fastapi.testclient import TestClient
from test_badinput_api import FakeProducer

from bus.redact import RedactingFilter, redact_text, redact_url
from configs import Settings, load_settings
from dashboard.app import create_app
from sightline.runtime import split_secrets, write_effective_config

SECRET = "hunter2S3cret"

# (id, text, what must be left of it) — each spelling leaked through the old redaction.
SPELLINGS = [
    ("access_token", f"http://cam/x?access_token={SECRET}&ch=1", "access_token=***"),
    ("passwd", f"http://cam/x?passwd={SECRET}", "passwd=***"),
    ("user_pwd", f"http://cam/cgi?user=admin&user_pwd={SECRET}", "user_pwd=***"),
    ("upper-case", f"http://cam/x?PASSWORD={SECRET}", "PASSWORD=***"),
    ("vendor-authkey", f"http://cam/x?AuthKey={SECRET}", "AuthKey=***"),
    ("semicolon-password", f"rtsp://cam/live;user=admin;password={SECRET}", ";password=***"),
    ("token-only-userinfo", f"http://{SECRET}@cam/live", "http://***@cam/live"),
    ("user-and-password", f"rtsp://admin:{SECRET}@cam/live", "rtsp://admin:***@cam/live"),
    ("unparseable-port", f"rtsp://admin:{SECRET}@cam:99999999/x?token={SECRET}", "admin:***@"),
    ("unparseable-bracket", f"rtsp://admin:{SECRET}@[::1/x?token={SECRET}", "token=***"),
]


@pytest.mark.parametrize(("case", "url", "kept"), SPELLINGS, ids=[s[0] for s in SPELLINGS])
def test_every_spelling_of_a_credential_is_masked(case: str, url: str, kept: str) -> None:
    for out in (redact_url(url), redact_text(f"cannot open {url}: 401")):
        assert SECRET not in out and kept in out, out


def test_harmless_parameters_stay_readable() -> None:
    assert redact_url("http://cam/x?keyframes=1&signal=2&fps=5") == "http://cam/x?keyframes=1&signal=2&fps=5"


def test_a_logged_traceback_is_masked_too() -> None:
    record = logging.LogRecord("t", logging.ERROR, __file__, 1, "camera failed", None, None)
    try:
        raise OSError(f"cannot open rtsp://admin:{SECRET}@cam/live")
    except OSError:
        record.exc_info = sys.exc_info()
    RedactingFilter().filter(record)
    from lifecycle.process import JsonFormatter

    line = JsonFormatter().format(record)
    assert SECRET not in line and "rtsp://admin:***@cam/live" in line


def test_a_process_start_makes_its_files_private(tmp_path: Path) -> None:
    """An older data dir (0755, world-readable logs) is tightened, and new files are 0600."""
    data = tmp_path / "data"
    (data / "logs").mkdir(parents=True)
    old_log = data / "logs" / "ingest.log"
    old_log.write_text("x")
    for p, mode in ((data, 0o755), (data / "logs", 0o755), (old_log, 0o644)):
        p.chmod(mode)
    code = (
        "import sys, logging; from sightline.cli import start_process; from configs import load_settings;"
        f"start_process(load_settings(None, data_dir={str(data)!r}), 'test');"
        f"open({str(data / 'new.db')!r}, 'w').close();"
        f"logging.getLogger('x').warning('open rtsp://u:{SECRET}@h/ failed')"
    )
    run = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert run.returncode == 0, run.stderr
    modes = {p.name: stat.S_IMODE(p.stat().st_mode) for p in (data, data / "logs", old_log, data / "new.db")}
    assert modes == {"data": 0o700, "logs": 0o700, "ingest.log": 0o600, "new.db": 0o600}
    assert SECRET not in run.stderr and "rtsp://u:***@h/" in run.stderr  # redaction installed


def _secret_settings(tmp_path: Path) -> Settings:
    return load_settings(
        None,
        data_dir=str(tmp_path / "data"),
        api={"api_keys": [{"key": "admin-" + SECRET + "-key", "role": "admin"}]},
        store={
            "url": f"postgresql://sightline:{SECRET}@db:5432/sightline",
            "webhook_secret": SECRET,
            "webhook_urls": [f"https://hooks.example/x?token={SECRET}"],
            "mqtt_url": f"mqtt://user:{SECRET}@broker:1883",
        },
        engine={"type": "openai", "api_key": SECRET},
    )


def test_effective_config_masks_secrets_and_children_get_them_from_the_environment(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    settings = _secret_settings(tmp_path)
    path = tmp_path / "effective-config.yaml"
    path.write_text("old: world-readable\n")
    path.chmod(0o644)
    env = write_effective_config(settings, path)
    written = path.read_text()
    assert SECRET not in written and stat.S_IMODE(path.stat().st_mode) == 0o600
    assert yaml.safe_load(written)["store"]["url"] == "postgresql://sightline:***@db:5432/sightline"
    assert set(env) == {
        "SIGHTLINE_API__API_KEYS",
        "SIGHTLINE_STORE__URL",
        "SIGHTLINE_STORE__WEBHOOK_SECRET",
        "SIGHTLINE_STORE__WEBHOOK_URLS",
        "SIGHTLINE_STORE__MQTT_URL",
        "SIGHTLINE_ENGINE__API_KEY",
    }
    for name, value in env.items():  # what a child process sees
        monkeypatch.setenv(name, value)
    assert load_settings(path) == settings


def test_settings_without_secrets_need_no_environment(tmp_path: Path) -> None:
    data, env = split_secrets(load_settings(None, data_dir=str(tmp_path)))
    assert env == {} and data["store"]["url"].startswith("sqlite:///")


@pytest.fixture
def api(make_settings: Callable[..., Settings]) -> Iterator[tuple[TestClient, FakeProducer]]:
    app = create_app(make_settings(bus={"bootstrap": "127.0.0.1:9"}))
    producer = app.state.sightline._producer = FakeProducer()
    with TestClient(app, raise_server_exceptions=False) as c:
        yield c, producer


def test_a_patch_cannot_publish_the_masked_url(
    api: tuple[TestClient, FakeProducer], monkeypatch: pytest.MonkeyPatch
) -> None:
    """When the control topic cannot give the real URL (here: it does not have the camera), a PATCH
    without `url` is refused rather than publishing `***`. With the topic, the PATCH keeps the real
    URL: tests/broker/test_sink_api_control.py::test_camera_and_query_lifecycle."""
    import bus.control

    monkeypatch.setattr(bus.control, "read_control_state", lambda *_a, **_k: bus.control.ControlState())
    client, producer = api
    url = f"rtsp://admin:{SECRET}@10.0.0.5/live"
    assert client.post("/api/cameras", json={"id": "door", "url": url}).status_code == 201
    assert producer.sent[-1].camera is not None and producer.sent[-1].camera.url == url  # the topic has it
    r = client.patch("/api/cameras/door", json={"name": "Front door"})
    assert r.status_code == 422 and "send the full `url`" in r.text
    assert len(producer.sent) == 1  # nothing with *** went to the control topic
    r = client.patch("/api/cameras/door", json={"name": "Front door", "url": url})
    assert r.status_code == 200 and r.json()["url"] == "rtsp://admin:***@10.0.0.5/live"
    assert producer.sent[-1].camera is not None and producer.sent[-1].camera.url == url
    assert json.loads(client.get("/api/cameras/door").text)["name"] == "Front door"


def test_a_data_dir_owned_by_someone_else_does_not_stop_the_process(tmp_path: Path) -> None:
    """A mounted volume the process may write to but not chmod (Kubernetes fsGroup) is left as is."""
    from lifecycle import process

    calls: list[Path] = []

    def refuse(self: Path, mode: int) -> None:
        calls.append(self)
        raise PermissionError(1, "Operation not permitted")

    (tmp_path / "logs").mkdir()
    (tmp_path / "logs" / "sink.log").write_text("x")
    old = os.umask(0o022)
    try:
        with pytest.MonkeyPatch.context() as mp:
            mp.setattr(Path, "chmod", refuse)
            process.private_files(tmp_path)  # no exception
    finally:
        os.umask(old)
    assert calls == [tmp_path, tmp_path / "logs", tmp_path / "logs" / "sink.log"]
