"""A killed analyzer loses nothing and duplicates nothing: same event ids as an uninterrupted run."""

from __future__ import annotations

import time
from pathlib import Path

import httpx
import pytest

from bus.contracts import CameraSpec, QuerySpec
from sightline.samples import Figure
from sightline.testing.scripted_server import ScriptedServer

from stackkit import Stack, wait_for

pytestmark = [pytest.mark.e2e, pytest.mark.slow]
CAMERAS = ("cam-a", "cam-b", "cam-c")


def run_clip(
    bootstrap: str, prefix: str, data: Path, clip: Path, base_url: str, *, kill_after_s: float | None
) -> tuple[set[str], set[str], Stack]:
    stack = Stack(
        bootstrap,
        prefix,
        data,
        SIGHTLINE_ENGINE__TYPE="openai",
        SIGHTLINE_ENGINE__BASE_URL=base_url,
        SIGHTLINE_ENGINE__API_KEY="test",
        SIGHTLINE_INGEST__SAMPLE_FPS="2",
    )
    stack.start_all(("sink", "serve", "analyze"))
    if kill_after_s is not None:
        stack.start("analyze")  # a second worker in the same group
    time.sleep(3.0)  # let the group settle before frames flow
    stack.start("ingest")
    try:
        query = QuerySpec(id="red", text="people in red")
        summary = QuerySpec(id="sum", text="Describe", kind="summary", window_s=4.0)
        for cam in CAMERAS:
            stack.register(CameraSpec(id=cam, url=str(clip), realtime=True), query, summary)
        if kill_after_s is not None:
            time.sleep(kill_after_s)
            stack.kill("analyze", 0)  # SIGKILL: no goodbye, no last commit

        def done() -> bool:
            ends = {e["camera_id"] for e in stack.events(phase="end")}
            sums = httpx.get(f"{stack.api}/api/summaries", params={"limit": 100}, timeout=5).json()
            sums = sums["items"] if isinstance(sums, dict) else sums
            return ends == set(CAMERAS) and len(sums) >= 3 * len(CAMERAS)

        wait_for(done, 120, "every camera's end events and summaries", stack)
        time.sleep(2.0)  # anything still in flight
        events = {e["event_id"] for e in stack.events()}
        body = httpx.get(f"{stack.api}/api/summaries", params={"limit": 100}, timeout=5).json()
        summaries = {s["summary_id"] for s in (body["items"] if isinstance(body, dict) else body)}
        return events, summaries, stack
    finally:
        stack.stop()


def test_sigkill_of_an_analyzer_mid_clip_changes_no_event_id(
    kafka_bootstrap: str, tmp_path: Path, red_figure_clip: tuple[Path, Figure]
) -> None:
    clip, _ = red_figure_clip
    with ScriptedServer({"mode": "colour"}) as glm:
        calm_events, calm_sums, _ = run_clip(
            kafka_bootstrap, "calm", tmp_path / "calm", clip, glm.base_url, kill_after_s=None
        )
        hit_events, hit_sums, stack = run_clip(
            kafka_bootstrap, "hit", tmp_path / "hit", clip, glm.base_url, kill_after_s=5.0
        )
    killed_log = (tmp_path / "hit" / "logs" / "analyze-0.log").read_text()
    assert "assigned partitions [" in killed_log and "assigned partitions []" not in killed_log, killed_log
    assert len(calm_events) >= 3 * len(CAMERAS)  # start, updates, end per camera
    assert hit_events == calm_events, (hit_events ^ calm_events, stack.logs())
    assert hit_sums == calm_sums
