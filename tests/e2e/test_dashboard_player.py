"""Must-show of issue 19: a recorded RTSP camera's event clip downloads, decodes, covers the event,
and plays in Chromium with the track's boxes drawn over the video.

The camera is the GStreamer test server recorded by ingest's real camera worker and recorder; the
segments are indexed in the store (the sink's write path); the event is a stored track placed in
the recorded minute (the analyzer's part is covered by its own tiers). The screenshot goes to
artifacts/ for a human to look at.
"""

from __future__ import annotations

import io
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

import av
import pytest
from conftest import need  # type: ignore[import-not-found]

from bus.broker import free_port
from bus.contracts import Alert, RecordedSegment
from configs import Settings
from configs.settings import IngestConfig
from dashboard.server import BackgroundServer
from ingest.camera import CameraWorker
from ingest.recorder import SegmentRecorder, recordings_root
from sightline.testing import messages as samples
from sightline.testing.ingest_kit import MemoryFramePublisher, RtspServer, make_plan, rtsp_server_available
from sinks.store import Store

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(180)]
CHROMIUM = "/usr/bin/chromium"
ARTIFACTS = Path(__file__).resolve().parents[2] / "artifacts"


def _record(settings: Settings, seconds: float) -> list[RecordedSegment]:
    segs: list[RecordedSegment] = []
    with RtspServer(free_port()) as server:
        rec = SegmentRecorder(
            "door", recordings_root(settings.data_dir), "continuous", segment_s=2.0, on_segment=segs.append
        )
        worker = CameraWorker(
            make_plan(server.url, camera_id="door"), IngestConfig(), MemoryFramePublisher(False), recorder=rec
        )
        worker.start()
        time.sleep(seconds)
        worker.stop()
        assert worker.join(10)
    assert len(segs) >= 3 and rec.problem == ""
    return segs


def test_an_event_clip_plays_in_chromium_with_its_boxes(make_settings: Callable[..., Settings]) -> None:
    need(Path(CHROMIUM).exists(), "Debian chromium is not installed (apt-get install chromium)")
    need(rtsp_server_available(), "GStreamer RTSP server (python3-gi, gir1.2-gst-rtsp-server-1.0) is missing")
    from playwright.sync_api import expect, sync_playwright

    settings = make_settings(recording={"pre_s": 1.0, "post_s": 1.0})
    segs = _record(settings, 9.0)
    t0 = min(s.start_ts for s in segs)
    # A track over the recorded time: the box moves right, 2 s to 5 s after recording began.
    track = [
        samples.event("door", "red", "t1", "start", 50, 2.0, start=t0, bbox=(100, 100, 220, 300)),
        samples.event("door", "red", "t1", "update", 75, 3.5, start=t0, bbox=(200, 100, 320, 300)),
        samples.event("door", "red", "t1", "end", 125, 5.0, start=t0, bbox=(300, 100, 420, 300)),
    ]
    alert = Alert(
        alert_id="a-1",
        rule_id="at-door",
        camera_id="door",
        condition="enter",
        track_id="t1",
        query_id="red",
        zone_id="door-zone",
        pts_s=3.5,
        wall_ts=track[1].wall_ts,
        event_id=track[1].event_id,
    )
    store = Store(settings.store_url)
    store.write([*segs, *track, alert])
    store.close()
    ev = track[1]
    ev_t = ev.wall_ts.timestamp()

    ARTIFACTS.mkdir(exist_ok=True)
    with BackgroundServer(settings) as server:
        import urllib.request

        with urllib.request.urlopen(f"{server.url}/api/events/{ev.event_id}/clip?pre_s=2&post_s=2") as r:
            body, origin = r.read(), float(r.headers["X-Sightline-Clip-Origin"])
        with av.open(io.BytesIO(body)) as c:
            times = [f.time for f in c.decode(video=0)]
        assert len(times) > 50 and origin <= ev_t - 2 + 0.01 and origin + times[-1] >= ev_t + 1.5, (
            origin,
            ev_t,
        )

        with sync_playwright() as p:
            browser = p.chromium.launch(executable_path=CHROMIUM, headless=True, args=["--no-sandbox"])
            try:
                page = browser.new_page(viewport={"width": 1280, "height": 900})
                page.goto(server.url + "/")
                row = page.locator(f'#feed tr[data-event="{ev.event_id}"]')
                expect(row).to_be_visible(timeout=20_000)
                row.click()
                expect(page.locator("#player")).to_be_visible()
                video = page.locator("#player-video")
                page.wait_for_function(
                    "() => { const v = document.querySelector('#player-video');"
                    " return v.readyState >= 2 && v.duration > 0; }",
                    timeout=20_000,
                )
                duration = video.evaluate("v => v.duration")
                start = video.evaluate("v => v.currentTime")
                page.wait_for_function(
                    f"() => document.querySelector('#player-video').currentTime > {start} + 0.5",
                    timeout=15_000,
                )
                # While the track is on screen, the canvas holds its interpolated box.
                mid = track[0].wall_ts.timestamp() + 1.0  # between two samples, a second into the track
                page.wait_for_function(
                    "() => { const c = document.querySelector('#player-canvas');"
                    f" return c.dataset.box && Number(c.dataset.t) > {mid}; }}",
                    timeout=15_000,
                )
                canvas = page.locator("#player-canvas")
                t = float(canvas.get_attribute("data-t") or 0)
                box = [int(v) for v in (canvas.get_attribute("data-box") or "").split(",")]
                x1 = 100 + (t - track[0].wall_ts.timestamp()) / 3.0 * 200  # the track moves 200 px in 3 s
                assert abs(box[0] - x1) < 25, (t, box, x1)
                red = canvas.evaluate(
                    """c => { const d = c.getContext('2d').getImageData(0, 0, c.width, c.height).data;
                       let n = 0;
                       for (let i = 0; i < d.length; i += 4) if (d[i] > 200 && d[i+1] < 80 && d[i+3] > 0) n++;
                       return n; }"""
                )
                assert red > 200, "the box is drawn on the canvas"
                page.screenshot(path=str(ARTIFACTS / "dashboard-player.png"))
                href = page.locator("#player-evidence").get_attribute("href") or ""
                assert href.endswith(f"/api/events/{ev.event_id}/evidence")

                # An alert opens the same player, through the event that made its rule fire.
                page.locator("#player-close").click()
                expect(page.locator("#player")).to_be_hidden()
                page.locator('#alerts tr[data-alert="a-1"]').click()
                expect(page.locator("#player")).to_be_visible()
                page.wait_for_function(
                    "() => { const v = document.querySelector('#player-video');"
                    " return v.readyState >= 2 && v.duration > 0; }",
                    timeout=20_000,
                )
                assert ev.event_id in (video.get_attribute("src") or "")
            finally:
                browser.close()
    assert duration >= 4.5  # the whole track (2-5 s) and 1 s either side, from the keyframe before
    shown = datetime.fromtimestamp(origin, UTC)
    print(f"clip {duration:.1f} s, origin {shown:%H:%M:%S.%f}, box {box} at t={t:.2f}")
