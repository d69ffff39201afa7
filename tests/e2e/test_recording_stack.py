"""Must-show 1 of issue 19 end to end: the real processes (ingest, analyzer with the baseline
engine, sink, API) on the broker, an RTSP camera (the GStreamer server playing the vtest
pedestrians) with `record: continuous`. A real event's clip downloads, decodes and covers the
event; its evidence bundle checks out."""

from __future__ import annotations

import io
import json
import zipfile
from pathlib import Path

import av
import httpx
import pytest
from conftest import need  # type: ignore[import-not-found]

from bus.broker import free_port
from bus.contracts import CameraSpec, QuerySpec
from sightline.testing.ingest_kit import RtspServer, rtsp_server_available
from sinks.evidence import verify_zip

from stackkit import Stack, wait_for

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(300)]


def test_a_real_events_clip_from_a_recorded_rtsp_camera(
    kafka_bootstrap: str, topic_prefix: str, tmp_path: Path, vtest_10s: Path
) -> None:
    need(rtsp_server_available(), "GStreamer RTSP server (python3-gi, gir1.2-gst-rtsp-server-1.0) is missing")
    server = RtspServer(free_port(), file=str(vtest_10s), fps=10, size="768x576")
    server.start()
    stack = Stack(
        kafka_bootstrap,
        topic_prefix,
        tmp_path / "data",
        SIGHTLINE_RECORDING__SEGMENT_S="2",
        SIGHTLINE_INGEST__SESSION_TIMEOUT_S="4",
    ).start_all()
    try:
        stack.register(
            CameraSpec(id="door", url=server.url, sample_fps=2.0, record="continuous"),
            QuerySpec(id="people", text="people"),
        )

        # An event in the middle of the first pass over the file: the recording starts at the first
        # keyframe after connecting, and each replay of the file begins with a reconnect.
        def middle() -> list[dict[str, object]]:
            evs = sorted(stack.events(camera_id="door"), key=lambda e: str(e["wall_ts"]))
            first = _epoch(str(evs[0]["wall_ts"])) if evs else 0.0
            return [e for e in evs if first + 3.0 <= _epoch(str(e["wall_ts"])) <= first + 7.0]

        wait_for(lambda: bool(middle()), 150, "events from the RTSP camera", stack)
        ev = middle()[0]
        ev_t = _epoch(str(ev["wall_ts"]))
        clip: dict[str, object] = {}

        def covered() -> bool:
            r = httpx.get(
                f"{stack.api}/api/events/{ev['event_id']}/clip", params={"pre_s": 2, "post_s": 2}, timeout=30
            )
            if r.status_code != 200:
                return False
            with av.open(io.BytesIO(r.content)) as c:
                times = [f.time for f in c.decode(video=0)]
            origin = float(r.headers["x-sightline-clip-origin"])
            clip.update(origin=origin, times=times, gaps=json.loads(r.headers["x-sightline-gaps"]))
            return bool(times) and origin <= ev_t and origin + times[-1] >= ev_t + 1.0

        wait_for(covered, 60, "a clip covering the event", stack)
        bundle = httpx.get(f"{stack.api}/api/events/{ev['event_id']}/evidence", timeout=60)
    finally:
        codes = stack.stop()
        server.kill()
    assert bundle.status_code == 200 and verify_zip(bundle.content) == []
    with zipfile.ZipFile(io.BytesIO(bundle.content)) as zf:
        assert "clip.mp4" in zf.namelist() and json.loads(zf.read("track.json"))[0]["camera_id"] == "door"
    times = clip["times"]
    assert isinstance(times, list) and len(times) >= 30  # ≥ 3 s at 10 fps around the event
    assert all(c in (0, -15) for c in codes.values()), (codes, stack.logs())


def _epoch(iso: str) -> float:
    from datetime import datetime

    return datetime.fromisoformat(iso).timestamp()
