"""Analyzer end to end: real processes, real broker, the scripted GLM server answering from the pixels."""

from __future__ import annotations

import time
from pathlib import Path

import httpx
import pytest

from bus.contracts import CameraSpec, QuerySpec
from sightline.samples import Figure
from sightline.testing.scripted_server import ScriptedServer

from stackkit import Stack, wait_for

pytestmark = pytest.mark.e2e
SAMPLE_FPS = 2.0
INTERVAL = 1 / SAMPLE_FPS
MAX_MISSING = 2.0


def iou(a: list[float], b: tuple[float, float, float, float]) -> float:
    ix = max(0.0, min(a[2], b[2]) - max(a[0], b[0]))
    iy = max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
    inter = ix * iy
    return inter / ((a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter)


def test_red_figure_is_one_track_with_correct_times_and_boxes_and_every_window_summarized(
    kafka_bootstrap: str, topic_prefix: str, tmp_path: Path, red_figure_clip: tuple[Path, Figure]
) -> None:
    clip, fig = red_figure_clip  # 640×360, enters at 3 s, leaves at 9 s
    with ScriptedServer({"mode": "colour"}) as glm:
        stack = Stack(
            kafka_bootstrap,
            topic_prefix,
            tmp_path / "data",
            SIGHTLINE_ENGINE__TYPE="openai",
            SIGHTLINE_ENGINE__BASE_URL=glm.base_url,
            SIGHTLINE_ENGINE__MODEL="glm-4.5v",
            SIGHTLINE_ENGINE__API_KEY="test",
            SIGHTLINE_INGEST__SAMPLE_FPS=str(SAMPLE_FPS),
            SIGHTLINE_INGEST__MAX_WIDTH="320",  # frames travel at half size; boxes must come back full size
            SIGHTLINE_ANALYZER__TRACKING__MAX_MISSING_S=str(MAX_MISSING),
        ).start_all()
        try:
            stack.register(
                CameraSpec(id="door", url=str(clip), realtime=False),
                QuerySpec(id="red", text="people in red"),
                QuerySpec(id="what", text="What happens?", kind="summary", window_s=4.0),
            )

            def summaries() -> list[dict[str, object]]:
                body = httpx.get(f"{stack.api}/api/summaries", params={"camera_id": "door"}, timeout=5).json()
                return list(body["items"] if isinstance(body, dict) else body)

            wait_for(
                lambda: any(e["phase"] == "end" for e in stack.events()) and len(summaries()) >= 3,
                90,
                "the track's end and three summaries",
                stack,
            )
            time.sleep(0.5)
            events, sums = stack.events(), summaries()
        finally:
            stack.stop()

    tracks = {e["track_id"] for e in events}
    assert len(tracks) == 1, events
    start = next(e for e in events if e["phase"] == "start")
    end = next(e for e in events if e["phase"] == "end")
    updates = sorted((e for e in events if e["phase"] == "update"), key=lambda e: e["pts_s"])
    assert abs(start["pts_s"] - fig.enter_s) <= INTERVAL + 1e-6
    assert abs(end["pts_s"] - fig.exit_s) <= MAX_MISSING + INTERVAL
    assert end["closed_at"] is not None
    sampled_with_figure = (fig.exit_s - fig.enter_s) * SAMPLE_FPS
    assert 1 <= len(updates) < sampled_with_figure / 2  # throttled, not one per answer
    for e in [start, *updates]:
        truth = fig.box_at(e["pts_s"], 640, 360)
        assert truth is not None
        assert iou(e["bbox"], truth) > 0.8, (e["pts_s"], e["bbox"], truth)  # original-frame pixels
        assert e["engine"] == "openai" and e["model"] == "scripted-glm-standin"

    windows = sorted((s["window_start_s"], s["window_end_s"]) for s in sums)
    assert windows == [(0.0, 4.0), (4.0, 8.0), (8.0, 12.0)]
    for s in sums:
        for seg in s["segments"]:
            assert s["window_start_s"] <= seg["start_s"] <= seg["end_s"] <= s["window_end_s"]
    with_figure = [s for s in sums if s["segments"]]
    assert {s["window_start_s"] for s in with_figure} == {0.0 + 4.0, 8.0} | (
        {0.0} if fig.enter_s < 4 else set()
    )
