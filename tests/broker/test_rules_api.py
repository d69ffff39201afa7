"""Zones, lines and rules through the API: writes reach the control topic and the store, bad input is
a 422 naming the field (never a 5xx), a rule on a deleted zone is disabled with a reason; alerts are
listed and streamed."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

import httpx
import pytest
from fastapi.testclient import TestClient

from bus.contracts import Alert, ControlMessage
from bus.kafka import ensure_topics, make_consumer
from bus.topics import Topics
from configs import Settings
from dashboard.app import create_app
from dashboard.server import BackgroundServer
from rules.book import RuleBook
from rules.evaluator import Evaluator
from sightline.testing.rules_kit import T0
from sinks.store import Store

pytestmark = pytest.mark.broker

GATE = {"id": "gate", "camera": "door", "polygon": [[0.6, 0.5], [0.8, 0.5], [0.8, 0.9], [0.6, 0.9]]}
FENCE = {"id": "fence", "camera": "door", "points": [[0.5, 0.0], [0.5, 1.0]], "inside": [0.75, 0.5]}
DWELL = {
    "id": "red-at-gate",
    "query": "red",
    "when": {"dwell": {"zone": "gate", "seconds": 30}},
    "schedule": {"timezone": "Europe/Berlin", "from": "22:00", "to": "06:00"},
    "cooldown_s": 60,
}


@pytest.fixture
def settings(kafka_bootstrap: str, topic_prefix: str, make_settings: Callable[..., Settings]) -> Settings:
    s = make_settings(bus={"bootstrap": kafka_bootstrap, "topic_prefix": topic_prefix})
    ensure_topics(kafka_bootstrap, Topics.from_config(s.bus).all(), s.bus.partitions)
    return s


@pytest.fixture
def client(settings: Settings) -> Iterator[TestClient]:
    with TestClient(create_app(settings)) as c:
        assert c.post("/api/queries", json={"id": "red", "text": "people in red"}).status_code == 201
        yield c


def _control(settings: Settings) -> list[ControlMessage]:
    consumer = make_consumer(settings.bus.bootstrap or "", [Topics.from_config(settings.bus).control], None)
    out: list[ControlMessage] = []
    deadline = time.monotonic() + 3
    try:
        while time.monotonic() < deadline:
            for batch in consumer.poll(timeout_ms=300).values():
                out += [ControlMessage.model_validate_json(r.value) for r in batch]
    finally:
        consumer.close()
    return out


def test_zone_line_rule_lifecycle_and_a_rule_on_a_deleted_zone(
    client: TestClient, settings: Settings
) -> None:
    assert client.post("/api/zones", json=GATE).status_code == 201
    assert client.post("/api/lines", json=FENCE).status_code == 201
    r = client.post("/api/rules", json=DWELL)
    assert r.status_code == 201, r.text
    assert r.json()["schedule"]["from"] == "22:00"
    fence_in = {"id": "fence-in", "query": "red", "when": {"cross": {"line": "fence", "direction": "in"}}}
    assert client.post("/api/rules", json=fence_in).status_code == 201
    assert [z["id"] for z in client.get("/api/zones", params={"camera_id": "door"}).json()] == ["gate"]
    assert client.get("/api/zones", params={"camera_id": "yard"}).json() == []
    rules = {r["rule"]["id"]: r for r in client.get("/api/rules").json()}
    assert set(rules) == {"red-at-gate", "fence-in"} and rules["red-at-gate"]["disabled_reason"] is None

    assert client.delete("/api/zones/gate").status_code == 204
    assert client.delete("/api/zones/gate").status_code == 404
    rules = {r["rule"]["id"]: r for r in client.get("/api/rules").json()}
    assert rules["red-at-gate"]["disabled_reason"] == "unknown zone 'gate'"
    assert rules["fence-in"]["disabled_reason"] is None

    # What `sightline rules` follows: the same messages on the control topic, and it disables, not crashes.
    book = RuleBook()
    for msg in _control(settings):
        book.apply(msg)
    ev = Evaluator(*book.specs())
    assert ev.disabled == {"red-at-gate": "unknown zone 'gate'"}
    assert set(book.lines) == {"fence"} and set(book.rules) == {"red-at-gate", "fence-in"}


def _bad(client: TestClient, path: str, body: dict[str, Any]) -> list[str]:
    r = client.post(path, json=body)
    assert r.status_code == 422, (r.status_code, r.text)
    return [".".join(str(p) for p in e["loc"]) + ": " + e["msg"] for e in r.json()["detail"]]


def test_bad_input_is_a_422_naming_the_field(client: TestClient) -> None:
    assert client.post("/api/zones", json=GATE).status_code == 201
    assert client.post("/api/lines", json=FENCE).status_code == 201
    cases: list[tuple[str, dict[str, Any], str]] = [
        ("/api/zones", {**GATE, "polygon": [[0.1, 0.1], [0.2, 0.2]]}, "body.polygon"),
        ("/api/zones", {**GATE, "polygon": [[0.1, 0.1], [0.5, 0.5], [0.5, 0.1], [0.1, 0.5]]}, "body.polygon"),
        ("/api/zones", {**GATE, "polygon": [[0.1, 0.1], [1.2, 0.1], [0.5, 0.5]]}, "body.polygon"),
        ("/api/lines", {**FENCE, "points": [[0.5, 0.5], [0.5, 0.5]]}, "zero length"),
        (
            "/api/rules",
            {**DWELL, "when": {"dwell": {"zone": "nowhere", "seconds": 3}}},
            "body.when.dwell.zone",
        ),
        ("/api/rules", {**DWELL, "id": "x", "when": {"cross": {"line": "nope"}}}, "body.when.cross.line"),
        ("/api/rules", {**DWELL, "query": "blue"}, "body.query"),
        ("/api/rules", {**DWELL, "schedule": {"timezone": "Mars/Base"}}, "body.schedule.timezone"),
        ("/api/rules", {**DWELL, "schedule": {"from": "08:00", "to": "08:00"}}, "body.schedule"),
        (
            "/api/rules",
            {**DWELL, "when": {"dwell": {"zone": "gate", "seconds": -1}}},
            "body.when.dwell.seconds",
        ),
        ("/api/rules/dry-run", {"rule": {**DWELL, "cooldown_s": -1}}, "body.rule.cooldown_s"),
    ]
    for path, body, field in cases:
        errors = _bad(client, path, body)
        assert any(field in e for e in errors), (field, errors)
    assert client.get("/api/rules").json() == []  # nothing bad was saved


def test_dry_run_of_an_unsaved_rule_counts_per_day(client: TestClient) -> None:
    from sightline.testing.rules_kit import back_and_forth, walk

    assert client.post("/api/lines", json=FENCE).status_code == 201
    store: Store = client.app.state.sightline.store  # type: ignore[attr-defined]
    day2 = T0.replace(day=T0.day + 1)
    store.write(
        walk("door", "a", back_and_forth(0.2), 1.0, 10.0)
        + walk("door", "b", back_and_forth(0.2), 1.0, 10.0, t0=day2)
    )
    rule = {"id": "try", "query": "red", "when": {"cross": {"line": "fence"}}}
    body = client.post("/api/rules/dry-run", json={"rule": rule}).json()
    assert body["count"] == 4 and body["per_day"] == {"2026-01-05": 2, "2026-01-06": 2}
    assert [a["direction"] for a in body["alerts"]] == ["in", "out", "in", "out"]
    only_first_day = client.post("/api/rules/dry-run", json={"rule": rule, "until": day2.isoformat()}).json()
    assert only_first_day["count"] == 2
    assert client.get("/api/rules").json() == []  # a dry run saves nothing


def test_alerts_list_and_stream(settings: Settings) -> None:
    def alert(i: int, camera: str = "door") -> Alert:
        return Alert(
            alert_id=f"a{i}",
            rule_id="r",
            camera_id=camera,
            condition="enter",
            pts_s=float(i),
            wall_ts=T0.replace(second=i),
            severity="critical" if i % 2 else "info",
        )

    with BackgroundServer(settings) as srv:
        store = Store(settings.store_url)
        store.write([alert(i) for i in range(5)])
        page = httpx.get(f"{srv.url}/api/alerts", params={"limit": 3}).json()
        assert [a["alert_id"] for a in page["items"]] == ["a4", "a3", "a2"]
        rest = httpx.get(f"{srv.url}/api/alerts", params={"limit": 3, "cursor": page["next_cursor"]}).json()
        assert [a["alert_id"] for a in rest["items"]] == ["a1", "a0"] and rest["next_cursor"] is None
        crit = httpx.get(f"{srv.url}/api/alerts", params={"severity": "critical"}).json()["items"]
        assert [a["alert_id"] for a in crit] == ["a3", "a1"]
        assert httpx.get(f"{srv.url}/api/alerts", params={"cursor": "x"}).status_code == 400

        later = threading.Timer(0.8, lambda: store.write([alert(7, "yard"), alert(8)]))
        got = []
        with httpx.stream(
            "GET", f"{srv.url}/api/alerts/stream", params={"camera_id": "door", "max_s": 10}
        ) as r:
            later.start()
            for line in r.iter_lines():
                if line.startswith("data: "):
                    got.append(json.loads(line[6:])["alert_id"])
                    break
        assert got == ["a8"]  # not the old ones, not the other camera's
        store.close()
