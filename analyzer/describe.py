"""Descriptions for grounding queries with `describe: true`: one sentence per tracked object.

When a track starts, the engine is asked about a crop of the object with some context around
it (`CONTEXT` of the box on each side); the sentence rides on the `start` event. A later view
at least `REDESCRIBE_AREA` times larger than the described one (the object came closer, or was
cut off at first) earns one more description, on that `update`; no track gets more than
`MAX_PER_TRACK`. Describing at the start rather than at the track's end means search finds the
object while it is still on camera; the re-description is how a better view replaces a poor
first one. Each call goes through the engine like any other (tokens and cost counted, metrics
kind `describe`). A failed description costs the description, never the event.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import Counter
from collections.abc import Sequence

import cv2
import numpy as np

from analyzer import metrics
from analyzer.tracking import TrackEvent
from bus.contracts import ObjectEvent, QuerySpec
from glm45v_engine import EngineError, Frame, VisionEngine
from glm45v_engine.prompts import describe_prompt

log = logging.getLogger(__name__)
CONTEXT = 0.25
REDESCRIBE_AREA = 2.0
MAX_PER_TRACK = 2
MAX_CHARS = 1000
TrackKey = tuple[str, str, str]  # camera, query, track


def _area(b: tuple[float, float, float, float]) -> float:
    return max(0.0, b[2] - b[0]) * max(0.0, b[3] - b[1])


def crop_with_context(image: np.ndarray, bbox: tuple[float, float, float, float]) -> np.ndarray:
    h, w = image.shape[:2]
    x1, y1, x2, y2 = bbox
    dx, dy = (x2 - x1) * CONTEXT, (y2 - y1) * CONTEXT
    a, b = int(max(0, x1 - dx)), int(max(0, y1 - dy))
    c, d = int(min(w, x2 + dx)), int(min(h, y2 + dy))
    return np.ascontiguousarray(image[b:d, a:c])


class Describer:
    def __init__(self, engine: VisionEngine, sem: asyncio.Semaphore, counters: Counter[str]) -> None:
        self.engine, self._sem, self.counters = engine, sem, counters
        self._described: dict[TrackKey, tuple[float, int]] = {}  # area described, descriptions given

    def due(self, camera_id: str, q: QuerySpec, steps: Sequence[TrackEvent]) -> list[TrackEvent]:
        out = []
        for s in steps:
            key = (camera_id, q.id, s.track_id)
            if s.phase == "end":
                self._described.pop(key, None)  # bounded by the open tracks
                continue
            area, n = self._described.get(key, (0.0, 0))
            if n == 0 or (n < MAX_PER_TRACK and _area(s.bbox) >= REDESCRIBE_AREA * area):
                out.append(s)
        return out

    async def annotate(
        self, q: QuerySpec, camera_id: str, jpeg: bytes, size: tuple[int, int], steps: Sequence[TrackEvent],
        events: list[ObjectEvent], seen_now: dict[str, tuple[float, float, float, float]],
    ) -> list[ObjectEvent]:  # fmt: skip
        """`events` with descriptions on the steps that are due; `size` is the original frame's.

        `seen_now` holds each track's box in the frame of `jpeg` (original pixels); a due track not
        in it was not seen in this frame and waits for a frame where it is.
        """
        due = [s for s in self.due(camera_id, q, steps) if s.track_id in seen_now]
        if not due:
            return events
        image = cv2.imdecode(np.frombuffer(jpeg, np.uint8), cv2.IMREAD_COLOR)
        if image is None:
            return events
        sx, sy = image.shape[1] / max(size[0], 1), image.shape[0] / max(size[1], 1)  # boxes are in originals
        said: dict[tuple[str, str], str] = {}
        for s in due:
            b = seen_now[s.track_id]
            box = (b[0] * sx, b[1] * sy, b[2] * sx, b[3] * sy)
            crop = crop_with_context(image, box)
            if crop.size == 0:
                continue
            text = await self._ask(q, camera_id, s.label, crop)
            if text:
                said[(s.track_id, s.phase)] = text
                _, n = self._described.get((camera_id, q.id, s.track_id), (0.0, 0))
                self._described[(camera_id, q.id, s.track_id)] = (_area(b), n + 1)
        return [
            e.model_copy(
                update={"description": said[(e.track_id, e.phase)], "description_engine": self._who()}
            )
            if (e.track_id, e.phase) in said
            else e
            for e in events
        ]

    def _who(self) -> str:
        # The baseline writes a template (label + dominant colour), not a model's sentence: say so.
        return (
            "baseline-template"
            if self.engine.name == "baseline"
            else f"{self.engine.name}:{self.engine.model}"
        )

    async def _ask(self, q: QuerySpec, camera_id: str, label: str, crop: np.ndarray) -> str | None:
        started = time.perf_counter()
        async with self._sem:
            try:
                answer = await self.engine.ask(
                    [Frame(image=crop, camera_id=camera_id)], describe_prompt(label, q.text)
                )
            except EngineError as exc:
                self.counters["describe_errors"] += 1
                metrics.call(camera_id, q.id, "describe", "error", time.perf_counter() - started, None)
                log.warning("description failed: %s", exc, extra={"camera_id": camera_id, "query_id": q.id})
                return None
        metrics.call(camera_id, q.id, "describe", "ok", time.perf_counter() - started, answer.usage)
        self.counters["descriptions"] += 1
        text = " ".join(answer.text.split())[:MAX_CHARS]
        return text or None
