"""The dashboard in headless Chromium against the real app, sink and broker.

The page loads, a camera added through the form appears (password masked), events the sink
stores show up in the live feed without a reload, and the camera's timeline draws.
Screenshots go to artifacts/ (gitignored) for a human to look at.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import cv2
import numpy as np
import pytest
from conftest import need

from bus.contracts import StatusUpdate
from bus.kafka import Producer
from bus.topics import Topics
from configs import Settings
from dashboard.server import BackgroundServer
from sightline.testing import messages as samples
from sinks.service import run as run_sink

pytestmark = [pytest.mark.e2e, pytest.mark.broker]
CHROMIUM = "/usr/bin/chromium"
ARTIFACTS = Path(__file__).resolve().parents[2] / "artifacts"
PASSWORD = "hunter2-secret"


ADMIN_KEY = "admin-browser-key-0123"
LAUNCH_ARGS = [
    "--no-sandbox",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]


@pytest.fixture(params=["open", "keys"])
def stack(
    request: pytest.FixtureRequest,
    kafka_bootstrap: str,
    topic_prefix: str,
    make_settings: Callable[..., Settings],
) -> Iterator[tuple[Settings, str]]:
    keys = [{"key": ADMIN_KEY, "role": "admin"}] if request.param == "keys" else []
    settings = make_settings(
        bus={"bootstrap": kafka_bootstrap, "topic_prefix": topic_prefix}, api={"api_keys": keys}
    )
    stop = threading.Event()
    sink = threading.Thread(target=run_sink, args=(settings, stop), daemon=True)
    sink.start()
    with BackgroundServer(settings) as server:
        yield settings, server.url
    stop.set()
    sink.join(15)


def _snapshot(data_dir: str, rel: str) -> str:
    """A JPEG like the analyzer writes: a frame with the object's box drawn."""
    img = np.full((360, 640, 3), 60, np.uint8)
    cv2.rectangle(img, (150, 60), (250, 310), (30, 30, 220), -1)  # the "person"
    cv2.rectangle(img, (148, 58), (252, 312), (0, 220, 255), 2)
    cv2.putText(img, "person in red", (150, 52), cv2.FONT_HERSHEY_SIMPLEX, 0.5, (0, 220, 255), 1)
    path = Path(data_dir) / "snapshots" / rel
    path.parent.mkdir(parents=True, exist_ok=True)
    ok, buf = cv2.imencode(".jpg", img)
    assert ok
    path.write_bytes(buf.tobytes())
    return f"snapshots/{rel}"


def test_dashboard_in_chromium(stack: tuple[Settings, str]) -> None:
    need(Path(CHROMIUM).exists(), "Debian chromium is not installed (apt-get install chromium)")
    from playwright.sync_api import expect, sync_playwright

    settings, url = stack
    ARTIFACTS.mkdir(exist_ok=True)
    with sync_playwright() as p:
        browser = p.chromium.launch(
            executable_path=CHROMIUM,
            headless=True,
            args=LAUNCH_ARGS,
        )
        try:
            page = browser.new_page(viewport={"width": 1280, "height": 900})
            page.goto(url + "/")
            if settings.api.api_keys:  # the page asks for a key, then everything works with it
                expect(page.locator("#key-form")).to_be_visible(timeout=10_000)
                page.locator("#key-input").fill(ADMIN_KEY)
                page.locator("#key-form button").click()
            expect(page.locator("#conn")).to_have_text("live", timeout=10_000)
            page.evaluate("window.__sameDocument = true")

            # Add a camera through the form.
            form = page.locator("#camera-form")
            form.locator("[name=id]").fill("door")
            form.locator("[name=url]").fill(f"rtsp://admin:{PASSWORD}@10.0.0.9:554/live")
            form.locator("[name=name]").fill("Front door")
            form.locator("button[type=submit]").click()
            card = page.locator('.card[data-camera="door"]')
            expect(card).to_be_visible(timeout=10_000)
            expect(card.locator(".url")).to_have_text("rtsp://admin:***@10.0.0.9:554/live")
            assert PASSWORD not in page.content()

            # Events flow broker → sink → store → SSE → page, without a reload.
            now = datetime.now(UTC) - timedelta(seconds=40)
            snap = _snapshot(settings.data_dir, "door/red/s-1.jpg")
            evs = [
                samples.event("door", "red", "t1", "start", 1, 0.0, start=now, snapshot=snap),
                samples.event("door", "red", "t1", "update", 50, 25.0, start=now, bbox=(160, 60, 260, 310)),
            ]
            producer = Producer(settings.bus.bootstrap or "")
            topics = Topics.from_config(settings.bus)
            for ev in evs:
                producer.send(topics.detections, ev.camera_id, ev)
            window = samples.summary("door", "what", 0, 30).model_copy(
                update={"window_start_wall": now, "window_end_wall": now + timedelta(seconds=30)}
            )
            producer.send(topics.summaries, "door", window)
            producer.send(
                topics.status,
                "door",
                StatusUpdate(component="camera", id="door", state="streaming", fps_out=2.0),
            )
            producer.flush()
            producer.close()
            for ev in evs:
                expect(page.locator(f'#feed tr[data-event="{ev.event_id}"]')).to_be_visible(timeout=20_000)
            assert page.evaluate("window.__sameDocument") is True  # no reload happened

            # The timeline draws the track; the card shows the snapshot with its box.
            canvas = page.locator('canvas.timeline[data-camera="door"]')
            expect(canvas).to_have_attribute("data-segments", "1", timeout=10_000)
            expect(card.locator("img")).to_be_visible(timeout=10_000)
            expect(canvas).to_have_attribute("data-summaries", "1", timeout=10_000)
            expect(card.locator(".pill")).to_have_text("streaming · 2.0 fps", timeout=10_000)
            expect(card.locator(".budget")).to_be_hidden()  # within budget: nothing to show
            producer = Producer(settings.bus.bootstrap or "")
            reason = "camera tokens_per_hour at 81%: smaller_images"
            producer.send(
                topics.status,
                "door",
                StatusUpdate(component="budget", id="door", state="budget", reason=reason),
            )
            producer.flush()
            producer.close()
            expect(card.locator(".budget")).to_have_text(f"budget: {reason}", timeout=15_000)
            expect(page.locator("#summaries li")).to_contain_text("A person walks across the scene")
            expect(page.locator("#workers .pill").first).to_contain_text("sink running", timeout=10_000)
            tag = "" if not settings.api.api_keys else "-keys"
            page.screenshot(path=str(ARTIFACTS / f"dashboard{tag}.png"), full_page=True)
            canvas.screenshot(path=str(ARTIFACTS / f"dashboard-timeline{tag}.png"))
            pixels = cv2.imread(str(ARTIFACTS / f"dashboard-timeline{tag}.png"))
            amber = np.all(np.abs(pixels.astype(int) - (0, 165, 240)) < 40, axis=2)  # BGR of #f0a500
            assert amber.sum() > 50, "the track's bar is not drawn on the timeline"
        finally:
            browser.close()
