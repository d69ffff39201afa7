"""The SSE feed on a real socket: new events arrive, filters apply, Last-Event-ID resumes."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable, Iterator

import httpx
import pytest

from configs import Settings
from dashboard.server import BackgroundServer
from sightline.testing import messages as samples
from sinks.store import Store


@pytest.fixture
def server(make_settings: Callable[..., Settings]) -> Iterator[tuple[BackgroundServer, Store]]:
    settings = make_settings()
    with BackgroundServer(settings) as srv:
        yield srv, Store(settings.store_url)


def _read(resp: httpx.Response, n: int) -> list[tuple[int, dict[str, object]]]:
    out: list[tuple[int, dict[str, object]]] = []
    seq = 0
    for line in resp.iter_lines():
        if line.startswith("id: "):
            seq = int(line[4:])
        elif line.startswith("data: "):
            out.append((seq, json.loads(line[6:])))
            if len(out) == n:
                break
    return out


def test_stream_delivers_new_matching_events(server: tuple[BackgroundServer, Store]) -> None:
    srv, store = server
    old = samples.event("cam1", "red", "old", "start", 0, 0.0)
    store.write([old])  # stored before the client connected: not replayed
    writer = threading.Timer(
        0.8,
        lambda: store.write(
            [
                samples.event("cam2", "red", "x", "start", 1, 1.0),
                *samples.track("cam1", "red", "t1", 2, 6),
            ]
        ),
    )
    started = time.monotonic()
    with httpx.stream("GET", f"{srv.url}/api/events/stream", params={"camera_id": "cam1", "max_s": 10}) as r:
        assert r.headers["content-type"].startswith("text/event-stream")
        writer.start()
        got = _read(r, 3)
    assert time.monotonic() - started < 8
    assert [e["phase"] for _, e in got] == ["start", "update", "end"]
    assert {e["camera_id"] for _, e in got} == {"cam1"} and old.event_id not in {
        e["event_id"] for _, e in got
    }

    # A reconnecting browser sends Last-Event-ID and gets exactly what it missed.
    first_seq = got[0][0]
    headers = {"Last-Event-ID": str(first_seq)}
    with httpx.stream("GET", f"{srv.url}/api/events/stream", params={"max_s": 3}, headers=headers) as r:
        again = _read(r, 2)
    assert [e["event_id"] for _, e in again] == [e["event_id"] for _, e in got[1:]]


def test_stream_ends_after_max_s(server: tuple[BackgroundServer, Store]) -> None:
    srv, _ = server
    started = time.monotonic()
    with httpx.stream("GET", f"{srv.url}/api/events/stream", params={"max_s": 1}) as r:
        body = "".join(r.iter_text())
    assert 0.9 <= time.monotonic() - started < 5
    assert body.startswith("retry: 2000")


def test_backlog_then_live_from_one_cursor(server: tuple[BackgroundServer, Store]) -> None:
    srv, store = server
    history = [samples.event("cam1", "red", f"h{i}", "start", i, float(i)) for i in range(5)]
    store.write(history)
    live = samples.event("cam1", "red", "live", "start", 99, 99.0)
    threading.Timer(0.8, lambda: store.write([live])).start()
    with httpx.stream("GET", f"{srv.url}/api/events/stream", params={"backlog": 3, "max_s": 10}) as r:
        got = _read(r, 4)
    assert [e["track_id"] for _, e in got] == ["h2", "h3", "h4", "live"]
    assert [s for s, _ in got] == sorted(s for s, _ in got)
