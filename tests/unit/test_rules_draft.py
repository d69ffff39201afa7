"""Drafting a rule from plain language against the scripted engine: a valid draft, partly valid ones
(with the reasons), garbage (refused) — and no draft ever becomes an active rule by itself."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator

import pytest
from fastapi.testclient import TestClient

from bus.contracts import QuerySpec
from bus.rulespec import LineSpec, ZoneSpec
from configs import Settings
from dashboard.app import create_app
from sightline.testing.scripted_server import ScriptedServer
from sinks.alerts import load_objects, put_object

VALID = {
    "rule": {
        "id": "red-loiter",
        "query": "red",
        "when": {"dwell": {"zone": "gate", "seconds": 30}},
        "schedule": {"timezone": "Europe/Berlin", "from": "22:00", "to": "06:00"},
        "severity": "critical",
    },
    "new_query": None,
    "explanation": "Someone in red staying at the gate for 30 s at night.",
}
UNKNOWN_LINE = {
    "rule": {"id": "bags", "query": "blue-bag", "when": {"cross": {"line": "back-fence", "direction": "in"}}},
    "new_query": {"id": "blue-bag", "text": "a blue bag"},
    "explanation": "A blue bag crossing the back fence.",
}
BAD_FIELDS = {
    "rule": {
        "id": "x",
        "query": "red",
        "when": {"cross": {"line": "fence", "direction": "sideways"}},
        "cooldown_s": -5,
    }
}
STEPS = [
    {"text": "```json\n" + json.dumps(VALID) + "\n```"},
    {"text": json.dumps(UNKNOWN_LINE)},
    {"text": "Here you go: " + json.dumps(BAD_FIELDS)},
    {"text": "I am sorry, I cannot help with alarms."},
]


@pytest.fixture
def app(make_settings: Callable[..., Settings]) -> Iterator[tuple[TestClient, ScriptedServer]]:
    with ScriptedServer({"steps": STEPS}) as glm:
        settings = make_settings(
            engine={"type": "openai", "base_url": glm.base_url, "api_key": "t", "model": "glm-4.5v"},
            api={"ask_per_minute": 100},
        )
        with TestClient(create_app(settings)) as client:
            store = client.app.state.sightline.store  # type: ignore[attr-defined]
            store.put_query(QuerySpec(id="red", text="people in red"))
            put_object(
                store.engine,
                ZoneSpec(
                    id="gate", camera="door", polygon=((0.6, 0.5), (0.8, 0.5), (0.8, 0.9)), name="front gate"
                ),
            )
            put_object(
                store.engine,
                LineSpec(id="fence", camera="door", points=((0.5, 0.0), (0.5, 1.0)), inside=(0.7, 0.5)),
            )
            put_object(
                store.engine,
                ZoneSpec(id="yard-gate", camera="yard", polygon=((0.1, 0.1), (0.2, 0.1), (0.2, 0.2))),
            )
            yield client, glm


def test_valid_partly_valid_and_garbage_drafts_and_none_is_activated(
    app: tuple[TestClient, ScriptedServer],
) -> None:
    client, glm = app
    ask = {"text": "tell me when someone in red hangs around the gate at night", "camera_id": "door"}

    valid = client.post("/api/rules/draft", json=ask)
    assert valid.status_code == 200, valid.text
    body = valid.json()
    assert body["status"] == "valid" and body["problems"] == []
    assert body["rule"]["when"] == {"dwell": {"zone": "gate", "seconds": 30.0}}
    assert body["rule"]["schedule"]["from"] == "22:00" and body["explanation"].startswith("Someone in red")
    prompt = json.dumps(glm.requests[-1])
    assert "'gate'" in prompt and "front gate" in prompt and "'fence'" in prompt and "'red'" in prompt
    assert "yard-gate" not in prompt  # only this camera's geometry
    assert body["engine"] == "openai" and body["tokens_in"] > 0

    partly = client.post("/api/rules/draft", json=ask).json()
    assert partly["status"] == "invalid"
    assert partly["problems"] == ["rule.when.cross.line: camera 'door' has no line 'back-fence'"]
    assert partly["proposed_query"] == {"id": "blue-bag", "text": "a blue bag"}  # proposed, not created

    fields = client.post("/api/rules/draft", json=ask).json()
    assert fields["status"] == "invalid" and fields["rule"] is None and fields["raw_rule"]["id"] == "x"
    assert any(p.startswith("rule.when.cross.direction") for p in fields["problems"]), fields["problems"]
    assert any(p.startswith("rule.cooldown_s") for p in fields["problems"]), fields["problems"]

    garbage = client.post("/api/rules/draft", json=ask)
    assert garbage.status_code == 422
    assert garbage.json()["detail"][0]["type"] == "draft_refused"

    # Nothing became active: no rule stored, no query created; saving is the ordinary rule API's job.
    store = client.app.state.sightline.store  # type: ignore[attr-defined]
    assert load_objects(store.engine)[2] == [] and client.get("/api/rules").json() == []
    assert [q.id for q in store.queries()] == ["red"]


def test_bad_draft_requests_are_422(app: tuple[TestClient, ScriptedServer]) -> None:
    client, glm = app
    assert client.post("/api/rules/draft", json={"text": "x", "camera_id": "door"}).status_code == 422
    assert (
        client.post("/api/rules/draft", json={"text": "someone", "camera_id": "bad id!"}).status_code == 422
    )
    assert glm.requests == []  # refused before the engine was asked
