"""Prefetch: a camera's frames in one poll batch are asked about at once, yet processed in order,
with exactly the events of one-by-one processing; calls nobody takes are cancelled."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence

from test_analyzer_retry import CAM, JPEG, FlakyEngine, meta  # type: ignore[import-not-found]

from analyzer.core import FrameProcessor, Outputs
from bus.contracts import CameraSpec, ControlMessage, QuerySpec
from bus.control import ControlState
from configs.settings import AnalyzerConfig
from glm45v_engine import Frame
from glm45v_engine.types import Grounding


class SlowEngine(FlakyEngine):
    """Answers like FlakyEngine after a pause, and remembers how many calls were in flight at most."""

    def __init__(self, pause_s: float = 0.05) -> None:
        super().__init__()
        self.pause_s, self.in_flight, self.max_in_flight = pause_s, 0, 0
        self.frames: list[int] = []

    async def ground(self, frames: Sequence[Frame], query: str, *, thinking: bool = False) -> list[Grounding]:
        self.in_flight += 1
        self.max_in_flight = max(self.max_in_flight, self.in_flight)
        self.frames.append(frames[0].frame_id or 0)
        try:
            await asyncio.sleep(self.pause_s)
            return await super().ground(frames, query, thinking=thinking)
        finally:
            self.in_flight -= 1


def processor(engine: FlakyEngine, interval_s: float = 0.0) -> FrameProcessor:
    control = ControlState()
    q = QuerySpec(id="g", text="person", interval_s=interval_s)
    control.apply(ControlMessage(op="upsert", kind="query", id=q.id, query=q))
    control.apply(ControlMessage(op="upsert", kind="camera", id=CAM, camera=CameraSpec(id=CAM, url="x.mp4")))
    return FrameProcessor(engine, AnalyzerConfig(max_concurrency=8), control, skip_stale=False)


async def run(p: FrameProcessor, frames: range, prefetch: bool) -> Outputs:
    out = Outputs()
    batch = [(meta(i), JPEG) for i in frames]
    if prefetch:
        p.prefetch(batch)
    for m, jpeg in batch:
        out.extend(await p.process(m, jpeg))
    p.drop_ahead()
    return out


def test_prefetched_frames_are_asked_together_and_give_the_same_events() -> None:
    plain, ahead = SlowEngine(), SlowEngine()
    expected = asyncio.run(run(processor(plain), range(6), prefetch=False))
    got = asyncio.run(run(processor(ahead), range(6), prefetch=True))
    assert plain.max_in_flight == 1 and ahead.max_in_flight == 6
    assert [e.event_id for e in got.events] == [e.event_id for e in expected.events]
    assert expected.events and got.events == expected.events
    assert ahead.ground_calls == plain.ground_calls == 6


def test_prefetch_asks_only_for_due_frames_and_unused_calls_are_cancelled() -> None:
    engine = SlowEngine()
    p = processor(engine, interval_s=1.0)  # frames every 0.5 s: every other one is due
    asyncio.run(run(p, range(6), prefetch=True))
    assert sorted(engine.frames) == [0, 2, 4]

    async def abandoned() -> int:
        p2 = processor(SlowEngine(pause_s=10))
        p2.prefetch([(meta(i), JPEG) for i in range(3)])
        calls = list(p2._ahead.values())
        p2.drop_ahead()  # the batch failed before these frames' turn
        await asyncio.sleep(0)
        return sum(c.cancelled() for c in calls)

    assert asyncio.run(abandoned()) == 3
