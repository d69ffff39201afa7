"""One viewer key opening 600 event streams must not lock anyone out (issue 18).

A real uvicorn server on a socket: on the old server, ~511 streams used up its global concurrency
limit and every request, /healthz included, answered 503."""

from __future__ import annotations

import asyncio
from collections.abc import Callable

import httpx
import pytest

from configs import Settings
from dashboard.limits import StreamSlots
from dashboard.server import BackgroundServer

VIEWER = "viewer-one-0123456789"
OTHER = "viewer-two-0123456789"
KEYS = [{"key": VIEWER, "role": "viewer"}, {"key": OTHER, "role": "viewer"}]


async def _flood(base: str, n: int) -> tuple[list[int], dict[str, int]]:
    limits = httpx.Limits(max_connections=n + 10, max_keepalive_connections=0)
    async with httpx.AsyncClient(base_url=base, limits=limits, timeout=30) as flood:
        requests = [
            flood.build_request("GET", "/api/events/stream", headers={"X-API-Key": VIEWER}) for _ in range(n)
        ]
        responses = await asyncio.gather(*(flood.send(r, stream=True) for r in requests))
        try:
            async with httpx.AsyncClient(base_url=base, timeout=10) as other:  # while all are open
                checks = {
                    "healthz": (await other.get("/healthz")).status_code,
                    "readyz": (await other.get("/readyz")).status_code,
                    "metrics": (await other.get("/metrics", headers={"X-API-Key": OTHER})).status_code,
                    "events-other-key": (
                        await other.get("/api/events", headers={"X-API-Key": OTHER})
                    ).status_code,
                }
                async with other.stream("GET", "/api/events/stream", headers={"X-API-Key": OTHER}) as s:
                    checks["stream-other-key"] = s.status_code
            return [r.status_code for r in responses], checks
        finally:
            await asyncio.gather(*(r.aclose() for r in responses))


def test_600_streams_from_one_viewer_key_lock_nobody_out(make_settings: Callable[..., Settings]) -> None:
    settings = make_settings(api={"api_keys": KEYS})
    per_key = settings.api.sse_max_streams_per_key
    with BackgroundServer(settings) as server:
        codes, checks = asyncio.run(_flood(server.url, 600))
        slots = server.server.config.app.state.sightline.streams  # type: ignore[attr-defined]
        for _ in range(100):  # the closed streams give their slots back
            if slots.open == 0:
                break
            asyncio.run(asyncio.sleep(0.05))
        assert slots.open == 0 and slots.by_key == {} and slots.by_client == {}
    assert checks == {
        "healthz": 200,
        "readyz": 200,
        "metrics": 200,
        "events-other-key": 200,
        "stream-other-key": 200,
    }
    # Exactly the key's share streams; the rest are refused at once: 429 (the key's cap), or 503 for
    # requests of the burst that arrived while over api.max_concurrency were in flight.
    assert codes.count(200) == per_key and set(codes) <= {200, 429, 503}, sorted(set(codes))
    assert codes.count(429) >= 400


def test_a_stream_ends_at_its_maximum_lifetime(make_settings: Callable[..., Settings]) -> None:
    """No `max_s` given: the stream still ends (the browser's EventSource resumes it with Last-Event-ID)."""
    settings = make_settings(api={"sse_max_lifetime_s": 1.0})
    with BackgroundServer(settings) as server, httpx.Client(base_url=server.url, timeout=15) as c:
        r = c.get("/api/events/stream")  # returns only once the server ends the stream
        assert r.status_code == 200 and r.text.startswith("retry:")
        r = c.get("/api/events/stream?max_s=86400")  # a longer max_s is cut to the lifetime too
        assert r.status_code == 200


def test_stream_slots_per_key_per_address_and_in_total() -> None:
    slots = StreamSlots(total=5, per_key=3, per_client=4)
    assert [slots.acquire("k1", "a") for _ in range(3)] == [None, None, None]
    assert "API key already has 3" in (slots.acquire("k1", "b") or "")
    assert slots.acquire("k2", "a") is None
    assert "address already has 4" in (slots.acquire("k3", "a") or "")
    assert slots.acquire("k3", "b") is None
    assert "server already serves 5" in (slots.acquire("k4", "c") or "")
    slots.release("k1", "a")
    assert slots.acquire("k4", "c") is None
    for key, client in (("k1", "a"), ("k1", "a"), ("k2", "a"), ("k3", "b"), ("k4", "c")):
        slots.release(key, client)
    assert (slots.open, slots.by_key, slots.by_client) == (0, {}, {})


@pytest.mark.parametrize("path", ["/healthz", "/readyz", "/metrics"])
def test_health_and_metrics_are_exempt_from_the_request_limit(
    make_settings: Callable[..., Settings], path: str
) -> None:
    from fastapi.testclient import TestClient

    from dashboard.app import create_app
    from dashboard.limits import ConcurrencyLimit

    app = create_app(make_settings(api={"max_concurrency": 1}))
    with TestClient(app) as c:
        limit = next(m for m in _middleware(app) if isinstance(m, ConcurrencyLimit))
        limit.in_flight = 1  # as if one request were running
        assert c.get(path).status_code == 200
        r = c.get("/api/events")
        assert r.status_code == 503 and r.headers["retry-after"] == "1"


def _middleware(app: object) -> list[object]:
    out, node = [], getattr(app, "middleware_stack", None)
    while node is not None:
        out.append(node)
        node = getattr(node, "app", None)
    return out
