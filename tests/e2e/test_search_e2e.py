"""Must-show: a replayed clip with a red walker and a blue box, described by the scripted engine,
is searchable: "someone wearing red" finds the walker's track first, with its snapshot."""

from __future__ import annotations

from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from bus.contracts import QuerySpec
from configs import load_settings
from dashboard.app import create_app
from glm45v_engine.prompts import DESCRIBE_MARKER
from sightline.replay.run import run_replay
from sightline.samples import Figure, generate_clip
from sightline.testing.scripted_scenario import STANDIN_MODEL
from sightline.testing.scripted_server import ScriptedServer

pytestmark = pytest.mark.e2e
RED, BLUE = (30, 30, 220), (220, 60, 30)  # BGR
COLOURS = [
    {"name": "red", "bgr": list(RED), "label": "person"},
    {"name": "blue", "bgr": list(BLUE), "label": "bag", "head_ratio": 0.0},
]


@pytest.fixture(scope="module")
def walker_and_box(tmp_path_factory: pytest.TempPathFactory) -> Path:
    walker = Figure(RED, 1.0, 7.0, (0.15, 0.55), (0.85, 0.55))
    box = Figure(BLUE, 0.0, 8.0, (0.5, 0.2), (0.5, 0.2), size=(0.1, 0.12), label="bag")
    return generate_clip(
        tmp_path_factory.mktemp("clips") / "walker_box.mp4", duration_s=8, fps=10, figures=[walker, box]
    )


def test_replay_then_search_finds_the_red_walker_first(walker_and_box: Path, tmp_path: Path) -> None:
    query = QuerySpec(id="things", text="people and objects", describe=True)
    with ScriptedServer({"mode": "colour", "colours": COLOURS}) as glm:
        settings = load_settings(
            None,
            data_dir=str(tmp_path),
            ingest={"max_width": 320},
            engine={"type": "openai", "base_url": glm.base_url, "api_key": "t", "model": "glm-4.5v"},
        )
        result = run_replay(walker_and_box, settings, [query], camera_id="door", store_url=settings.store_url)
        describe_calls = [r for r in glm.requests if DESCRIBE_MARKER in str(r)]
    starts = [e for e in result.events if e.phase == "start"]
    assert {e.label for e in starts} == {"person", "bag"}
    described = {e.label: e.description for e in result.events if e.description}
    assert described == {"person": "a person in red", "bag": "a blue bag"}
    assert {e.description_engine for e in result.events if e.description} == {f"openai:{STANDIN_MODEL}"}
    assert len(describe_calls) == len(starts)  # one per track: the first view was the best one
    with TestClient(create_app(settings)) as c:
        r = c.get("/api/search", params={"q": "someone wearing red"})
        assert r.status_code == 200, r.text
        hits = r.json()["hits"]
        assert hits[0]["kind"] == "track" and hits[0]["label"] == "person"
        assert hits[0]["description"] == "a person in red" and hits[0]["camera_id"] == "door"
        snap = c.get(hits[0]["snapshot_url"])
        assert snap.status_code == 200 and snap.content[:2] == b"\xff\xd8"
        blue = c.get("/api/search", params={"q": "blue bag"}).json()["hits"]
        assert blue[0]["label"] == "bag"
