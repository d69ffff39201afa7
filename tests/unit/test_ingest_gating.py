"""Gating: motion bursts get through, stillness mostly does not, heartbeats keep a still scene seen."""

from __future__ import annotations

from pathlib import Path

import av
import numpy as np
import pytest

from configs.settings import IngestConfig
from ingest.camera import CameraWorker
from ingest.gating import MotionGate, SceneGate, make_gate
from ingest.plan import CameraPlan
from sightline.samples import Figure, generate_clip
from sightline.testing.ingest_kit import MemoryFramePublisher

BURSTS = ((12.0, 14.0), (30.0, 31.5), (47.0, 49.0))  # seconds of media time with something moving


@pytest.fixture(scope="module")
def burst_clip(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """60 s of a still scene with light sensor noise; a figure dashes across three times."""
    figures = [Figure((40, 40, 200), a, b, (0.1, 0.55), (0.9, 0.5)) for a, b in BURSTS]
    path = tmp_path_factory.mktemp("gating") / "bursts.mp4"
    return generate_clip(path, duration_s=60, fps=10, size=(320, 180), figures=figures, noise=2.0)


def _run(path: Path, gate: str, heartbeat_s: float = 10.0) -> MemoryFramePublisher:
    cfg = IngestConfig(heartbeat_s=heartbeat_s)
    plan = CameraPlan(
        camera_id="gate",
        url=str(path),
        sample_fps=2.0,
        gate=gate,
        realtime=False,
        loop=False,
        keyframes_only=False,
    )
    sink = MemoryFramePublisher(keep_jpeg=False)
    w = CameraWorker(plan, cfg, sink)
    w.start()
    sink.wait_state(("stopped", "failed"), 60)
    assert w.join(5)
    assert sink.updates[-1].state == "stopped", sink.updates[-1].reason
    return sink


def test_motion_gate_publishes_bursts_and_heartbeats_only(burst_clip: Path) -> None:
    sink = _run(burst_clip, "motion", heartbeat_s=10.0)
    final = sink.updates[-1].counters
    sampled = final["published"] + final["gated"]
    metas = [m for m, _ in sink.frames]
    assert sampled == 120  # 60 s at 2 fps
    print(f"motion gate: {len(metas)} of {sampled} sampled frames published")
    assert len(metas) <= 0.25 * sampled, [(m.pts_s, m.sampled_reason) for m in metas]
    for start, end in BURSTS:
        inside = [m for m in metas if start <= m.pts_s < end]
        assert inside, f"nothing published during the burst {start}-{end}s"
        assert any(m.sampled_reason == "motion" for m in inside)
    # Outside the bursts only heartbeats (and the first frame) get through.
    quiet = [m for m in metas if not any(a <= m.pts_s < b + 0.5 for a, b in BURSTS)]
    assert {m.sampled_reason for m in quiet} <= {"first", "heartbeat"}
    gaps = np.diff([m.pts_s for m in metas])
    assert gaps.max() <= 10.0 + 1e-6, "a still scene must still be seen every heartbeat_s"
    assert all(m.motion_score is not None for m in metas)


def test_always_gate_publishes_every_sampled_frame(burst_clip: Path) -> None:
    sink = _run(burst_clip, "always")
    assert len(sink.frames) == 120
    assert sink.updates[-1].counters["gated"] == 0


def _frame(img: np.ndarray) -> av.VideoFrame:
    return av.VideoFrame.from_ndarray(img, format="bgr24").reformat(format="yuv420p")


def test_scene_gate_fires_on_a_cut_not_on_a_small_change() -> None:
    dark = np.full((180, 320, 3), 40, np.uint8)
    dark_person = dark.copy()
    dark_person[60:120, 100:120] = 200  # a small figure: same scene
    bright = np.full((180, 320, 3), 210, np.uint8)
    gate = SceneGate(heartbeat_s=100.0, threshold=0.35)
    reasons = [
        gate.decide(_frame(img), t).reason for t, img in enumerate([dark, dark_person, dark, bright, bright])
    ]
    assert reasons == ["first", "sample", "sample", "scene_change", "sample"]
    decisions = [gate.decide(_frame(bright), 5.0 + t).publish for t in range(3)]
    assert decisions == [False, False, False]


def test_motion_gate_ignores_noise_and_sees_a_moving_block() -> None:
    rng = np.random.default_rng(1)
    base = np.full((180, 320, 3), 90, np.uint8)
    gate = MotionGate(heartbeat_s=1000.0, threshold=0.01)

    def noisy(img: np.ndarray) -> np.ndarray:
        return np.asarray(np.clip(img.astype(np.int16) + rng.integers(-6, 7, img.shape), 0, 255), np.uint8)

    assert gate.decide(_frame(noisy(base)), 0.0).reason == "first"
    for t in range(1, 5):
        d = gate.decide(_frame(noisy(base)), float(t))
        assert not d.publish and d.score is not None and d.score < 0.01
    moved = base.copy()
    moved[40:140, 150:190] = 250
    d = gate.decide(_frame(noisy(moved)), 5.0)
    assert d.publish and d.reason == "motion" and d.score is not None and d.score > 0.03


def test_heartbeat_is_measured_in_media_time() -> None:
    gate = make_gate("motion", heartbeat_s=2.0, motion_threshold=0.5, scene_threshold=0.35)
    still = _frame(np.full((90, 160, 3), 100, np.uint8))
    published = [t / 2 for t in range(20) if gate.decide(still, t / 2).publish]
    assert published == [0.0, 2.0, 4.0, 6.0, 8.0]
