"""Budgets with a fake clock: the degrade order, the signal, the resume at the next period, priorities."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from datetime import timedelta
from typing import Any

import cv2
import numpy as np
from test_analyzer_retry import CAM, JPEG, T0, FlakyEngine  # type: ignore[import-not-found]

from analyzer.budget import LEVELS, Governor, budget_statuses
from analyzer.budget import Usage as Spend
from analyzer.core import FrameProcessor
from bus.contracts import CameraSpec, ControlMessage, FrameMeta, QuerySpec
from bus.control import ControlState
from configs.settings import AnalyzerConfig, Budget
from glm45v_engine import Frame, accounting
from glm45v_engine.types import Grounding, Usage
from lifecycle.metrics import REGISTRY


class Clock:
    def __init__(self, t: float = 1_000_000.0) -> None:
        self.t = t

    def __call__(self) -> float:
        return self.t


class CostlyEngine(FlakyEngine):
    """Reports usage as a GLM server would (the image's visual tokens, 100 out, 1e-5 a token), and
    remembers the sizes it was sent."""

    def __init__(self) -> None:
        super().__init__()
        self.sizes: list[tuple[int, int]] = []

    async def ground(self, frames: Sequence[Frame], query: str, *, thinking: bool = False) -> list[Grounding]:
        [g] = await super().ground(frames, query, thinking=thinking)
        self.sizes.append(frames[0].size)
        tokens_in = accounting.prompt_tokens([frames[0].size], [query])
        usage = Usage(tokens_in, 100, (tokens_in + 100) * 1e-5)
        self.stats.record(usage, 1.0)
        return [Grounding(g.boxes, g.image_size, usage=usage)]


BIG = cv2.imencode(".jpg", np.zeros((360, 640, 3), np.uint8))[1].tobytes()
MOVED = ((0.1, 0.2, 0.2, 0.5),)  # a walker's worth of motion, as the motion gate reports it


def meta(
    i: int, w: int = 640, h: int = 360, enc: tuple[int, int] = (160, 90), moved: tuple[Any, ...] | None = None
) -> FrameMeta:
    return FrameMeta(
        camera_id=CAM,
        frame_id=i,
        source_session="s1",
        pts_s=i * 0.5,
        wall_ts=T0 + timedelta(seconds=i * 0.5),
        width=w,
        height=h,
        encoded_width=enc[0],
        encoded_height=enc[1],
        motion_regions=moved,
    )


def setup(camera_budget: Budget | None, *queries: QuerySpec) -> tuple[FrameProcessor, CostlyEngine, Clock]:
    control = ControlState()
    for q in queries:
        control.apply(ControlMessage(op="upsert", kind="query", id=q.id, query=q))
    cam = CameraSpec(id=CAM, url="x.mp4", budget=camera_budget)
    control.apply(ControlMessage(op="upsert", kind="camera", id=CAM, camera=cam))
    engine, clock = CostlyEngine(), Clock()
    proc = FrameProcessor(engine, AnalyzerConfig(), control, skip_stale=False)
    proc.governor.clock = clock
    return proc, engine, clock


def feed(proc: FrameProcessor, frames: range, jpeg: bytes = JPEG, **kw: Any) -> list[tuple[int, str]]:
    """Process frames one by one; the (frame, level name) of the query 'g' after each."""
    out = []

    async def go() -> None:
        for i in frames:
            await proc.process(meta(i, **kw), jpeg, offset=i)
            out.append((i, proc.governor.levels[(CAM, "g")].name))

    asyncio.run(go())
    return out


def test_degrade_order_then_resume_when_the_hour_rolls_over() -> None:
    # room for about 10 calls an hour; every sampled frame (interval 0) is due while normal
    per_call = accounting.prompt_tokens([(640, 360)], ["person"]) + 100
    proc, engine, clock = setup(Budget(tokens_per_hour=10 * per_call + 50), QuerySpec(id="g", text="person"))
    clock.t = 3600.0 * 500  # the start of an hour
    big = {"jpeg": BIG, "enc": (640, 360), "moved": MOVED}
    levels = feed(proc, range(80), **big)
    seen = [name for _, name in levels]
    order = [n for k, n in enumerate(seen) if k == 0 or seen[k - 1] != n]
    # the documented order (regions are off for this query: level 3 crops anyway)
    assert order == ["normal", "longer_interval", "smaller_images", "regions_only", "paused"]
    assert proc.governor.cameras[CAM].spent["tokens"] <= 10 * per_call + 50  # never passed
    assert engine.ground_calls >= 10  # smaller images and crops made room for a few calls more
    # longer interval: from half the budget on, calls are at least 2 s of media time apart (not 0.5 s)
    assert proc.counters["skipped_interval"] > 0
    # smaller images: the frames sent at level 2 are half size (a quarter of the visual tokens);
    # regions only: a crop around the motion, at least 224 px a side
    assert (640, 360) in engine.sizes and (320, 180) in engine.sizes and (224, 224) in engine.sizes
    assert engine.sizes.index((320, 180)) < engine.sizes.index((224, 224))
    assert proc.counters["region_calls"] > 0 and proc.counters["skipped_budget"] > 0
    assert REGISTRY.get_sample_value(
        "sightline_analyzer_budget_level", {"camera_id": CAM, "query_id": "g"}
    ) == LEVELS.index("paused")
    assert proc.governor.camera_state(CAM).name == "paused"
    # the next hour: back to normal, calls resume at once
    clock.t += 3600
    calls = engine.ground_calls
    later = feed(proc, range(80, 84), **big)
    assert [name for _, name in later] == ["normal"] * 4 and engine.ground_calls == calls + 4


def test_calls_per_minute_resume_at_the_next_minute() -> None:
    proc, engine, clock = setup(None, QuerySpec(id="g", text="person", budget=Budget(calls_per_minute=4)))
    clock.t = 60.0 * 1000
    feed(proc, range(20))
    assert engine.ground_calls <= 4 and proc.governor.levels[(CAM, "g")].paused
    clock.t += 60
    feed(proc, range(20, 22))
    assert engine.ground_calls >= 5


def test_money_per_day_pauses_before_the_call_that_would_pass_it() -> None:
    per_call = (accounting.prompt_tokens([(160, 90)], ["person"]) + 100) * 1e-5
    cap = 3.5 * per_call
    proc, engine, clock = setup(Budget(money_per_day=cap), QuerySpec(id="g", text="person"))
    clock.t = 86400.0 * 100
    feed(proc, range(40))
    spent = proc.governor.cameras[CAM].spent["money"]
    assert spent <= cap and engine.ground_calls <= 3 and proc.governor.levels[(CAM, "g")].paused
    calls = engine.ground_calls
    clock.t += 86400
    feed(proc, range(40, 41))
    assert engine.ground_calls == calls + 1  # a new UTC day


def test_the_lower_priority_query_degrades_first() -> None:
    gov = Governor(clock=Clock(3600.0 * 7))
    hi, lo = QuerySpec(id="hi", text="person", priority=10), QuerySpec(id="lo", text="car", priority=0)
    budget = Budget(tokens_per_hour=10_000)
    first_level = {}
    for n in range(12):
        for q in (hi, lo):
            d = gov.decide(CAM, q, camera_budget=budget, peers=[hi, lo], tokens=300, cost=0.0)
            if not d.paused:
                gov.record(CAM, q.id, 400, 0.0)
            for level in range(1, len(LEVELS)):
                if d.level >= level:
                    first_level.setdefault((q.id, level), n)
    for level in (1, 2):  # each level reaches the low-priority query no later, and at least once earlier
        assert first_level[("lo", level)] <= first_level[("hi", level)]
    assert first_level[("lo", 1)] < first_level[("hi", 1)] or first_level[("lo", 2)] < first_level[("hi", 2)]


def test_regions_only_asks_nothing_when_nothing_moved() -> None:
    """At level 3 only crops of what moved are sent: a quiet frame (or one from a gate that does
    not measure motion) costs nothing, and the budget says why it was skipped."""
    per_call = accounting.prompt_tokens([(640, 360)], ["person"]) + 100
    proc, engine, clock = setup(Budget(tokens_per_hour=20 * per_call), QuerySpec(id="g", text="person"))
    clock.t = 3600.0 * 600
    proc.governor.cameras.setdefault(CAM, Spend()).add("tokens", clock.t, 0.92 * 20 * per_call)
    quiet = feed(proc, range(10), jpeg=BIG, enc=(640, 360), moved=None)
    assert {name for _, name in quiet} == {"regions_only"} and engine.ground_calls == 0
    assert proc.counters["skipped_budget"] == 10
    moving = feed(proc, range(10, 15), jpeg=BIG, enc=(640, 360), moved=MOVED)  # 2 s: the longer interval
    assert {name for _, name in moving} == {"regions_only"} and engine.sizes == [(224, 224)] * 2


def test_no_budget_no_degradation() -> None:
    proc, engine, _ = setup(None, QuerySpec(id="g", text="person"))
    assert {name for _, name in feed(proc, range(30))} == {"normal"} and engine.ground_calls == 30


def test_budget_state_in_the_camera_status_and_back() -> None:
    proc, _, clock = setup(Budget(calls_per_minute=3), QuerySpec(id="g", text="person"))
    clock.t = 60.0 * 5000
    reported: set[str] = set()
    feed(proc, range(2))
    assert budget_statuses(proc.governor, reported, "w") == []  # 1 of 3 used: nothing to say
    feed(proc, range(2, 12))
    [st] = budget_statuses(proc.governor, reported, "w")
    assert (st.component, st.id, st.state) == ("budget", CAM, "budget")
    assert "camera calls_per_minute" in st.reason and "paused" in st.reason
    clock.t += 60
    feed(proc, range(12, 13))
    [st] = budget_statuses(proc.governor, reported, "w")
    assert st.state == "running" and reported == set()  # said once, when it recovered
    assert budget_statuses(proc.governor, reported, "w") == []
