"""Moving regions instead of whole frames (analyzer.regions): crop geometry, boxes back into the
frame, the whole-frame cadence, ingest's motion regions, and a tracked object that stands still
outside the crops is held, not lost."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta

import av
import cv2
import numpy as np
import pytest

from analyzer import regions as rg
from analyzer.core import FrameProcessor
from analyzer.tracking import Detection, Tracker
from bus.contracts import CameraSpec, ControlMessage, FrameMeta, QuerySpec
from bus.control import ControlState
from configs.settings import AnalyzerConfig, Regions, TrackingConfig
from glm45v_engine import Box, Frame, Grounding
from glm45v_engine.types import EngineStats
from ingest.gating import MotionGate, changed_regions

ON = Regions(enabled=True, pad_frac=0.0, merge_gap_frac=0.0, min_side_px=112, full_frame_above=0.9)
SIZE = (640, 360)


# ---- geometry --------------------------------------------------------------------------------
def test_padding_is_a_fraction_of_the_region_on_every_side_rounded_outwards() -> None:
    # 0.25..0.3 of 640 = 160..192 px (32 wide), 0.5..0.6 of 360 = 180..216 px (36 high)
    assert rg.pad_rect((0.25, 0.5, 0.3, 0.6), SIZE, 0.5) == (144, 162, 208, 234)
    assert rg.pad_rect((0.25, 0.5, 0.3, 0.6), SIZE, 0.0) == (160, 180, 192, 216)


def test_padding_is_clamped_to_the_frame() -> None:
    assert rg.pad_rect((0.0, 0.0, 0.1, 0.1), SIZE, 1.0) == (0, 0, 128, 72)
    assert rg.pad_rect((0.95, 0.9, 1.0, 1.0), SIZE, 2.0) == (544, 252, 640, 360)


def test_a_small_region_grows_to_the_minimum_side_around_its_centre() -> None:
    cfg = ON.model_copy(update={"min_side_px": 224})
    [(x1, y1, x2, y2)] = rg.plan_crops([(0.5, 0.5, 0.51, 0.51)], SIZE, cfg) or []
    assert (x2 - x1, y2 - y1) == (224, 224)
    assert abs((x1 + x2) / 2 - 323) <= 1 and abs((y1 + y2) / 2 - 182) <= 1


def test_the_minimum_size_near_an_edge_is_shifted_inside_not_cut() -> None:
    cfg = ON.model_copy(update={"min_side_px": 224})
    [crop] = rg.plan_crops([(0.0, 0.95, 0.02, 1.0)], SIZE, cfg) or []
    assert crop == (0, 136, 224, 360)


def test_the_minimum_side_never_exceeds_the_frame() -> None:
    cfg = ON.model_copy(update={"min_side_px": 512, "full_frame_above": 1.0})
    [crop] = rg.plan_crops([(0.5, 0.5, 0.52, 0.52)], (640, 200), cfg) or []
    assert crop[3] - crop[1] == 200 and crop[2] - crop[0] == 512


def test_close_regions_merge_and_distant_ones_stay_apart() -> None:
    cfg = ON.model_copy(update={"merge_gap_frac": 0.05})  # 32 px of a 640 px frame
    near = rg.plan_crops([(0.10, 0.10, 0.30, 0.50), (0.33, 0.10, 0.50, 0.50)], SIZE, cfg)
    assert near == ((64, 36, 320, 180),)  # 19.2 px apart: one crop around both
    far = rg.plan_crops([(0.05, 0.10, 0.25, 0.50), (0.75, 0.10, 0.95, 0.50)], SIZE, cfg)
    assert far == ((32, 36, 160, 180), (480, 36, 608, 180))


def test_more_crops_than_allowed_become_one() -> None:
    cfg = ON.model_copy(update={"max_crops": 2})
    boxes = [(0.02, 0.1, 0.12, 0.3), (0.45, 0.1, 0.55, 0.3), (0.85, 0.6, 0.95, 0.9)]
    assert rg.plan_crops(boxes, SIZE, cfg) == ((12, 36, 608, 324),)


def test_growing_to_the_minimum_merges_crops_that_then_overlap() -> None:
    cfg = ON.model_copy(update={"min_side_px": 224})
    crops = rg.plan_crops([(0.40, 0.4, 0.42, 0.45), (0.52, 0.4, 0.54, 0.45)], SIZE, cfg)
    assert crops is not None and len(crops) == 1


def test_whole_frame_when_nothing_measured_nothing_moved_or_most_of_it_moved() -> None:
    assert rg.plan_crops(None, SIZE, ON) is None
    assert rg.plan_crops((), SIZE, ON) is None
    half = ON.model_copy(update={"full_frame_above": 0.5})
    assert rg.plan_crops([(0.0, 0.0, 0.8, 0.8)], SIZE, half) is None  # 64 % of the frame
    assert rg.plan_crops([(0.0, 0.0, 0.6, 0.6)], SIZE, half) == ((0, 0, 384, 216),)  # 36 %


# ---- boxes back into the frame ------------------------------------------------------------------
def test_boxes_map_back_exactly_by_the_crop_origin() -> None:
    assert rg.box_to_frame((10.5, 20.0, 30.25, 40.0), (100, 50, 300, 250)) == (110.5, 70.0, 130.25, 90.0)


def test_the_model_s_normalised_boxes_land_where_they_are_in_the_frame() -> None:
    from glm45v_engine.parsing import parse_response

    crop = (200, 100, 424, 324)  # 224 x 224
    # the model answers 0-1000 of the crop: [250, 500, 750, 1000] = 56..168 x 112..224 px of it
    parsed = parse_response("<|begin_of_box|>[[250,500,750,1000]]<|end_of_box|>", (224, 224))
    [b] = rg.join([Grounding(parsed.boxes, (224, 224))], [crop], SIZE).boxes
    assert b.bbox == pytest.approx((256.0, 212.0, 368.0, 324.0))


def test_joined_crops_keep_every_box_and_sum_usage() -> None:
    from glm45v_engine.types import Usage

    a = Grounding((Box("p", (1.0, 2.0, 3.0, 4.0)),), (50, 50), usage=Usage(10, 2, 0.1), latency_ms=5)
    b = Grounding((Box("q", (0.0, 0.0, 5.0, 5.0)),), (60, 60), usage=Usage(20, 3, 0.2), latency_ms=9)
    g = rg.join([a, b], [(10, 10, 60, 60), (100, 0, 160, 60)], SIZE)
    assert [x.bbox for x in g.boxes] == [(11.0, 12.0, 13.0, 14.0), (100.0, 0.0, 105.0, 5.0)]
    assert (g.usage.tokens_in, g.usage.tokens_out, g.latency_ms, g.image_size) == (30, 5, 9, SIZE)


# ---- cadence ------------------------------------------------------------------------------------
def test_whole_frame_cadence_in_media_time_per_session() -> None:
    assert rg.whole_frame_due(None, "s", 0.0, 10.0)
    assert not rg.whole_frame_due(("s", 0.0), "s", 9.5, 10.0)
    assert rg.whole_frame_due(("s", 0.0), "s", 10.0, 10.0)
    assert rg.whole_frame_due(("s", 20.0), "t", 0.5, 10.0)  # a new source session starts whole


# ---- ingest's motion regions --------------------------------------------------------------------
def test_changed_regions_box_each_moving_area_and_ignore_single_cells() -> None:
    m = np.zeros((36, 64), bool)
    m[10:20, 5:10] = True
    m[30, 60] = True  # one cell: noise
    m[2:6, 40:50] = True
    expected = [(5 / 64, 10 / 36, 10 / 64, 20 / 36), (40 / 64, 2 / 36, 50 / 64, 6 / 36)]
    assert [pytest.approx(b, abs=1e-4) for b in expected] == list(changed_regions(m))
    assert changed_regions(np.zeros((36, 64), bool)) == ()


def test_motion_gate_reports_where_a_block_moved() -> None:
    gate = MotionGate(heartbeat_s=1000.0, threshold=0.01)
    bg = np.full((360, 640, 3), 90, np.uint8)

    def frame(x: int) -> av.VideoFrame:
        img = bg.copy()
        img[100:200, x : x + 50] = 250
        return av.VideoFrame.from_ndarray(img, format="bgr24").reformat(format="yuv420p")

    assert gate.decide(frame(100), 0.0).regions is None  # nothing to compare with yet
    d = gate.decide(frame(140), 0.5)
    # a uniform block changes where it left and where it arrived: its two edges (merged downstream)
    assert d.publish and d.regions is not None and 1 <= len(d.regions) <= 2
    x1, y1, x2, y2 = rg._union([tuple(round(c * 1000) for c in b) for b in d.regions])  # type: ignore[misc]
    x1, y1, x2, y2 = x1 / 1000, y1 / 1000, x2 / 1000, y2 / 1000
    assert x1 * 640 <= 100 + 10 and x2 * 640 >= 190 - 10  # old and new place, within a cell
    assert y1 * 360 <= 110 and y2 * 360 >= 190


# ---- the analyzer ---------------------------------------------------------------------------------
CAM = "cam"
T0 = datetime(2024, 1, 1, tzinfo=UTC)
JPEG = cv2.imencode(".jpg", np.zeros((360, 640, 3), np.uint8))[1].tobytes()
STILL = (500.0, 100.0, 540.0, 200.0)  # a person standing still, right
WALKER_Y = (150.0, 260.0)


class SceneEngine:
    """Boxes what a 640x360 scene holds inside the image it is sent: a still person on the right and
    a walker on the left. Crops are told apart by their size and the crop the test planned."""

    name, model = "scene", "m"

    def __init__(self) -> None:
        self.stats = EngineStats()
        self.sizes: list[tuple[int, int]] = []
        self.origin: dict[tuple[int, int], tuple[int, int]] = {}

    async def ground(self, frames: Sequence[Frame], query: str, *, thinking: bool = False) -> list[Grounding]:
        out = []
        for f in frames:
            self.sizes.append(f.size)
            ox, oy = self.origin.get(f.size, (0, 0)) if f.size != (640, 360) else (0, 0)
            x = 20.0 + 10 * (f.frame_id or 0)
            scene = [STILL, (x, WALKER_Y[0], x + 30, WALKER_Y[1])]
            w, h = f.size
            boxes = tuple(
                Box("person", (b[0] - ox, b[1] - oy, b[2] - ox, b[3] - oy))
                for b in scene
                if ox <= (b[0] + b[2]) / 2 <= ox + w and oy <= (b[1] + b[3]) / 2 <= oy + h
            )
            out.append(Grounding(boxes, f.size))
        return out

    async def aclose(self) -> None:
        return None


def frame_meta(i: int, regions: tuple[tuple[float, float, float, float], ...] | None) -> FrameMeta:
    return FrameMeta(
        camera_id=CAM, frame_id=i, source_session="s1", pts_s=i * 0.5,
        wall_ts=T0 + timedelta(seconds=i * 0.5), width=640, height=360,
        encoded_width=640, encoded_height=360, motion_regions=regions,
    )  # fmt: skip


def test_the_analyzer_sends_crops_maps_boxes_back_and_holds_a_still_person_outside_them() -> None:
    engine = SceneEngine()
    control = ControlState()
    q = QuerySpec(
        id="g", text="person", regions=Regions(enabled=True, full_frame_every_s=5.0, min_side_px=224)
    )
    control.apply(ControlMessage(op="upsert", kind="query", id=q.id, query=q))
    control.apply(ControlMessage(op="upsert", kind="camera", id=CAM, camera=CameraSpec(id=CAM, url="x.mp4")))
    cfg = AnalyzerConfig(tracking=TrackingConfig(max_missing_s=2.0))
    p = FrameProcessor(engine, cfg, control, skip_stale=False)  # type: ignore[arg-type]

    async def run() -> list[tuple[str, str, tuple[float, ...]]]:
        events = []
        for i in range(24):  # 12 s at 2 fps: the walker moves 10 px a frame on the left
            x = 20.0 + 10 * i
            region = ((x - 10) / 640, WALKER_Y[0] / 360, (x + 30) / 640, WALKER_Y[1] / 360)
            crops = p._crops(q, frame_meta(i, (region,)), p.last_full)
            if crops:
                [(cx1, cy1, cx2, cy2)] = crops
                engine.origin[(cx2 - cx1, cy2 - cy1)] = (cx1, cy1)
            out = await p.process(frame_meta(i, (region,)), JPEG)
            events += [(e.phase, e.track_id, tuple(e.bbox)) for e in out.events]
        return events

    events = asyncio.run(run())
    whole = [s for s in engine.sizes if s == (640, 360)]
    assert 2 <= len(whole) <= 4 and len(engine.sizes) == 24  # frames 0, 10, 20 (every 5 s) whole
    starts = [e for e in events if e[0] == "start"]
    assert len(starts) == 2 and not [e for e in events if e[0] == "end"]  # the still person is held
    walker_updates = [e for e in events if e[0] == "update" and e[2][0] < 400]
    for _, _, (x1, y1, _, y2) in walker_updates:  # crop boxes back in frame pixels: on the walker
        assert (y1, y2) == WALKER_Y and (x1 - 20) % 10 == 0


def test_regions_are_off_by_default_and_the_whole_frame_is_sent() -> None:
    engine = SceneEngine()
    control = ControlState()
    q = QuerySpec(id="g", text="person")
    control.apply(ControlMessage(op="upsert", kind="query", id=q.id, query=q))
    p = FrameProcessor(engine, AnalyzerConfig(), control, skip_stale=False)  # type: ignore[arg-type]
    asyncio.run(p.process(frame_meta(3, ((0.1, 0.4, 0.2, 0.7),)), JPEG))
    assert engine.sizes == [(640, 360)]


def test_a_track_outside_the_view_is_held_until_a_whole_frame_looks_again() -> None:
    t = Tracker(CAM, "g", TrackingConfig(min_hits=1, max_missing_s=2.0))
    box = (500.0, 100.0, 540.0, 200.0)
    t.step(0.0, 0, T0, [Detection("person", box)], "s1", SIZE)
    for k in range(1, 10):  # 4.5 s of crops elsewhere: held
        ev = t.step(k * 0.5, k, T0, [], "s1", SIZE, view=[(0.0, 0.0, 200.0, 360.0)])
        assert not ev
    assert not t.step(5.0, 10, T0, [], "s1", SIZE)  # a whole frame without it: missing from now…
    assert not t.step(6.5, 13, T0, [], "s1", SIZE)
    [end] = t.step(7.0, 14, T0, [], "s1", SIZE)  # …2 s after the last time it could be seen
    assert end.phase == "end" and end.pts_s == 0.0  # last *seen* at 0 s, as before


def test_a_change_of_light_is_not_motion_but_a_block_moving_through_it_is() -> None:
    gate = MotionGate(heartbeat_s=1000.0, threshold=0.01)
    bg = np.tile(np.linspace(60, 180, 640, dtype=np.float32), (360, 1))

    def frame(shift: float, x: int | None = None) -> av.VideoFrame:
        img = np.clip(bg + shift, 0, 255).astype(np.uint8)
        if x is not None:
            img[100:200, x : x + 50] = 250
        return av.VideoFrame.from_ndarray(np.dstack([img] * 3), format="bgr24").reformat(format="yuv420p")

    gate.decide(frame(0.0), 0.0)
    d = gate.decide(frame(25.0), 0.5)  # the light goes up by 25 grey levels everywhere
    assert not d.publish and d.score == 0.0
    d = gate.decide(frame(0.0, x=300), 1.0)  # and down again while a block appears
    assert d.publish and d.regions is not None and len(d.regions) == 1
    x1, _, x2, _ = d.regions[0]
    assert 280 <= x1 * 640 <= 300 and 350 <= x2 * 640 <= 370


def test_prefetched_calls_send_the_same_crops_as_in_order_processing() -> None:
    def make() -> tuple[FrameProcessor, SceneEngine]:
        engine = SceneEngine()
        control = ControlState()
        q = QuerySpec(id="g", text="person", regions=Regions(enabled=True, full_frame_every_s=3.0))
        control.apply(ControlMessage(op="upsert", kind="query", id=q.id, query=q))
        return FrameProcessor(engine, AnalyzerConfig(), control, skip_stale=False), engine  # type: ignore[arg-type]

    def region(i: int) -> tuple[tuple[float, float, float, float], ...]:
        x = 20.0 + 10 * i
        return (((x - 10) / 640, WALKER_Y[0] / 360, (x + 30) / 640, WALKER_Y[1] / 360),)

    async def run(prefetch: bool) -> tuple[list[tuple[int, int]], list[str]]:
        p, engine = make()
        batch = [(frame_meta(i, region(i) if i % 5 else ()), JPEG) for i in range(14)]
        if prefetch:
            p.prefetch(batch)
        events = []
        for m, jpeg in batch:
            events += [e.event_id for e in (await p.process(m, jpeg)).events]
        p.drop_ahead()
        return engine.sizes, events

    plain, ahead = asyncio.run(run(False)), asyncio.run(run(True))
    assert sorted(ahead[0]) == sorted(plain[0]) and ahead[1] == plain[1]
    assert (640, 360) in plain[0] and len(set(plain[0])) > 1  # whole frames and crops both


def test_the_budget_expects_the_cost_of_the_crops_not_of_the_whole_frame() -> None:
    from configs.settings import Budget

    control = ControlState()
    q = QuerySpec(id="g", text="person", budget=Budget(tokens_per_hour=300), regions=Regions(enabled=True))
    control.apply(ControlMessage(op="upsert", kind="query", id=q.id, query=q))
    p = FrameProcessor(SceneEngine(), AnalyzerConfig(), control, skip_stale=False)  # type: ignore[arg-type]
    m = frame_meta(1, ((0.1, 0.4, 0.15, 0.7),))
    assert p._budget(q, m).paused  # a 640x360 frame is ~380 prompt tokens: over the cap alone
    assert not p._budget(q, m, ((0, 0, 224, 224),)).paused  # a 224 px crop is ~145
