"""End of a camera: end-of-stream comes after the last frame, however slow the consumer of a file is."""

from __future__ import annotations

import threading
import time
from pathlib import Path

import pytest

from bus.camera_urls import resolve
from bus.contracts import EndOfStream, FrameMeta, StatusUpdate
from configs.settings import IngestConfig
from ingest.camera import CameraWorker
from ingest.sources import open_source
from sightline.testing.ingest_kit import MemoryFramePublisher, make_plan


class GatedPublisher(MemoryFramePublisher):
    """Frames wait until `open` is set: a consumer (the analyzer) that is slower than any fixed wait."""

    def __init__(self) -> None:
        super().__init__(keep_jpeg=False)
        self.open = threading.Event()
        self.order: list[str] = []

    def frame(self, meta: FrameMeta, jpeg: bytes) -> None:
        self.open.wait(30)
        self.order.append(f"frame {meta.frame_id}")
        super().frame(meta, jpeg)

    def end_of_stream(self, eos: EndOfStream) -> None:
        self.order.append(f"eos {eos.last_frame_id}")
        super().end_of_stream(eos)

    def status(self, update: StatusUpdate) -> None:
        if update.state in ("stopped", "failed"):
            self.order.append(update.state)
        super().status(update)


def test_a_file_waits_for_its_consumer_and_ends_after_the_last_frame(short_clip: Path) -> None:
    sink = GatedPublisher()
    cfg = IngestConfig(queue_size=2, drain_timeout_s=0.1)
    w = CameraWorker(make_plan(str(short_clip)), cfg, sink)
    w.start()
    # The decoder is done long before the consumer takes a frame: far longer than drain_timeout_s.
    assert not w.join(1.5), "a file played to its end must wait for its consumer"
    assert not sink.ends and "stopped" not in sink.order
    sink.open.set()
    assert w.join(20)
    frames = [o for o in sink.order if o.startswith("frame")]
    last = sink.frames[-1][0].frame_id
    assert sink.order == [*frames, f"eos {last}", "stopped"]
    counters = sink.updates[-1].counters
    assert len(frames) == counters["sampled"] == counters["published"] == 8  # 4 s at 2 fps


def test_a_stopped_camera_gives_a_stuck_consumer_drain_timeout_s(short_clip: Path) -> None:
    sink = GatedPublisher()
    cfg = IngestConfig(queue_size=2, drain_timeout_s=0.5)
    w = CameraWorker(make_plan(str(short_clip)), cfg, sink)
    w.start()
    assert not w.join(1.0)
    w.stop("deleted")
    assert w.join(5), "a stop must not wait for a stuck consumer beyond drain_timeout_s"
    assert sink.updates[-1].state == "stopped" and sink.updates[-1].reason == "deleted"
    sink.open.set()


def test_a_replay_short_of_its_sampled_frames_is_refused() -> None:
    from sightline.replay.run import ReplayIncomplete, check_complete

    counters = {"sampled": 40, "gated": 2, "published": 38}
    check_complete(counters, 38)  # the gate's skips are deliberate, not lost
    with pytest.raises(ReplayIncomplete, match="37 of 38 sampled frames"):
        check_complete(counters, 37)


def test_a_consumer_slower_than_the_stall_timeout_is_not_a_stall(short_clip: Path) -> None:
    """The decoder waits for the analyzer: time spent there is not "no decodable frame"."""
    cfg = IngestConfig(read_timeout_s=0.1)  # a stall is 0.2 s without a frame
    source = open_source(resolve(str(short_clip), cfg), cfg, sample_fps=2.0, keyframes_only=False)
    pts = []
    try:
        for d in source.frames():
            pts.append(d.pts_s)
            if len(pts) in (1, 20):
                time.sleep(0.5)  # the consumer is slow with this frame
    finally:
        source.close()
    assert len(pts) == 40  # 4 s at 10 fps, none lost to a false stall
