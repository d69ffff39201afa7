"""GET /api/events through the real app (in-process ASGI), reading a real SQLite store."""

from __future__ import annotations

from collections.abc import Callable, Iterator

import pytest
from fastapi.testclient import TestClient

from configs import Settings
from dashboard.app import create_app
from sightline.testing import messages as samples


@pytest.fixture
def client(make_settings: Callable[..., Settings]) -> Iterator[TestClient]:
    app = create_app(make_settings())
    with TestClient(app) as c:
        yield c


def test_events_list_newest_first_with_original_pixels(client: TestClient) -> None:
    store = client.app.state.sightline.store  # type: ignore[attr-defined]
    store.write([*samples.track("cam1", "red", "a", 0, 4), *samples.track("cam2", "red", "b", 10, 12)])
    body = client.get("/api/events", params={"limit": 5}).json()
    assert [e["pts_s"] for e in body["items"]] == [12.0, 11.0, 10.0, 4.0, 2.0]
    first = body["items"][0]
    assert first["bbox"] == [300.0, 60.0, 400.0, 310.0]
    assert first["bbox_norm"] == pytest.approx([300 / 640, 60 / 360, 400 / 640, 310 / 360])
    assert first["engine"] == "baseline" and first["schema"] == "sightline.object_event/1"
    rest = client.get("/api/events", params={"limit": 5, "cursor": body["next_cursor"]}).json()
    assert [e["pts_s"] for e in rest["items"]] == [0.0] and rest["next_cursor"] is None


def test_events_filters_and_bad_input(client: TestClient) -> None:
    store = client.app.state.sightline.store  # type: ignore[attr-defined]
    store.write([*samples.track("cam1", "red", "a", 0, 4), *samples.track("cam2", "blue", "b", 10, 12)])
    only = client.get("/api/events", params={"camera_id": "cam2", "phase": "start"}).json()["items"]
    assert [(e["camera_id"], e["phase"]) for e in only] == [("cam2", "start")]
    since = client.get("/api/events", params={"since": "2026-01-01T12:00:05Z"}).json()["items"]
    assert {e["camera_id"] for e in since} == {"cam2"}
    assert client.get("/api/events", params={"cursor": "garbage"}).status_code == 400
    assert client.get("/api/events", params={"limit": 0}).status_code == 422
    assert client.get("/api/events", params={"phase": "middle"}).status_code == 422


def test_health_and_page(client: TestClient) -> None:
    assert client.get("/healthz").json() == {"status": "ok"}
    page = client.get("/")
    assert page.status_code == 200 and "Sightline" in page.text
    assert client.get("/static/app.js").status_code == 200
