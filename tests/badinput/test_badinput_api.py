"""Malformed bodies, odd names, injection strings and traversal ids against the real app: 4xx, never 5xx.

Writes go through a stand-in for the control-topic producer, so what the API accepted is
really stored and read back (verbatim: escaping is the renderer's job, see the JS check).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from bus.contracts import ControlMessage
from configs import Settings
from dashboard.app import create_app

STATIC = Path(__file__).parents[2] / "dashboard" / "static"


class _Sent:
    def get(self, timeout: float | None = None) -> None:
        return None


class FakeProducer:
    """Accepts control messages like a healthy broker would."""

    def __init__(self) -> None:
        self.sent: list[ControlMessage] = []

    def send(self, topic: str, key: str, msg: ControlMessage) -> _Sent:
        self.sent.append(msg)
        return _Sent()

    def close(self) -> None:
        pass


@pytest.fixture
def api(make_settings: Callable[..., Settings]) -> Iterator[TestClient]:
    # A bootstrap nothing listens on: writes are allowed, and the stand-in producer takes them.
    settings = make_settings(bus={"bootstrap": "127.0.0.1:9"})
    app = create_app(settings)
    app.state.sightline._producer = FakeProducer()
    with TestClient(app, raise_server_exceptions=False) as c:
        yield c


# ---- malformed bodies ---------------------------------------------------------------------------
# (id, path, raw body, content type, expected status)
J = "application/json"


def cam(extra: bytes) -> bytes:
    return b'{"id":"c1","url":"rtsp://h/x",' + extra + b"}"


def qry(extra: bytes) -> bytes:
    return b'{"id":"q1","text":"red",' + extra + b"}"


MALFORMED: list[tuple[str, str, bytes, str, int]] = [
    ("not-json", "/api/cameras", b'{id: "c1", url:', J, 422),
    ("truncated-json", "/api/queries", b'{"id": "q1", "text": "red', J, 422),
    ("invalid-utf8", "/api/cameras", b'{"id":"c1","url":"rtsp://h/\xff"}', J, 400),
    ("deeply-nested-array", "/api/cameras", b"[" * 200_000, J, 400),
    ("deeply-nested-object", "/api/queries", b'{"a":' * 100_000, J, 400),
    ("empty-body", "/api/cameras", b"", J, 422),
    ("json-array", "/api/cameras", b'[{"id":"c1","url":"rtsp://h/x"}]', J, 422),
    ("json-string", "/api/queries", b'"red people"', J, 422),
    ("json-null", "/api/queries", b"null", J, 422),
    ("text-plain", "/api/cameras", b'{"id":"c1","url":"rtsp://h/x"}', "text/plain", 422),
    ("id-is-a-number", "/api/cameras", b'{"id":123,"url":"rtsp://h/x"}', J, 422),
    ("url-is-a-list", "/api/cameras", b'{"id":"c1","url":["rtsp://h/x"]}', J, 422),
    ("enabled-is-maybe", "/api/cameras", cam(b'"enabled":"maybe"'), J, 422),
    ("fps-NaN", "/api/cameras", cam(b'"sample_fps":NaN'), J, 422),
    ("fps-Infinity", "/api/cameras", cam(b'"sample_fps":Infinity'), J, 422),
    ("fps-1e999", "/api/cameras", cam(b'"sample_fps":1e999'), J, 422),
    ("fps-negative", "/api/cameras", cam(b'"sample_fps":-2'), J, 422),
    ("interval-NaN", "/api/queries", qry(b'"interval_s":NaN'), J, 422),
    ("window-huge", "/api/queries", qry(b'"window_s":1e308'), J, 422),
    ("kind-unknown", "/api/queries", qry(b'"kind":"sql"'), J, 422),
    ("cameras-not-a-list", "/api/queries", qry(b'"cameras":{"a":1}'), J, 422),
    ("id-too-long", "/api/cameras", b'{"id":"' + b"a" * 65 + b'","url":"rtsp://h/x"}', J, 422),
    ("name-too-long", "/api/cameras", cam(b'"name":"' + b"n" * 201 + b'"'), J, 422),
    ("text-too-long", "/api/queries", b'{"id":"q1","text":"' + b"t" * 1001 + b'"}', J, 422),
    ("url-too-long", "/api/cameras", b'{"id":"c1","url":"rtsp://h/' + b"x" * 2048 + b'"}', J, 422),
    ("ask-question-too-long", "/api/ask", b'{"camera_id":"c1","question":"' + b"q" * 2001 + b'"}', J, 422),
    ("ask-seconds-NaN", "/api/ask", b'{"camera_id":"c1","question":"who?","seconds":NaN}', J, 422),
    ("ask-camera-traversal", "/api/ask", b'{"camera_id":"../c1","question":"who?"}', J, 422),
]


@pytest.mark.parametrize(
    ("case", "path", "body", "ctype", "status"), MALFORMED, ids=[m[0] for m in MALFORMED]
)
def test_malformed_body_is_a_4xx_with_a_reason(
    api: TestClient, case: str, path: str, body: bytes, ctype: str, status: int
) -> None:
    r = api.post(path, content=body, headers={"content-type": ctype})
    assert r.status_code == status, r.text
    assert r.json()["detail"]
    assert not api.app.state.sightline._producer.sent  # type: ignore[attr-defined]  # nothing published


# ---- names and texts: unicode and injection, stored verbatim -------------------------------------
NAMES = [
    ("emoji", "Front door 🚪📹 👨‍👩‍👧"),
    ("rtl-override", "cam \u202egnp.exe"),
    ("arabic-and-hebrew", "كاميرا المدخل — מצלמה"),
    ("combining-and-zero-width", "Cafe\u0301 \u200bcam\u200d"),
    ("cjk", "正門カメラ 정문"),
    ("sql-injection", "x'); DROP TABLE cameras; --"),
    ("sql-union", "' UNION SELECT key FROM api_keys --"),
    ("html-script", "<script>alert(1)</script>"),
    ("html-attribute", '"><img src=x onerror=alert(document.cookie)>'),
    ("template-and-format", "{{7*7}} ${7*7} %s %n {0}"),
    ("newline-and-tab", "line1\nline2\tend"),
]


@pytest.mark.parametrize(("case", "text"), NAMES, ids=[n[0] for n in NAMES])
def test_names_and_query_texts_are_stored_and_returned_verbatim(
    api: TestClient, case: str, text: str
) -> None:
    r = api.post("/api/cameras", json={"id": "c1", "url": "rtsp://h/x", "name": text})
    assert r.status_code == 201, r.text
    r = api.post("/api/queries", json={"id": "q1", "text": text})
    assert r.status_code == 201, r.text
    assert api.get("/api/cameras/c1").json()["name"] == text
    assert api.get("/api/queries/q1").json()["text"] == text
    assert [c["name"] for c in api.get("/api/cameras").json()] == [text]  # the table is still there
    r = api.patch("/api/queries/q1", json={"text": text + "!"})
    assert r.status_code == 200 and api.get("/api/queries/q1").json()["text"] == text + "!"
    # As a filter it is a value, not SQL: no rows, no error.
    assert api.get("/api/events", params={"label": text[:200]}).json()["items"] == []


CONTROL = [("nul", "cam\x00one"), ("escape-sequence", "cam\x1b[2J"), ("bell", "cam\x07"), ("del", "cam\x7f")]


@pytest.mark.parametrize(("case", "text"), CONTROL, ids=[c[0] for c in CONTROL])
def test_control_characters_in_names_and_texts_are_refused(api: TestClient, case: str, text: str) -> None:
    # PostgreSQL cannot store NUL in text or JSON: accepted, it would fail the store and the sink later.
    for path, body in (
        ("/api/cameras", {"id": "c1", "url": "rtsp://h/x", "name": text}),
        ("/api/queries", {"id": "q1", "text": text}),
    ):
        r = api.post(path, json=body)
        assert r.status_code == 422, r.text
        assert "control characters" in r.json()["detail"][0]["msg"]
    assert not api.app.state.sightline._producer.sent  # type: ignore[attr-defined]


def test_a_patch_cannot_smuggle_what_a_create_refuses(api: TestClient) -> None:
    assert api.post("/api/cameras", json={"id": "c1", "url": "rtsp://h/x"}).status_code == 201
    for patch in ({"url": "concat:/etc/passwd|x"}, {"url": "pipe:0"}, {"name": "a\x00b"}, {"id": "c2"}):
        r = api.patch("/api/cameras/c1", json=patch)
        assert r.status_code == 422, (patch, r.text)
    assert api.get("/api/cameras/c1").json()["url"] == "rtsp://h/x"


# ---- query strings and path ids ------------------------------------------------------------------
GETS = [
    ("label-sql-injection", "/api/events?label=%27%20OR%201%3D1%20--", 200),
    ("label-too-long", "/api/events?label=" + "x" * 201, 422),
    ("camera-filter-injection", "/api/events?camera_id=%27%20OR%20%271%27%3D%271", 422),
    ("cursor-garbage", "/api/events?cursor=%27%3B--", 400),
    ("cursor-forged-base64", "/api/events?cursor=eyJ4IjoxfQ", 400),
    ("limit-float", "/api/events?limit=1e9", 422),
    ("limit-negative", "/api/events?limit=-1", 422),
    ("since-garbage", "/api/events?since=yesterday", 422),
    ("timeline-since-1e999", "/api/cameras/x/timeline?since=1e999", 422),
    ("summaries-emoji-id", "/api/summaries?camera_id=%F0%9F%98%80", 422),
    ("snapshot-traversal-encoded", "/api/snapshots/..%2F..%2Fetc%2Fpasswd", 404),
    ("snapshot-dotdot", "/api/snapshots/..", 404),
    ("snapshot-nul", "/api/snapshots/x%00", 422),
    ("camera-id-nul", "/api/cameras/c1%00", 422),
    ("camera-id-dotdot", "/api/cameras/..%2Fqueries", 404),
    ("camera-snapshot-traversal", "/api/cameras/..%2F..%2Fetc/snapshot", 404),
    ("static-traversal", "/static/..%2f..%2fconfigs%2fsettings.py", 404),
    ("static-dotdot", "/static/../../configs/settings.py", 404),
    ("stream-last-event-id-injection", "/api/events/stream?max_s=0.01", 400),
    ("stream-last-event-id-too-long", "/api/events/stream?max_s=0.01&long=1", 422),
]


@pytest.mark.parametrize(("case", "path", "status"), GETS, ids=[g[0] for g in GETS])
def test_odd_query_strings_and_ids_are_4xx_never_5xx(
    api: TestClient, case: str, path: str, status: int
) -> None:
    headers = {}
    if "stream" in path:  # Last-Event-ID must be an id the stream sent; over 20 characters it is refused
        headers["Last-Event-ID"] = "1 OR 1=1; --" if "long" not in path else "'; DROP TABLE events; --"
    r = api.get(path, headers=headers)
    assert r.status_code == status, r.text
    assert "root:" not in r.text and "BaseSettings" not in r.text  # no file content leaked


# Values that reached SQL unchecked: a 500, or a stream killed by OverflowError.
LAST_EVENT_IDS = [
    ("superscript-two", "²", 400),
    ("superscripts-one-two-three", "¹²³", 400),
    ("nineteen-digits", "9" * 19, 400),
    ("negative", "-1", 400),
    ("largest-bigint", str(2**63 - 1), 200),
    ("zero", "0", 200),
]


@pytest.mark.parametrize(("case", "value", "status"), LAST_EVENT_IDS, ids=[c[0] for c in LAST_EVENT_IDS])
def test_last_event_id_is_validated_and_bounded(api: TestClient, case: str, value: str, status: int) -> None:
    r = api.get("/api/events/stream?max_s=0.01", headers={"Last-Event-ID": value.encode("latin-1")})
    assert r.status_code == status, r.text


CURSORS = [
    ("seq-1e30", [0, 1e30]),
    ("seq-bigint-plus-one", [0, 2**63]),
    ("ts-nan", [float("nan"), 1]),
    ("ts-1e308", [1e308, 1]),
    ("seq-float", [0, 1.5]),
    ("seq-bool", [0, True]),
    ("seq-negative", [0, -1]),
]


@pytest.mark.parametrize(("case", "value"), CURSORS, ids=[c[0] for c in CURSORS])
def test_crafted_cursors_are_400(api: TestClient, case: str, value: list[object]) -> None:
    import base64
    import json

    cursor = base64.urlsafe_b64encode(json.dumps(value).encode()).decode().rstrip("=")
    r = api.get(f"/api/events?cursor={cursor}")
    assert r.status_code == 400, r.text


# ---- rendering -----------------------------------------------------------------------------------
def test_dashboard_renders_text_with_textcontent_never_as_html() -> None:
    """Names, labels, query texts and summaries reach the page only as text nodes."""
    js = (STATIC / "app.js").read_text()
    sinks = re.findall(
        r"\.(innerHTML|outerHTML|insertAdjacentHTML)\b|document\.write|\beval\(|new Function\(", js
    )
    assert sinks == [], f"HTML sinks in app.js: {sinks}"
    assert js.count(".textContent") >= 5
    html = (STATIC / "index.html").read_text()
    assert not re.search(r"\son[a-z]+\s*=", html), "inline event handlers in index.html"
