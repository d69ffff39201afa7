"""GET /api/search over HTTP: shape, filters, snapshots, and bad input (4xx or empty, never 5xx);
the `openai` embedder against the scripted server's /v1/embeddings."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from bus.contracts import CameraSpec
from configs import Settings
from configs.search import OpenAIEmbedderConfig, SearchConfig
from dashboard.app import create_app
from sightline.testing import messages as samples
from sightline.testing.scripted_server import ScriptedServer
from sinks.embedders import EmbedderError, OpenAIEmbedder
from sinks.eventwrite import track_key
from sinks.search import SearchIndex
from sinks.search_rank import SearchFilter
from sinks.store import Store

JPEG = b"\xff\xd8\xff\xe0" + b"\x00" * 64 + b"\xff\xd9"


@pytest.fixture
def client(make_settings: Callable[..., Settings]) -> Iterator[tuple[TestClient, Store, Settings]]:
    settings = make_settings()
    with TestClient(create_app(settings)) as c:
        state = c.app.state.sightline  # type: ignore[attr-defined]
        store: Store = state.store
        store.search = state.search()  # the sink's job in production: index what is written
        yield c, store, settings


def fill(store: Store, settings: Settings) -> None:
    snap = Path(settings.data_dir) / "snapshots" / "walker.jpg"
    snap.parent.mkdir(parents=True, exist_ok=True)
    snap.write_bytes(JPEG)
    store.put_camera(CameraSpec(id="door", url="rtsp://h/door", name="Front door"))
    walker = [
        samples.event("door", "red", "w", ph, i, float(i), label="person", snapshot="snapshots/walker.jpg")
        for i, ph in enumerate(("start", "end"))
    ]
    blue = [
        samples.event("door", "blue", "b", ph, i, 20.0 + i, label="blue object")
        for i, ph in enumerate(("start", "end"))
    ]
    store.write([*(e.model_copy(update={"query_text": "red people"}) for e in walker), *blue])


def test_search_returns_hits_best_first_with_snapshots(client: tuple[TestClient, Store, Settings]) -> None:
    c, store, settings = client
    fill(store, settings)
    r = c.get("/api/search", params={"q": "someone wearing red"})
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["meaning"] is True
    top = body["hits"][0]
    assert top["id"] == track_key("door", "red", "w") and top["kind"] == "track"
    assert top["camera_name"] == "Front door" and top["matched"] in ("meaning", "both")
    assert set(top) >= {"kind", "id", "camera_id", "start", "end", "text", "snapshot_url", "score", "matched"}
    img = c.get(top["snapshot_url"])
    assert img.status_code == 200 and img.content == JPEG
    scores = [h["score"] for h in body["hits"]]
    assert scores == sorted(scores, reverse=True)
    assert c.get("/api/search", params={"q": "blue", "kind": "summary"}).json()["hits"] == []


@pytest.mark.parametrize(
    ("params", "status"),
    [
        ({"q": ""}, 422),
        ({"q": "   "}, 422),
        ({"q": "x" * 10_000}, 422),
        ({"q": "red", "until": "2026-01-01T00:00:00Z", "since": "2026-01-02T00:00:00Z"}, 422),
        ({"q": "red", "kind": "camera"}, 422),
        ({"q": "red", "camera_id": "../etc"}, 422),
        ({"q": "red", "limit": 0}, 422),
        ({"q": "red", "camera_id": "unknown"}, 200),
        ({"q": '"red" NEAR(a b) * : - ) ('}, 200),
        ({"q": "🙂🔴 red"}, 200),
        ({"q": "red'; DROP TABLE events; --"}, 200),
    ],
)
def test_bad_input_is_4xx_or_empty_never_5xx(
    client: tuple[TestClient, Store, Settings], params: dict[str, Any], status: int
) -> None:
    c, store, settings = client
    fill(store, settings)
    r = c.get("/api/search", params=params)
    assert r.status_code == status, r.text
    if params.get("camera_id") == "unknown":
        assert r.json()["hits"] == []
    assert store.counts()["events"] == 4  # nothing was dropped


def test_search_off_is_503(make_settings: Callable[..., Settings]) -> None:
    with TestClient(create_app(make_settings(search={"enabled": False}))) as c:
        r = c.get("/api/search", params={"q": "red"})
    assert r.status_code == 503 and "search" in r.json()["detail"]


def test_openai_embedder_against_the_scripted_server(tmp_path: Path) -> None:
    with ScriptedServer({"embedding_dim": 48}) as srv:
        emb = OpenAIEmbedder(OpenAIEmbedderConfig(base_url=srv.base_url, model="embed-test", batch=2))
        vecs = emb.embed(["red jacket", "a red jacket", "blue car"])
        assert vecs.shape == (3, 48) and emb.dim == 48
        assert vecs[0] @ vecs[1] > 0.7 > vecs[0] @ vecs[2]  # shared words, close vectors
        assert [len(r["input"]) for r in srv.embedding_requests] == [2, 1]  # batched as configured
        assert srv.embedding_requests[0]["model"] == "embed-test"
        store = Store(f"sqlite:///{tmp_path}/s.db")
        store.search = SearchIndex(store.engine, emb, SearchConfig(min_similarity=0.2))
        store.write(samples.track("cam1", "red", "t1", 0, 4))
        hits = store.search.search("person in red")
        assert hits and hits[0].matched == "both"
        srv.set_scenario({"embedding_dim": 48, "embeddings_status": 500})
        with pytest.raises(EmbedderError):
            emb.embed(["anything"])
        store.write(samples.track("cam1", "red", "t2", 10, 14))  # still stored, indexed for words
        assert {h.id for h in store.search.search("person", SearchFilter(kind="track"))} == {
            track_key("cam1", "red", "t1"),
            track_key("cam1", "red", "t2"),
        }
        srv.set_scenario({"embedding_dim": 48})
        assert store.search.backfill() == 1  # the vector it could not make then
        store.close()
        emb.close()
