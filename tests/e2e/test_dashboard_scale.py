"""One open dashboard with 1,000 cameras (issue 18): it made 3,051 requests in 20 s (a timeline
request per camera every 5 s). Now timelines come in batches for the cards on screen, snapshots
load lazily, and stream/image URLs carry a short-lived token, never the API key."""

from __future__ import annotations

import itertools
import time
from collections.abc import Callable
from pathlib import Path

import pytest
from conftest import need

from bus.contracts import CameraSpec, ControlMessage
from configs import Settings
from dashboard.server import BackgroundServer
from sinks.store import Store

pytestmark = [pytest.mark.e2e]
CHROMIUM = "/usr/bin/chromium"
ADMIN_KEY = "admin-scale-key-0123456789"
CAMERAS = 1000
WATCH_S = 20


def test_a_dashboard_with_1000_cameras_stays_light(make_settings: Callable[..., Settings]) -> None:
    need(Path(CHROMIUM).exists(), "Debian chromium is not installed (apt-get install chromium)")
    from playwright.sync_api import expect, sync_playwright

    settings = make_settings(api={"api_keys": [{"key": ADMIN_KEY, "role": "admin"}]})
    store = Store(settings.store_url)
    store.write(
        [
            ControlMessage(
                op="upsert",
                kind="camera",
                id=f"cam{i:04d}",
                camera=CameraSpec(id=f"cam{i:04d}", url=f"/v/{i}.mp4"),
            )
            for i in range(CAMERAS)
        ]
    )
    store.close()
    with BackgroundServer(settings) as server, sync_playwright() as p:
        base = server.url
        browser = p.chromium.launch(executable_path=CHROMIUM, headless=True, args=["--no-sandbox"])
        try:
            page = browser.new_page(viewport={"width": 1280, "height": 900})
            page.add_init_script(f"localStorage.setItem('sightline.key', '{ADMIN_KEY}')")
            urls: list[str] = []
            page.on("request", lambda req: urls.append(req.url))
            page.goto(base + "/")
            expect(page.locator(".card")).to_have_count(CAMERAS, timeout=20_000)
            first = page.locator('canvas.timeline[data-camera="cam0000"]')
            expect(first).to_have_attribute("data-summaries", "0", timeout=10_000)  # drawn
            page.wait_for_timeout(WATCH_S * 1000)
        finally:
            browser.close()
    api = [u.split(base, 1)[1] for u in urls if u.startswith(base + "/api/")]
    by_kind: dict[str, int] = {}
    for u in api:
        kind = u.split("?")[0].rsplit("/", 1)[-1] if "/cameras/" in u else u.split("?")[0]
        by_kind[kind] = by_kind.get(kind, 0) + 1
    # Every 5 s: cameras, queries, summaries, status and one timeline batch for the cards on screen;
    # the first screenful of snapshots; the stream; the token. Was 3,051 in 20 s.
    print(f"{len(api)} API requests in {WATCH_S}+ s: {by_kind}")
    assert len(api) < 150, by_kind
    assert by_kind.get("timeline", 0) == 0 and by_kind.get("snapshot", 0) < 60, by_kind
    assert not [u for u in api if "api_key=" in u]  # the key never in a URL
    assert any(u.startswith("/api/events/stream") and "token=" in u for u in api)


def test_the_dashboard_backs_off_while_the_server_is_busy(make_settings: Callable[..., Settings]) -> None:
    """Every API answer a 503: the refresh interval doubles (5, 10, 20 s…) instead of hammering."""
    need(Path(CHROMIUM).exists(), "Debian chromium is not installed (apt-get install chromium)")
    from playwright.sync_api import Route, sync_playwright

    with BackgroundServer(make_settings()) as server, sync_playwright() as p:
        base = server.url
        browser = p.chromium.launch(executable_path=CHROMIUM, headless=True, args=["--no-sandbox"])
        try:
            page = browser.new_page()
            busy: list[float] = []

            def answer_busy(route: Route) -> None:
                if route.request.url.split(base, 1)[1].split("?")[0] == "/api/cameras":
                    busy.append(time.monotonic())
                route.fulfill(status=503, body='{"detail":"busy"}', content_type="application/json")

            page.route(f"{base}/api/**", answer_busy)
            page.goto(base + "/")
            page.wait_for_timeout(17_000)  # not time.sleep: the route handler runs while waiting
        finally:
            browser.close()
    gaps = [b - a for a, b in itertools.pairwise(busy)]
    # Without backoff: at 0, 5, 10, 15 s. With it: at 0 and 10 s (the next would be at 30 s).
    assert len(busy) == 2 and gaps[0] >= 9, (len(busy), gaps)
