"""Auth, exposure, limits and credential redaction, through the real app in-process."""

from __future__ import annotations

import logging
from collections.abc import Callable

import pytest
from fastapi.testclient import TestClient

from bus.contracts import CameraSpec, ControlMessage, StatusUpdate
from bus.redact import RedactingFilter, install_log_redaction, redact_text, redact_url
from configs import Settings
from dashboard.app import create_app
from dashboard.auth import InsecureConfig
from dashboard.limits import RateLimiter
from dashboard.server import serve

VIEWER = "viewer-key-0123456789"
ADMIN = "admin-key-0123456789ab"
PASSWORD = "s3cr3t-Pa55"
KEYS = [{"key": VIEWER, "role": "viewer", "name": "ops"}, {"key": ADMIN, "role": "admin", "name": "root"}]


def _client(make_settings: Callable[..., Settings], **api: object) -> TestClient:
    return TestClient(create_app(make_settings(api={"api_keys": KEYS, **api})))


def test_no_key_is_401_with_a_clear_body(make_settings: Callable[..., Settings]) -> None:
    with _client(make_settings) as c:
        r = c.get("/api/events")
        assert r.status_code == 401
        assert "missing API key" in r.json()["detail"] and r.headers["www-authenticate"] == "Bearer"
        assert (
            c.get("/api/events", headers={"Authorization": "Bearer nope-nope-nope-nope"}).status_code == 401
        )
        assert c.get("/api/cameras").status_code == 401
        assert c.get("/metrics").status_code == 401
        assert c.get("/healthz").status_code == 200  # liveness stays open for orchestrators


def test_viewer_reads_but_cannot_write(make_settings: Callable[..., Settings]) -> None:
    with _client(make_settings) as c:
        as_viewer = {"Authorization": f"Bearer {VIEWER}"}
        assert c.get("/api/events", headers=as_viewer).status_code == 200
        assert c.get("/api/cameras", headers={"X-API-Key": VIEWER}).status_code == 200
        assert c.get("/metrics", headers=as_viewer).status_code == 200
        r = c.post("/api/cameras", json={"id": "c1", "url": "rtsp://h/x"}, headers=as_viewer)
        assert r.status_code == 403 and "needs `admin`" in r.json()["detail"]
        assert c.delete("/api/queries/q1", headers=as_viewer).status_code == 403
        # An admin gets past auth; with no broker configured the write is refused with a reason.
        r = c.post("/api/cameras", json={"id": "c1", "url": "rtsp://h/x"}, headers={"X-API-Key": ADMIN})
        assert r.status_code == 503 and "bus.bootstrap" in r.json()["detail"]


def test_query_string_key_only_where_browsers_need_it(make_settings: Callable[..., Settings]) -> None:
    with _client(make_settings) as c:
        assert c.get("/api/events", params={"api_key": VIEWER}).status_code == 401
        assert c.get("/api/snapshots/nothing", params={"api_key": VIEWER}).status_code == 404  # past auth


def test_refuses_to_start_exposed_without_keys(make_settings: Callable[..., Settings]) -> None:
    exposed = make_settings(api={"host": "0.0.0.0", "port": 8799})
    with pytest.raises(InsecureConfig, match="without API keys"):
        create_app(exposed)
    assert serve(exposed) == 2  # returns at once, nothing listening
    create_app(make_settings(api={"host": "0.0.0.0", "api_keys": KEYS}))  # with keys it is fine
    create_app(make_settings(api={"host": "::1"}))


def test_request_body_limit(make_settings: Callable[..., Settings]) -> None:
    with _client(make_settings, max_body_bytes=2048) as c:
        big = {"id": "c1", "url": "rtsp://h/" + "x" * 4000}
        r = c.post("/api/cameras", json=big, headers={"X-API-Key": ADMIN})
        assert r.status_code == 413 and "larger than 2048" in r.json()["detail"]

        def chunks():  # type: ignore[no-untyped-def]
            for _ in range(10):
                yield b"x" * 1000

        r = c.post(
            "/api/ask", content=chunks(), headers={"X-API-Key": ADMIN, "Content-Type": "application/json"}
        )
        assert r.status_code == 413


def test_camera_password_never_leaves(
    make_settings: Callable[..., Settings], caplog: pytest.LogCaptureFixture
) -> None:
    install_log_redaction()
    caplog.handler.addFilter(RedactingFilter())
    url = f"rtsp://admin:{PASSWORD}@10.1.2.3:554/live?token={PASSWORD}&ch=1"
    with _client(make_settings) as c, caplog.at_level(logging.DEBUG):
        store = c.app.state.sightline.store  # type: ignore[attr-defined]
        store.write(
            [ControlMessage(op="upsert", kind="camera", id="door", camera=CameraSpec(id="door", url=url))]
        )
        failed = StatusUpdate(
            component="camera", id="door", state="reconnecting", reason=f"cannot open {url}: 401"
        )
        store.write([failed])  # a worker quoting the URL in its error text
        h = {"X-API-Key": ADMIN}
        bodies = [
            c.get("/api/cameras", headers=h).text,
            c.get("/api/cameras/door", headers=h).text,
            c.post("/api/cameras", json={"id": "bad id!", "url": url}, headers=h).text,  # 422
            c.post(
                "/api/cameras", json={"id": "x", "url": url, "fps": 3}, headers=h
            ).text,  # 422, extra field
            c.patch("/api/cameras/door", json={"sample_fps": -1, "url": url}, headers=h).text,  # 422
            c.get("/metrics", headers=h).text,
            c.get("/api/status", headers=h).text,
        ]
        logging.getLogger("sightline.test").warning("cannot open %s", url)
    assert (
        c.get("/api/cameras/door", headers=h).json()["url"]
        == "rtsp://admin:***@10.1.2.3:554/live?token=***&ch=1"
    )
    for body in bodies:
        assert PASSWORD not in body
    assert "cannot open rtsp://admin:***@10.1.2.3" in bodies[-1]
    assert "cannot open rtsp://admin:***@" in caplog.text
    assert PASSWORD not in caplog.text


def test_redaction_helpers() -> None:
    assert redact_url("rtsp://u:p@h/x") == "rtsp://u:***@h/x"
    assert redact_url("https://TOKEN@h/x") == "https://***@h/x"
    assert redact_url("/videos/a.mp4") == "/videos/a.mp4"
    assert redact_url("http://h/x?password=a&b=2") == "http://h/x?password=***&b=2"
    assert redact_text("err: rtsp://u:pw@h:1/x failed") == "err: rtsp://u:***@h:1/x failed"


def test_rate_limiter_token_bucket() -> None:
    now = [0.0]
    rl = RateLimiter(2, clock=lambda: now[0])
    assert rl.acquire("a") == 0 and rl.acquire("a") == 0
    wait = rl.acquire("a")
    assert 29 < wait <= 30  # 2 per minute: one token every 30 s
    assert rl.acquire("b") == 0  # per caller
    now[0] = 30.0
    assert rl.acquire("a") == 0
    assert RateLimiter(0).acquire("a") == float("inf")
