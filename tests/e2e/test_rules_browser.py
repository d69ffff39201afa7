"""Rules in the dashboard, in headless Chromium against the real app, sink, rules worker and broker:
draw a zone on the camera's latest snapshot, save a rule over it, and see its alert arrive (with
the object's snapshot) when a tracked object walks in."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import pytest
from conftest import need
from test_dashboard_browser import CHROMIUM, LAUNCH_ARGS, _snapshot

from bus.kafka import Producer
from bus.topics import Topics
from configs import Settings
from dashboard.server import BackgroundServer
from rules.service import run as run_rules
from sightline.testing.rules_kit import event
from sinks.service import run as run_sink

pytestmark = [pytest.mark.e2e, pytest.mark.broker]
ARTIFACTS = Path(__file__).resolve().parents[2] / "artifacts"
GATE = [(0.6, 0.5), (0.8, 0.5), (0.8, 0.9), (0.6, 0.9)]


@pytest.fixture
def stack(
    kafka_bootstrap: str, topic_prefix: str, make_settings: Callable[..., Settings]
) -> Iterator[tuple[Settings, str]]:
    settings = make_settings(
        bus={"bootstrap": kafka_bootstrap, "topic_prefix": topic_prefix},
        rules={"group_id": f"{topic_prefix}-rules"},
        store={"group_id": f"{topic_prefix}-sink"},
    )
    stop = threading.Event()
    workers = [
        threading.Thread(target=fn, args=(settings, stop), daemon=True) for fn in (run_sink, run_rules)
    ]
    for w in workers:
        w.start()
    with BackgroundServer(settings) as server:
        yield settings, server.url
    stop.set()
    for w in workers:
        w.join(15)


def _until(page: Any, expression: str, timeout_s: float) -> None:
    """Poll a page expression. Not `wait_for_function`: that evals a string in the page, which the
    dashboard's Content-Security-Policy (script-src 'self') rightly refuses."""
    deadline = time.monotonic() + timeout_s
    while not page.evaluate(expression):
        assert time.monotonic() < deadline, f"timed out waiting for {expression}"
        page.wait_for_timeout(250)


def _walk_in(producer: Producer, topic: str, settings: Settings, track: str) -> None:
    """A red object seen outside the gate, then inside it: one `enter`."""
    now = datetime.now(UTC)
    snap = _snapshot(settings.data_dir, f"door/red/{track}.jpg")
    producer.send(topic, "door", event("door", track, "start", 0.0, (0.3, 0.7), t0=now, snapshot=snap))
    producer.send(topic, "door", event("door", track, "update", 1.0, (0.7, 0.7), t0=now))
    producer.flush()


def test_draw_a_zone_save_a_rule_and_see_its_alert(stack: tuple[Settings, str]) -> None:
    need(Path(CHROMIUM).exists(), "Debian chromium is not installed (apt-get install chromium)")
    from playwright.sync_api import expect, sync_playwright

    settings, url = stack
    topics = Topics.from_config(settings.bus)
    assert (
        httpx.post(f"{url}/api/cameras", json={"id": "door", "url": "rtsp://10.0.0.9/live"}).status_code
        == 201
    )
    assert httpx.post(f"{url}/api/queries", json={"id": "red", "text": "people in red"}).status_code == 201
    producer = Producer(settings.bus.bootstrap or "")
    # A first sighting gives the camera a snapshot to draw on.
    now = datetime.now(UTC)
    first = event(
        "door",
        "t0",
        "start",
        0.0,
        (0.2, 0.8),
        t0=now,
        snapshot=_snapshot(settings.data_dir, "door/red/t0.jpg"),
    )
    producer.send(topics.detections, "door", first)
    producer.flush()
    ARTIFACTS.mkdir(exist_ok=True)
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, headless=True, args=LAUNCH_ARGS)
        try:
            page = browser.new_page(viewport={"width": 1280, "height": 1400})
            page.goto(url + "/")
            expect(page.locator("#geo-camera option[value=door]")).to_have_count(1, timeout=30_000)
            _until(page, "document.querySelector('#geo-img').naturalWidth > 0", 30)

            # Draw the gate: four clicks on the snapshot, then save it as a zone.
            canvas = page.locator("#geo-canvas")
            box = canvas.bounding_box()
            assert box is not None
            for x, y in GATE:
                canvas.click(position={"x": x * box["width"], "y": y * box["height"]})
            expect(canvas).to_have_attribute("data-points", "4")
            page.locator("#geo-id").fill("gate")
            page.locator("#geo-save").click()
            expect(page.locator("#geo-msg")).to_have_text("zone gate saved", timeout=10_000)
            zones = httpx.get(f"{url}/api/zones").json()
            assert [z["id"] for z in zones] == ["gate"]
            for (x, y), (zx, zy) in zip(GATE, zones[0]["polygon"], strict=True):
                assert abs(x - zx) < 0.01 and abs(y - zy) < 0.01  # where it was drawn, in frame coordinates

            # A rule over it, through the form.
            form = page.locator("#rule-form")
            expect(page.locator("#rule-target option[value='zone:gate']")).to_have_count(1, timeout=10_000)
            expect(page.locator("#rule-query option[value=red]")).to_have_count(1, timeout=10_000)
            form.locator("[name=id]").fill("red-enters-gate")
            form.locator("[name=query]").select_option("red")
            form.locator("[name=condition]").select_option("enter")
            form.locator("[name=target]").select_option("zone:gate")
            form.locator("[name=severity]").select_option("critical")
            form.locator("button[type=submit]").click()
            expect(page.locator('#rules li[data-rule="red-enters-gate"]')).to_be_visible(timeout=10_000)

            # Someone in red walks into the gate; the rules worker picks the rule up from the
            # control topic, so keep sending walkers until the first alert shows (at most 40 s).
            row = page.locator("#alerts tbody tr").filter(has_text="red-enters-gate")
            deadline = time.monotonic() + 40
            n = 0
            while row.count() == 0 and time.monotonic() < deadline:
                n += 1
                _walk_in(producer, topics.detections, settings, f"w{n}")
                page.wait_for_timeout(2000)
            expect(row.first).to_be_visible(timeout=5_000)
            expect(row.first).to_contain_text("enter gate")
            expect(row.first.locator("td.sev-critical")).to_have_text("critical")
            _until(
                page,
                "[...document.querySelectorAll('#alerts tbody tr img')].some((i) => i.naturalWidth > 0)",
                10,
            )
            page.screenshot(path=str(ARTIFACTS / "dashboard-rules.png"), full_page=True)
        finally:
            browser.close()
            producer.close()
