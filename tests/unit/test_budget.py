"""Budgets with a fake clock: the degrade order, the signal, the resume at the next period, priorities."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from datetime import timedelta

from test_analyzer_retry import CAM, JPEG, T0, FlakyEngine  # type: ignore[import-not-found]

from analyzer.budget import LEVELS, Governor, budget_statuses
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


def meta(i: int, w: int = 640, h: int = 360) -> FrameMeta:
    return FrameMeta(
        camera_id=CAM,
        frame_id=i,
        source_session="s1",
        pts_s=i * 0.5,
        wall_ts=T0 + timedelta(seconds=i * 0.5),
        width=w,
        height=h,
        encoded_width=160,
        encoded_height=90,
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


def feed(proc: FrameProcessor, frames: range) -> list[tuple[int, str]]:
    """Process frames one by one; the (frame, level name) of the query 'g' after each."""
    out = []

    async def go() -> None:
        for i in frames:
            await proc.process(meta(i), JPEG, offset=i)
            out.append((i, proc.governor.levels[(CAM, "g")].name))

    asyncio.run(go())
    return out


def test_degrade_order_then_resume_when_the_hour_rolls_over() -> None:
    # room for about 10 calls an hour; every sampled frame (interval 0) is due while normal
    per_call = accounting.prompt_tokens([(160, 90)], ["person"]) + 100
    proc, engine, clock = setup(Budget(tokens_per_hour=10 * per_call + 50), QuerySpec(id="g", text="person"))
    clock.t = 3600.0 * 500  # the start of an hour
    levels = feed(proc, range(60))
    seen = [name for _, name in levels]
    order = [n for k, n in enumerate(seen) if k == 0 or seen[k - 1] != n]
    assert order == ["normal", "longer_interval", "smaller_images", "paused"]  # the documented order
    assert proc.governor.cameras[CAM].spent["tokens"] <= 10 * per_call + 50  # never passed
    assert engine.ground_calls >= 10  # smaller images at level 2 made room for a call or two more
    # longer interval: from half the budget on, calls are at least 2 s of media time apart (not 0.5 s)
    assert proc.counters["skipped_interval"] > 0
    # smaller images: the frames sent at level 2 are half size (a quarter of the visual tokens)
    assert (160, 90) in engine.sizes and (80, 45) in engine.sizes
    assert proc.counters["skipped_budget"] > 0
    assert REGISTRY.get_sample_value(
        "sightline_analyzer_budget_level", {"camera_id": CAM, "query_id": "g"}
    ) == LEVELS.index("paused")
    assert proc.governor.camera_state(CAM).name == "paused"
    # the next hour: back to normal, calls resume at once
    clock.t += 3600
    calls = engine.ground_calls
    later = feed(proc, range(60, 64))
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
