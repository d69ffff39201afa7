"""POST /api/ask with scope history against the scripted engine: the right events are cited, an
unknown handle is flagged (never a link), and no hits means no model call."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import pytest
from fastapi.testclient import TestClient

from bus.contracts import CameraSpec
from configs import Settings
from dashboard.app import create_app
from glm45v_engine.prompts import HISTORY_MARKER
from sightline.testing import messages as samples
from sightline.testing.scripted_server import ScriptedServer
from sinks.eventwrite import track_key
from sinks.store import Store

COLOURS = [
    {"name": "red", "bgr": [30, 30, 220], "label": "person"},
    {"name": "blue", "bgr": [220, 60, 30], "label": "bag"},
]
WALKER, BAG = track_key("door", "things", "w"), track_key("door", "things", "b")


@pytest.fixture
def glm() -> Iterator[ScriptedServer]:
    with ScriptedServer({"mode": "colour", "colours": COLOURS}) as srv:
        yield srv


@pytest.fixture
def client(
    glm: ScriptedServer, make_settings: Callable[..., Settings]
) -> Iterator[tuple[TestClient, Settings]]:
    settings = make_settings(
        engine={"type": "openai", "base_url": glm.base_url, "api_key": "t", "model": "glm-4.5v"},
        api={"ask_token_budget": 100_000},
    )
    snap = Path(settings.data_dir) / "snapshots" / "w.jpg"
    snap.parent.mkdir(parents=True, exist_ok=True)
    img = np.full((120, 80, 3), 90, np.uint8)
    img[20:100, 20:60] = (30, 30, 220)
    snap.write_bytes(cv2.imencode(".jpg", img)[1].tobytes())
    with TestClient(create_app(settings)) as c:
        state = c.app.state.sightline  # type: ignore[attr-defined]
        store: Store = state.store
        store.search = state.search()
        store.put_camera(CameraSpec(id="door", url="rtsp://h/door", name="Front door"))
        for tid, label, text, t0, snapshot in (
            ("w", "person", "a person in red", 0.0, "snapshots/w.jpg"),
            ("b", "bag", "a blue bag", 30.0, None),
        ):
            evs = [
                samples.event("door", "things", tid, ph, i, t0 + i, label=label, snapshot=snapshot)
                for i, ph in enumerate(("start", "end"))
            ]
            store.write(
                [e.model_copy(update={"description": text, "description_engine": "openai"}) for e in evs]
            )
        yield c, settings


def ask(c: TestClient, **body: Any) -> Any:
    r = c.post("/api/ask", json={"scope": "history", **body})
    assert r.status_code == 200, r.text
    return r.json()


def test_the_answer_cites_the_right_events(client: tuple[TestClient, Settings], glm: ScriptedServer) -> None:
    c, _ = client
    out = ask(c, question="When did someone in red come to the door?")
    assert out["model_called"] is True
    assert out["citations"] == [WALKER] and out["unknown_citations"] == []
    assert out["handles"]["E1"] == WALKER and "[E1]" in out["answer"]
    assert out["images"] == [WALKER]  # the walker's snapshot went along; the bag has none
    assert out["tokens_in"] > 0
    [req] = glm.requests
    sent = str(req)
    assert HISTORY_MARKER in sent and "a person in red" in sent and "image_url" in sent
    blue = ask(c, question="was there anything blue?")
    assert blue["citations"] == [BAG]


def test_an_unknown_citation_is_flagged_not_linked(
    client: tuple[TestClient, Settings], glm: ScriptedServer
) -> None:
    c, _ = client
    glm.set_scenario({"steps": [{"text": "Someone in red came by [E1]; also see [E42] and [ E1 ]."}]})
    out = ask(c, question="someone in red?")
    assert out["citations"] == [out["handles"]["E1"]]
    assert out["unknown_citations"] == ["E42"]
    assert "E42" not in out["handles"]


def test_no_hits_means_no_model_call(client: tuple[TestClient, Settings], glm: ScriptedServer) -> None:
    c, _ = client
    out = ask(c, question="xqzvbw qqqq")
    assert out["model_called"] is False and out["hits"] == [] and out["citations"] == []
    assert "nothing" in out["answer"].lower()
    out = ask(c, question="someone in red", since="2030-01-01T00:00:00Z")  # nothing in that range
    assert out["model_called"] is False
    assert glm.requests == []


@pytest.mark.parametrize(
    ("body", "status"),
    [
        ({"scope": "history", "question": "red?", "camera_id": "nowhere"}, 404),
        ({"scope": "camera", "question": "red?"}, 422),
        ({"scope": "history", "question": ""}, 422),
        (
            {
                "scope": "history",
                "question": "red",
                "since": "2026-01-02T00:00:00Z",
                "until": "2026-01-01T00:00:00Z",
            },
            422,
        ),
        ({"scope": "everything", "question": "red?"}, 422),
    ],
)
def test_bad_history_questions_are_4xx(
    client: tuple[TestClient, Settings], glm: ScriptedServer, body: dict[str, Any], status: int
) -> None:
    c, _ = client
    assert c.post("/api/ask", json=body).status_code == status
    assert glm.requests == []


def test_the_ask_budget_applies(glm: ScriptedServer, make_settings: Callable[..., Settings]) -> None:
    settings = make_settings(
        engine={"type": "openai", "base_url": glm.base_url, "api_key": "t", "model": "glm-4.5v"},
        api={"ask_token_budget": 1},
    )
    with TestClient(create_app(settings)) as c:
        state = c.app.state.sightline  # type: ignore[attr-defined]
        state.store.search = state.search()
        state.store.write(samples.track("cam1", "red", "t1", 0, 4))
        assert c.post("/api/ask", json={"scope": "history", "question": "person in red"}).status_code == 200
        r = c.post("/api/ask", json={"scope": "history", "question": "person in red"})
        assert r.status_code == 429 and "budget" in r.json()["detail"]
