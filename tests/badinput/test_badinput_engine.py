"""Absurd engine answers through the parser AND the analyzer: sane boxes, valid events, no exception.

The engine here answers with raw model text and parses it exactly as the OpenAI backend does
(`parse_response(text, frame.size)`), so each case runs the path a real GLM answer takes:
parser → box mapping to the original frame → tracker → `ObjectEvent` validation.
"""

from __future__ import annotations

import asyncio
import math
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime

import cv2
import numpy as np
import pytest

from analyzer.core import MAX_LABEL, FrameProcessor
from bus.contracts import CameraSpec, ControlMessage, FrameMeta, ObjectEvent, QuerySpec
from bus.control import ControlState
from configs.settings import AnalyzerConfig, TrackingConfig
from glm45v_engine import Clip, Frame
from glm45v_engine.parsing import parse_response, parse_summary
from glm45v_engine.types import Answer, Box, EngineStats, Grounding, SummaryResult

ORIG = (1280, 720)  # the camera's frame
ENC = (640, 360)  # the JPEG the model saw
JPEG = cv2.imencode(".jpg", np.zeros((ENC[1], ENC[0], 3), np.uint8))[1].tobytes()
CAP = 50


class TextEngine:
    """Answers every grounding call with the same raw model text."""

    name, model = "text", "glm-4.5v"

    def __init__(self, text: str) -> None:
        self.text = text
        self.stats = EngineStats()

    async def ground(self, frames: Sequence[Frame], query: str, *, thinking: bool = False) -> list[Grounding]:
        f = frames[-1]
        parsed = parse_response(self.text, image_size=f.size)
        boxes = tuple(Box(label=b.label or query, bbox=b.bbox) for b in parsed.boxes)
        return [Grounding(boxes=boxes, image_size=f.size, raw_text=self.text, unreadable=parsed.unreadable)]

    async def summarize(self, clip: Clip, prompt: str, *, thinking: bool = False) -> SummaryResult:
        p = parse_summary(self.text)
        return SummaryResult(text=p.text, segments=p.segments, thinking=p.thinking)

    async def ask(self, media: Sequence[Frame] | Clip, prompt: str, *, thinking: bool = False) -> Answer:
        raise NotImplementedError

    async def aclose(self) -> None:
        return None


def _grid(n: int) -> str:
    """n distinct small boxes on a 0-1000 grid."""
    quads = [
        f"[{(i % 90) * 11},{(i // 90) * 11 % 990},{(i % 90) * 11 + 9},{(i // 90) * 11 % 990 + 9}]"
        for i in range(n)
    ]
    return "<|begin_of_box|>[" + ",".join(quads) + "]<|end_of_box|>"


@dataclass(frozen=True)
class Case:
    id: str
    text: str
    boxes: int  # boxes the analyzer keeps for the frame
    full_frame: bool = False  # the one kept box is clamped to the whole frame


CASES = [
    Case("all-negative", "[[-500,-500,-100,-100]]", 0),
    Case("all-beyond-1000", "[[1200,1200,5000,5000]]", 0),
    Case("inverted-corners", "[[900,800,100,200]]", 1),
    Case("straddles-the-edges", "[[-50,-50,1050,1050]]", 1, full_frame=True),
    Case("zero-area", "[[500,500,500,500]]", 0),
    Case("sub-pixel", "[[500,500,500.1,900]]", 0),
    Case("1e308-corners", "[[0,0,1e308,1e308]]", 1, full_frame=True),
    Case("minus-1e308-to-1e308", "[[-1e308,-1e308,1e308,1e308]]", 1, full_frame=True),
    Case("overflow-1e999", "[[0,0,1e999,1e999]]", 0),
    Case("json-NaN", '[{"label": "person", "bbox_2d": [NaN, 0, 10, 10]}]', 0),
    Case("json-Infinity", '[{"label": "person", "bbox_2d": [0, 0, Infinity, 10]}]', 0),
    Case("coordinates-as-strings", '[{"label": "person", "bbox_2d": ["1", "2", "300", "400"]}]', 0),
    Case("three-numbers", "[[100,100,200]]", 0),
    Case("five-numbers", "[[100,100,200,200,300]]", 0),
    Case("thousands-of-boxes", _grid(5000), CAP),
    Case("nul-and-escapes-in-label", "pers\x00on\x1b[31m: [[100,100,300,400]]", 1),
    Case("escaped-nul-in-json-label", '[{"label": "a\\u0000b", "bbox_2d": [100,100,300,400]}]', 1),
    Case("label-of-100k-chars", '[{"label": "' + "x" * 100_000 + '", "bbox_2d": [100,100,300,400]}]', 1),
    Case("unclosed-think-with-boxes", "<think>maybe [[100,100,300,400]]", 0),
    Case("box-tokens-without-numbers", "<|begin_of_box|>a person<|end_of_box|>", 0),
    Case("megabyte-of-brackets", "[" * 500_000 + "]" * 500_000, 0),
]


