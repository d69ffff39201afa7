"""A retryable engine failure costs time, not output: the analyzer's retry of a frame (or of an
end-of-stream marker) ends with the same events and summaries as a run without the failure, and a
redelivered frame changes nothing."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

import cv2
import numpy as np
import pytest

from analyzer.core import EngineUnavailable, FrameProcessor, Outputs
from bus.contracts import CameraSpec, ControlMessage, FrameMeta, QuerySpec
from bus.control import ControlState
from configs.settings import AnalyzerConfig
from glm45v_engine import Clip, EngineError, Frame
from glm45v_engine.types import Answer, Box, EngineStats, Grounding, SummaryResult

CAM = "cam"
T0 = datetime(2024, 1, 1, tzinfo=UTC)
JPEG = cv2.imencode(".jpg", np.zeros((90, 160, 3), np.uint8))[1].tobytes()


class FlakyEngine:
    """Answers a box that walks right; the calls numbered in `fail` (1-based, per kind) raise."""

    name, model = "flaky", "m"

    def __init__(self, fail_ground: Sequence[int] = (), fail_summary: Sequence[int] = ()) -> None:
        self.fail_ground, self.fail_summary = set(fail_ground), set(fail_summary)
        self.ground_calls = self.summary_calls = 0
        self.stats = EngineStats()

    async def ground(self, frames: Sequence[Frame], query: str, *, thinking: bool = False) -> list[Grounding]:
        self.ground_calls += 1
        if self.ground_calls in self.fail_ground:
            raise EngineError("HTTP 500", retryable=True)
        f = frames[0]
        x = 10.0 + 2 * (f.frame_id or 0)
        return [Grounding(boxes=(Box("person", (x, 20.0, x + 20, 70.0)),), image_size=f.size)]

    async def summarize(self, clip: Clip, prompt: str, *, thinking: bool = False) -> SummaryResult:
        self.summary_calls += 1
        if self.summary_calls in self.fail_summary:
            raise EngineError("timeout", retryable=True)
        return SummaryResult(text=",".join(str(f.frame_id) for f in clip.frames))

    async def ask(self, media: Sequence[Frame] | Clip, prompt: str, *, thinking: bool = False) -> Answer:
        raise NotImplementedError

    async def aclose(self) -> None:
        return None


def processor(engine: FlakyEngine) -> FrameProcessor:
    control = ControlState()
    for q in (QuerySpec(id="g", text="person"), QuerySpec(id="s", text="sum", kind="summary", window_s=2.0)):
        control.apply(ControlMessage(op="upsert", kind="query", id=q.id, query=q))
    control.apply(ControlMessage(op="upsert", kind="camera", id=CAM, camera=CameraSpec(id=CAM, url="x.mp4")))
    return FrameProcessor(engine, AnalyzerConfig(), control, skip_stale=False)


def meta(i: int) -> FrameMeta:
    return FrameMeta(
        camera_id=CAM,
        frame_id=i,
        source_session="s1",
        pts_s=i * 0.5,
        wall_ts=T0 + timedelta(seconds=i * 0.5),
        width=160,
        height=90,
        encoded_width=160,
        encoded_height=90,
    )


def run(engine: FlakyEngine, n: int = 14, redeliver: bool = False) -> tuple[Outputs, int]:
    """Feed frames 0..n-1 then end of stream the way the worker does: a frame whose engine call failed
    is delivered again (after a backoff) until it goes through. Returns the outputs and the retries."""
    proc = processor(engine)
    items: list[Any] = [*range(n), "eos"]

    async def go() -> tuple[Outputs, int]:
        out, retries, i = Outputs(), 0, 0
        while i < len(items):
            item = items[i]
            try:
                if item == "eos":
                    res = await proc.finish(CAM, wall=T0 + timedelta(seconds=n))
                else:
                    res = await proc.process(meta(item), JPEG, offset=item)
                    if redeliver:
                        res.extend(await proc.process(meta(item), JPEG, offset=item))
            except EngineUnavailable as exc:
                out.extend(exc.partial)
                retries += 1
                assert retries < 50
                continue
            out.extend(res)
            i += 1
        return out, retries

    return asyncio.run(go())


def keyed(out: Outputs) -> tuple[list[tuple[str, str, int]], dict[str, tuple[float, str]]]:
    events = sorted((e.event_id, e.phase, e.frame_id) for e in out.events)
    sums = {s.summary_id: (s.window_start_s, s.text) for s in out.summaries}
    assert len(sums) == len(out.summaries), "a summary produced twice"
    return events, sums


CALM, _ = run(FlakyEngine())


def test_the_calm_run_has_a_track_and_summaries() -> None:
    events, sums = keyed(CALM)
    assert {p for _, p, _ in events} == {"start", "update", "end"}
    assert len(sums) == 4  # 7 s of frames in 2 s windows (the last one partial, flushed at the end)


@pytest.mark.parametrize(
    ("fail_ground", "fail_summary"),
    [
        ((5, 6, 7), ()),  # grounding down around the frame that closes the first window (frame 4)
        ((), (1, 2)),  # the first window's summary fails twice
        ((9,), (2,)),  # both, on different frames
        ((), (4, 5)),  # the end-of-stream flush fails: it is retried before tracks are closed
    ],
)
def test_a_retried_frame_loses_and_duplicates_nothing(
    fail_ground: tuple[int, ...], fail_summary: tuple[int, ...]
) -> None:
    out, retries = run(FlakyEngine(fail_ground, fail_summary))
    assert retries > 0
    assert keyed(out) == keyed(CALM)
    assert len(out.events) == len(CALM.events)


def test_a_redelivered_frame_changes_nothing() -> None:
    out, _ = run(FlakyEngine(), redeliver=True)
    assert keyed(out) == keyed(CALM)
    assert len(out.events) == len(CALM.events)


def test_a_window_held_for_retry_keeps_its_frames_uncommitted() -> None:
    engine = FlakyEngine(fail_summary=(1,))
    proc = processor(engine)

    async def go() -> None:
        for i in range(4):
            await proc.process(meta(i), JPEG, offset=100 + i)
        with pytest.raises(EngineUnavailable):
            await proc.process(meta(4), JPEG, offset=104)  # closes window [0, 2): its summary fails
        assert proc.oldest_open_offset(CAM) == 100  # the failed window's frames are still needed

    asyncio.run(go())


class GarbleEngine(FlakyEngine):
    """Answers calls numbered in `garble` with text that has box markup but no readable box."""

    def __init__(self, garble: Sequence[int]) -> None:
        super().__init__()
        self.garble = set(garble)

    async def ground(self, frames: Sequence[Frame], query: str, *, thinking: bool = False) -> list[Grounding]:
        [g] = await super().ground(frames, query, thinking=thinking)
        if self.ground_calls in self.garble:
            garbled = "<|begin_of_box|>[[12, 9x, ,]]"
            return [Grounding(boxes=(), image_size=g.image_size, raw_text=garbled, unreadable=True)]
        return [g]


def test_a_garbled_answer_is_skipped_and_counted_not_taken_as_nobody_there() -> None:
    engine = GarbleEngine(garble=(6, 7))
    proc = processor(engine)

    async def go() -> Outputs:
        out = Outputs()
        for i in range(14):
            out.extend(await proc.process(meta(i), JPEG, offset=i))
        out.extend(await proc.finish(CAM, wall=T0 + timedelta(seconds=14)))
        return out

    out = asyncio.run(go())
    assert proc.counters["skipped_unreadable"] == 2
    # 1 s without a usable answer is less than max_missing_s: the track goes on, as in the calm run.
    assert sorted((e.event_id, e.phase) for e in out.events if e.phase != "update") == sorted(
        (e.event_id, e.phase) for e in CALM.events if e.phase != "update"
    )
