"""The search page and the ask-about-history panel in headless Chromium, against the real app and
the scripted engine: results as snapshot cards, a result opens its camera's timeline at that
moment, an answer's citations link to events, and a citation of no event sent is flagged."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from conftest import need
from test_dashboard_browser import CHROMIUM, LAUNCH_ARGS, _snapshot

from bus.contracts import CameraSpec
from configs import Settings
from dashboard.server import BackgroundServer
from sightline.testing import messages as samples
from sightline.testing.scripted_server import ScriptedServer
from sinks.eventwrite import track_key
from sinks.search import open_search
from sinks.store import Store

pytestmark = pytest.mark.e2e
ARTIFACTS = Path(__file__).resolve().parents[2] / "artifacts"
COLOURS = [
    {"name": "red", "bgr": [30, 30, 220], "label": "person"},
    {"name": "blue", "bgr": [220, 60, 30], "label": "bag"},
]
WALKER = track_key("door", "things", "walker")


@pytest.fixture
def stack(make_settings: Callable[..., Settings]) -> Iterator[tuple[Settings, str, ScriptedServer]]:
    with ScriptedServer({"mode": "colour", "colours": COLOURS}) as glm:
        settings = make_settings(
            engine={"type": "openai", "base_url": glm.base_url, "api_key": "t", "model": "glm-4.5v"}
        )
        store = Store(settings.store_url)
        store.search = open_search(store.engine, settings.search)
        store.put_camera(CameraSpec(id="door", url="rtsp://cams/door", name="Front door"))
        t0 = datetime.now(UTC) - timedelta(minutes=3)
        snap = _snapshot(settings.data_dir, "door/things/walker.jpg")
        for tid, label, text, offset, ref in (
            ("walker", "person", "a person in red", 0.0, snap),
            ("bag", "bag", "a blue bag", 60.0, None),
        ):
            evs = [
                samples.event(
                    "door", "things", tid, ph, i, offset + 4.0 * i, label=label, snapshot=ref, start=t0
                )
                for i, ph in enumerate(("start", "end"))
            ]
            store.write(
                [e.model_copy(update={"description": text, "description_engine": "openai"}) for e in evs]
            )
        store.close()
        with BackgroundServer(settings) as server:
            yield settings, server.url, glm


def test_search_page_and_ask_panel(stack: tuple[Settings, str, ScriptedServer]) -> None:
    need(Path(CHROMIUM).exists(), "Debian chromium is not installed (apt-get install chromium)")
    from playwright.sync_api import expect, sync_playwright

    _, url, glm = stack
    ARTIFACTS.mkdir(exist_ok=True)
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, headless=True, args=LAUNCH_ARGS)
        try:
            page = browser.new_page(viewport={"width": 1280, "height": 1000})
            page.goto(url + "/")
            page.locator("#search-q").fill("someone wearing red")
            page.locator("#search-form button[type=submit]").click()
            first = page.locator("#search-results .hit").first
            expect(first).to_have_attribute("data-hit", WALKER, timeout=10_000)
            expect(first).to_contain_text("Front door")
            expect(first).to_contain_text("a person in red")
            page.wait_for_function("document.querySelector('#search-results .hit img')?.naturalWidth > 0")

            first.click()  # the camera's timeline around that moment
            expect(page.locator("#search-moment")).to_be_visible()
            expect(page.locator("#search-timeline")).to_have_attribute("data-segments", "2", timeout=10_000)
            expect(page.locator("#search-timeline")).to_have_attribute("data-camera", "door")

            form = page.locator("#history-form")
            form.locator("textarea").fill("When did someone in red come to the door?")
            form.locator("button").click()
            cite = page.locator(f'#history-answer a.cite[data-hit="{WALKER}"]')
            expect(cite).to_be_visible(timeout=15_000)
            assert page.locator("#history-answer .flagged").count() == 0

            glm.set_scenario({"steps": [{"text": "Someone in red was at the door [E1]; see also [E7]."}]})
            form.locator("button").click()
            expect(page.locator("#history-answer .flagged")).to_have_text("[E7]", timeout=15_000)
            assert page.locator("#history-answer a.cite").count() == 1  # E7 is not a link
            page.screenshot(path=str(ARTIFACTS / "search-and-ask.png"), full_page=True)
        finally:
            browser.close()