def _processor(text: str) -> FrameProcessor:
    control = ControlState()
    q = QuerySpec(id="q", text="person")
    control.apply(ControlMessage(op="upsert", kind="query", id=q.id, query=q))
    control.apply(
        ControlMessage(op="upsert", kind="camera", id="cam", camera=CameraSpec(id="cam", url="x.mp4"))
    )
    cfg = AnalyzerConfig(tracking=TrackingConfig(min_hits=1), max_boxes_per_frame=CAP)
    return FrameProcessor(TextEngine(text), cfg, control, skip_stale=False)


def _meta() -> FrameMeta:
    return FrameMeta(
        camera_id="cam",
        frame_id=0,
        source_session="s",
        pts_s=0.0,
        wall_ts=datetime(2026, 1, 1, tzinfo=UTC),
        width=ORIG[0],
        height=ORIG[1],
        encoded_width=ENC[0],
        encoded_height=ENC[1],
    )


@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_absurd_answer_gives_sane_boxes_and_valid_events(case: Case) -> None:
    proc = _processor(case.text)
    seen: list[int] = []
    proc.on_boxes = lambda meta, q, dets: seen.append(len(dets))
    out = asyncio.run(proc.process(_meta(), JPEG))
    # Each answer either yields its boxes or, when it has box markup but no usable box, is counted
    # as unreadable (analyzer.core) — never silently taken for an empty scene and never an exception.
    assert sum(seen) == case.boxes
    assert len(seen) + proc.counters["skipped_unreadable"] == 1
    assert len(out.events) == case.boxes  # min_hits=1: each kept box starts a track
    for e in out.events:
        ObjectEvent.model_validate_json(e.to_json())  # survives the bus and the sink's decoder
        x1, y1, x2, y2 = e.bbox
        assert all(math.isfinite(v) for v in e.bbox)
        assert 0 <= x1 < x2 <= ORIG[0] and 0 <= y1 < y2 <= ORIG[1]
        assert all(0 <= v <= 1 for v in e.bbox_norm)
        assert len(e.label) <= MAX_LABEL and "\x00" not in e.label and "\x1b" not in e.label
    if case.full_frame:
        assert out.events[0].bbox == (0.0, 0.0, float(ORIG[0]), float(ORIG[1]))
    if case.boxes == CAP:
        assert proc.counters["boxes_capped"] == 5000 - CAP


SEGS = '{"summary": "s", "segments": %s}'
SUMMARIES = [
    ("nan-and-negative-times", SEGS % '[{"start_s": NaN, "end_s": 3}, {"start_s": -5, "end_s": 2}]'),
    ("1e308-times", SEGS % '[{"start_s": 1e308, "end_s": 1e309, "description": "x"}]'),
    ("escaped-nul", '{"summary": "a\\u0000b", "segments": [{"start_s": 1, "description": "c\\u0000d"}]}'),
    ("segments-not-a-list", SEGS % '"all of them"'),
]


@pytest.mark.parametrize(("case", "text"), SUMMARIES, ids=[s[0] for s in SUMMARIES])
def test_absurd_summary_answer_gives_a_storable_summary(case: str, text: str) -> None:
    p = parse_summary(text)
    assert "\x00" not in p.text
    for seg in p.segments:
        assert math.isfinite(seg.start_s) and math.isfinite(seg.end_s) and 0 <= seg.start_s <= seg.end_s
        assert "\x00" not in seg.description
