"""Descriptions: the baseline's template says what it is; one description per track unless a much
better view comes (then one more, never a third); a failed description costs only the description."""

from __future__ import annotations

import asyncio
from collections import Counter
from datetime import UTC, datetime

import numpy as np

from analyzer.describe import Describer, crop_with_context
from analyzer.tracking import TrackEvent
from bus.contracts import QuerySpec
from glm45v_engine import Frame
from glm45v_engine.baseline import BaselineEngine
from glm45v_engine.prompts import describe_prompt
from sightline.testing import messages as samples

Q = QuerySpec(id="q", text="people", describe=True)
T = datetime(2026, 1, 1, tzinfo=UTC)


def step(phase: str, bbox: tuple[float, float, float, float], tid: str = "t1") -> TrackEvent:
    return TrackEvent(phase, tid, "person", bbox, 0.0, 0, T)  # type: ignore[arg-type]


def solid(bgr: tuple[int, int, int]) -> np.ndarray:
    img = np.zeros((80, 40, 3), np.uint8)
    img[:] = bgr
    return img


def test_baseline_writes_a_template_from_the_dominant_colour() -> None:
    engine = BaselineEngine()
    red = asyncio.run(engine.ask([Frame(image=solid((30, 30, 220)))], describe_prompt("person", "people")))
    assert red.text == "person in red"
    grey = asyncio.run(engine.ask([Frame(image=solid((128, 128, 128)))], describe_prompt("person", "people")))
    assert grey.text == "person"  # no clear colour: the label alone, nothing invented


def test_one_description_per_track_unless_the_view_gets_much_better() -> None:
    d = Describer(BaselineEngine(), asyncio.Semaphore(1), Counter())
    small, same, big, bigger = (0, 0, 10, 20), (5, 0, 15, 20), (0, 0, 20, 40), (0, 0, 80, 160)
    assert d.due("c", Q, [step("start", small)]) == [step("start", small)]
    d._described[("c", "q", "t1")] = (200.0, 1)
    assert d.due("c", Q, [step("update", same)]) == []
    assert d.due("c", Q, [step("update", big)]) == [step("update", big)]  # 4x the area
    d._described[("c", "q", "t1")] = (800.0, 2)
    assert d.due("c", Q, [step("update", bigger)]) == []  # at most two
    d.due("c", Q, [step("end", bigger)])
    assert ("c", "q", "t1") not in d._described  # forgotten when the track ends


def test_annotate_puts_the_description_on_the_event_and_says_who_wrote_it() -> None:
    import cv2

    img = np.full((360, 640, 3), 90, np.uint8)
    img[100:300, 200:260] = (30, 30, 220)
    jpeg = cv2.imencode(".jpg", img)[1].tobytes()
    d = Describer(BaselineEngine(), asyncio.Semaphore(1), Counter())
    ev = samples.event("c", "q", "t1", "start", label="person")
    first_hit = (10, 10, 20, 20)  # a start carries its first hit's box; the crop is where it is now
    now = {"t1": (200.0, 100.0, 260.0, 300.0)}
    out = asyncio.run(d.annotate(Q, "c", jpeg, (640, 360), [step("start", first_hit)], [ev], now))
    assert out[0].description == "person in red" and out[0].description_engine == "baseline-template"
    assert d.counters["descriptions"] == 1
    assert crop_with_context(img, (200, 100, 260, 300)).shape[:2] == (300, 90)  # a quarter more each side


def test_a_failed_description_keeps_the_event() -> None:
    class Broken(BaselineEngine):
        async def ask(self, media, prompt, *, thinking=False):  # type: ignore[no-untyped-def]
            from glm45v_engine import EngineError

            raise EngineError("down")

    import cv2

    jpeg = cv2.imencode(".jpg", np.full((360, 640, 3), 90, np.uint8))[1].tobytes()
    d = Describer(Broken(), asyncio.Semaphore(1), Counter())
    ev = samples.event("c", "q", "t1", "start")
    now = {"t1": (200.0, 100.0, 260.0, 300.0)}
    out = asyncio.run(d.annotate(Q, "c", jpeg, (640, 360), [step("start", (200, 100, 260, 300))], [ev], now))
    assert out == [ev] and d.counters["describe_errors"] == 1
