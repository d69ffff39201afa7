"""Timelines, summaries, snapshots (incl. path traversal), status, /readyz and /metrics."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from bus.contracts import stable_id
from configs import Settings
from dashboard.app import create_app
from sightline.testing import messages as samples
from sinks.eventwrite import track_key
from sinks.store import Store

JPEG = b"\xff\xd8\xff\xe0" + b"\x00" * 64 + b"\xff\xd9"


@pytest.fixture
def app(make_settings: Callable[..., Settings]) -> Iterator[tuple[TestClient, Store, Settings]]:
    settings = make_settings()
    with TestClient(create_app(settings)) as c:
        yield c, c.app.state.sightline.store, settings  # type: ignore[attr-defined]


def _snap(settings: Settings, rel: str, data: bytes = JPEG) -> str:
    path = Path(settings.data_dir) / "snapshots" / rel
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    return f"snapshots/{rel}"


def test_timeline_and_summaries(app: tuple[TestClient, Store, Settings]) -> None:
    c, store, _ = app
    store.write([*samples.track("cam1", "red", "a", 0, 4), samples.summary("cam1", "what", 0, 10)])
    tl = c.get("/api/cameras/cam1/timeline").json()
    assert [(s["track_id"], s["start"], s["end"], s["ended"]) for s in tl["segments"]] == [
        ("a", "2026-01-01T12:00:00Z", "2026-01-01T12:00:04Z", True)
    ]
    assert tl["summaries"][0]["text"].startswith("A person walks")
    empty = c.get("/api/cameras/cam1/timeline", params={"since": "2026-01-02T00:00:00Z"}).json()
    assert empty["segments"] == [] and empty["summaries"] == []
    bad = c.get(
        "/api/cameras/cam1/timeline",
        params={"since": "2026-01-02T00:00:00Z", "until": "2026-01-01T00:00:00Z"},
    )
    assert bad.status_code == 422
    summaries = c.get("/api/summaries", params={"camera_id": "cam1"}).json()
    assert [s["summary_id"] for s in summaries] == [samples.summary("cam1", "what", 0, 10).summary_id]
    assert c.get("/api/summaries", params={"camera_id": "cam2"}).json() == []


def test_snapshots_by_event_track_and_camera(app: tuple[TestClient, Store, Settings]) -> None:
    c, store, settings = app
    ref = _snap(settings, "cam1/red/s-1.jpg")
    start = samples.event("cam1", "red", "a", "start", 1, 0.0, snapshot=ref)
    store.write([start])
    r = c.get(f"/api/snapshots/{start.event_id}")
    assert r.status_code == 200 and r.headers["content-type"] == "image/jpeg" and r.content == JPEG
    assert c.get(f"/api/snapshots/{track_key('cam1', 'red', 'a')}").content == JPEG
    assert c.get("/api/cameras/cam1/snapshot").content == JPEG
    assert c.get("/api/cameras/cam2/snapshot").status_code == 404
    assert c.get(f"/api/snapshots/{stable_id('nothing')}").status_code == 404


@pytest.mark.parametrize(
    "ref", ["snapshots/../../secret.jpg", "/etc/passwd", "snapshots/../sightline.db", "../outside.jpg"]
)
def test_snapshot_refs_cannot_escape(app: tuple[TestClient, Store, Settings], ref: str) -> None:
    c, store, settings = app
    (Path(settings.data_dir).parent / "secret.jpg").write_bytes(JPEG)
    (Path(settings.data_dir) / "outside.jpg").write_bytes(JPEG)
    ev = samples.event("cam1", "red", "evil", "start", 1, 0.0, snapshot=ref)  # a hostile message on the topic
    store.write([ev])
    r = c.get(f"/api/snapshots/{ev.event_id}")
    assert r.status_code == 404 and r.content != JPEG


def test_status_readyz_metrics(app: tuple[TestClient, Store, Settings]) -> None:
    c, store, _ = app
    store.write([samples.status("cam1", "streaming"), *samples.track("cam1", "red", "a", 0, 4)])
    assert c.get("/api/status").json()[0]["state"] == "streaming"
    ready = c.get("/readyz")
    assert ready.status_code == 200, ready.text
    assert ready.json()["checks"]["store"] == "ok" and ready.json()["checks"]["engine"] == "ok (baseline)"
    text = c.get("/metrics").text
    assert 'sightline_store_rows{table="events"} 3.0' in text
    assert 'sightline_fps_in{component="camera",id="cam1"} 10.0' in text
    assert 'sightline_http_requests_total{method="GET",route="/api/status",status="200"} 1.0' in text


def test_readyz_reports_an_unreachable_broker(make_settings: Callable[..., Settings]) -> None:
    settings = make_settings(bus={"bootstrap": "127.0.0.1:1"})
    with TestClient(create_app(settings)) as c:
        r = c.get("/readyz")
    assert r.status_code == 503
    assert r.json()["checks"]["broker"].startswith("unreachable") and r.json()["checks"]["store"] == "ok"


def test_store_outage_is_503_and_unreachable_store_refuses_to_serve(
    app: tuple[TestClient, Store, Settings], make_settings: Callable[..., Settings]
) -> None:
    from dashboard.server import serve
    from sinks.db import create_engine

    c, store, _ = app
    store.engine = create_engine("postgresql://postgres@127.0.0.1:1/gone")  # the database goes away
    r = c.get("/api/events")
    assert r.status_code == 503 and "unavailable" in r.json()["detail"]
    assert c.get("/readyz").json()["checks"]["store"].startswith("unreachable")
    assert serve(make_settings(store={"url": "postgresql://u:pw@127.0.0.1:1/x"})) == 1
