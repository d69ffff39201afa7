"""The optional decord reader yields the same sampled frames as PyAV for a local file."""

from __future__ import annotations

from pathlib import Path

import pytest
from conftest import need  # type: ignore[import-not-found]

from configs.settings import IngestConfig
from ingest.camera import CameraWorker
from ingest.decord_source import available
from sightline.testing.ingest_kit import MemoryFramePublisher, make_plan


def _run(clip: Path, reader: str, **plan: object) -> MemoryFramePublisher:
    sink = MemoryFramePublisher(keep_jpeg=False)
    w = CameraWorker(make_plan(str(clip), **plan), IngestConfig(file_reader=reader), sink)  # type: ignore[arg-type]
    w.start()
    final = sink.wait_state(("stopped", "failed"), 30)
    assert w.join(5)
    assert final.state == "stopped", final.reason
    return sink


@pytest.mark.parametrize("keyframes_only", [False, True])
def test_decord_and_pyav_publish_the_same_frames(
    red_figure_clip: tuple[Path, object], keyframes_only: bool
) -> None:
    need(available(), "decord is not installed (pip install decord==0.6.0)")
    clip, _ = red_figure_clip
    a = _run(clip, "pyav", keyframes_only=keyframes_only)
    b = _run(clip, "decord", keyframes_only=keyframes_only)
    key = [(m.frame_id, round(m.pts_s, 3), m.encoded_width, m.encoded_height) for m, _ in a.frames]
    assert key and key == [
        (m.frame_id, round(m.pts_s, 3), m.encoded_width, m.encoded_height) for m, _ in b.frames
    ]
    if keyframes_only:
        assert all(m.keyframe for m, _ in b.frames)


def test_decord_reports_a_bad_file(tmp_path: Path) -> None:
    need(available(), "decord is not installed (pip install decord==0.6.0)")
    bad = tmp_path / "bad.mp4"
    bad.write_bytes(b"\x00" * 1000)
    sink = MemoryFramePublisher()
    w = CameraWorker(make_plan(str(bad)), IngestConfig(file_reader="decord"), sink)
    w.start()
    final = sink.wait_state(("failed",), 10)
    assert "not a readable video file" in final.reason
    assert w.join(5)
