"""The honest CPU engine: OpenCV's HOG people detector plus a clothing-colour filter.

It is not GLM-4.5V and says so: `name == "baseline"`, `model == "opencv-hog-people"`.
It answers "people", "person", "<colour> people", "people in/wearing <colour>" and
refuses everything else with `UnsupportedQuery`, so nobody mistakes it for a VLM.
"""

from __future__ import annotations

import asyncio
import re
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass

import cv2
import numpy as np

from configs.engine import BaselineEngineConfig
from glm45v_engine.prompts import is_describe_prompt
from glm45v_engine.types import (
    Answer,
    Box,
    Clip,
    EngineStats,
    Frame,
    Grounding,
    Image,
    SummaryResult,
    TimedSegment,
    UnsupportedQuery,
)

PEOPLE_WORDS = r"(?:people|persons?|pedestrians?|humans?|men|women|someone|anyone)"
# OpenCV hue is 0..179. Each colour: (hue ranges, min saturation, value range).
COLOURS: dict[str, tuple[tuple[tuple[int, int], ...], int, tuple[int, int]]] = {
    "red": (((0, 10), (170, 180)), 90, (60, 256)),
    "orange": (((10, 22),), 90, (80, 256)),
    "yellow": (((22, 35),), 80, (80, 256)),
    "green": (((35, 85),), 60, (40, 256)),
    "blue": (((85, 130),), 60, (40, 256)),
    "purple": (((130, 155),), 50, (40, 256)),
    "pink": (((155, 170),), 50, (80, 256)),
    "brown": (((8, 22),), 80, (30, 150)),
    "white": (((0, 180),), 0, (190, 256)),
    "black": (((0, 180),), 0, (0, 60)),
    "grey": (((0, 180),), 0, (60, 190)),
}
ALIASES = {"gray": "grey", "violet": "purple"}
COLOUR_FRACTION = 0.2  # share of torso pixels in the colour for a match


@dataclass(frozen=True)
class PeopleQuery:
    colour: str | None

    @property
    def label(self) -> str:
        return f"{self.colour} person" if self.colour else "person"


def parse_query(text: str) -> PeopleQuery:
    q = " ".join(text.lower().strip().rstrip("?.!").split())
    words = "|".join(list(COLOURS) + list(ALIASES))
    patterns = [
        rf"^(?:(?:all|the|any)\s+)?(?P<c>{words})?\s*(?:-?\s*(?:clad|dressed|shirted))?\s*{PEOPLE_WORDS}$",
        rf"^(?:(?:all|the|any)\s+)?{PEOPLE_WORDS}\s+(?:in|wearing|dressed in|with)\s+(?:a\s+)?(?P<c>{words})"
        r"(?:\s+(?:clothes|clothing|shirts?|tops?|jackets?|coats?))?$",
    ]
    for p in patterns:
        m = re.match(p, q)
        if m:
            c = m.group("c")
            return PeopleQuery(ALIASES.get(c, c) if c else None)
    raise UnsupportedQuery(
        f"the baseline engine (OpenCV HOG people detector, not a VLM) answers only people queries such as "
        f"'people' or 'people in red'; got {text!r}. Configure engine.type=openai for GLM-4.5V.",
        engine="baseline",
    )


def colour_fraction(image: Image, bbox: tuple[float, float, float, float], colour: str) -> float:
    """Share of the torso (upper-middle of the box) whose pixels have the colour."""
    x1, y1, x2, y2 = bbox
    w, h = x2 - x1, y2 - y1
    tx1, tx2 = int(x1 + 0.25 * w), int(x2 - 0.25 * w)
    ty1, ty2 = int(y1 + 0.2 * h), int(y1 + 0.55 * h)
    crop = image[max(ty1, 0) : max(ty2, 0), max(tx1, 0) : max(tx2, 0)]
    if crop.size == 0:
        return 0.0
    hsv = cv2.cvtColor(crop, cv2.COLOR_BGR2HSV)
    hue, sat, val = hsv[..., 0], hsv[..., 1], hsv[..., 2]
    ranges, min_s, (v_lo, v_hi) = COLOURS[colour]
    hue_ok = np.zeros(hue.shape, bool)
    for lo, hi in ranges:
        hue_ok |= (hue >= lo) & (hue < hi)
    ok = hue_ok & (sat >= min_s) & (val >= v_lo) & (val < v_hi)
    if colour in ("white", "black", "grey"):
        ok &= sat < 60
    return float(ok.mean())


class BaselineEngine:
    name = "baseline"
    model = "opencv-hog-people"

    def __init__(self, config: BaselineEngineConfig | None = None) -> None:
        self.config = config or BaselineEngineConfig()
        self.stats = EngineStats()
        self._local = threading.local()  # HOGDescriptor is not shared between threads

    def _hog(self) -> cv2.HOGDescriptor:
        hog = getattr(self._local, "hog", None)
        if hog is None:
            hog = cv2.HOGDescriptor()
            hog.setSVMDetector(np.asarray(cv2.HOGDescriptor.getDefaultPeopleDetector(), np.float32))
            self._local.hog = hog
        return hog

    def detect(self, image: Image, query: PeopleQuery) -> list[Box]:
        h, w = image.shape[:2]
        cfg = self.config
        scale = max(cfg.upscale, cfg.min_width / w)
        img = cv2.resize(image, (round(w * scale), round(h * scale))) if scale > 1.0 else image
        stride = self.config.win_stride
        rects, weights = self._hog().detectMultiScale(
            img,
            hitThreshold=self.config.hit_threshold,
            winStride=(stride, stride),
            padding=(8, 8),
            scale=self.config.scale,
        )
        boxes = []
        for (x, y, bw, bh), score in zip(rects, np.ravel(weights), strict=False):
            # HOG reports its 64×128 detection window, which pads the person on every side.
            dx, dy = cfg.trim_x * bw, cfg.trim_y * bh
            bbox = (
                max(0.0, (x + dx) / scale),
                max(0.0, (y + dy) / scale),
                min(float(w), (x + bw - dx) / scale),
                min(float(h), (y + bh - dy) / scale),
            )
            if query.colour and colour_fraction(image, bbox, query.colour) < COLOUR_FRACTION:
                continue
            boxes.append(Box(label=query.label, bbox=bbox, score=round(float(score), 4)))
        boxes.sort(key=lambda b: (b.bbox[0], b.bbox[1]))
        return boxes

    def _ground_one(self, frame: Frame, query: PeopleQuery) -> Grounding:
        t0 = time.perf_counter()
        boxes = self.detect(frame.image, query)
        ms = (time.perf_counter() - t0) * 1000
        g = Grounding(boxes=tuple(boxes), image_size=frame.size, raw_text="", latency_ms=ms)
        self.stats.record(g.usage, ms)
        return g

    async def ground(self, frames: Sequence[Frame], query: str, *, thinking: bool = False) -> list[Grounding]:
        q = parse_query(query)
        return [await asyncio.to_thread(self._ground_one, f, q) for f in frames]

    async def summarize(self, clip: Clip, prompt: str, *, thinking: bool = False) -> SummaryResult:
        """Presence segments of people (the detector's honest version of a summary)."""
        t0 = time.perf_counter()
        q = parse_query(prompt) if _mentions_people(prompt) else PeopleQuery(None)
        counts = [
            (f.pts_s or 0.0, len(g.boxes))
            for f, g in zip(clip.frames, await self.ground(clip.frames, q.label), strict=True)
        ]
        segments: list[TimedSegment] = []
        run: list[tuple[float, int]] = []
        for t, n in [*counts, (float("inf"), 0)]:
            if n and t != float("inf"):
                run.append((t, n))
            elif run:
                lo, hi = min(c for _, c in run), max(c for _, c in run)
                many = f"{lo}" if lo == hi else f"{lo}-{hi}"
                segments.append(TimedSegment(run[0][0], run[-1][0], f"{many} {q.label}(s) visible"))
                run = []
        seen = sum(1 for _, n in counts if n)
        text = (
            f"Baseline detector (not a VLM): {q.label} visible in {seen} of {len(counts)} frames, "
            f"at most {max((n for _, n in counts), default=0)} at once."
        )
        return SummaryResult(
            text=text, segments=tuple(segments), latency_ms=(time.perf_counter() - t0) * 1000
        )

    async def ask(self, media: Sequence[Frame] | Clip, prompt: str, *, thinking: bool = False) -> Answer:
        frames = media.frames if isinstance(media, Clip) else tuple(media)
        if not frames:
            raise UnsupportedQuery("ask needs at least one frame", engine=self.name)
        if is_describe_prompt(prompt):
            return template_description(frames[-1], prompt)
        q = parse_query(prompt)
        g = (await self.ground([frames[-1]], q.label))[0]
        text = f"Baseline detector (not a VLM): {len(g.boxes)} {q.label}(s) found in the latest frame."
        return Answer(text=text, boxes=g.boxes, latency_ms=g.latency_ms)

    async def aclose(self) -> None:
        return None


def dominant_colour(image: Image) -> str | None:
    """The named colour covering most of the crop's centre (a template's only observation)."""
    h, w = image.shape[:2]
    box = (0.0, 0.0, float(w), float(h))
    shares = {c: colour_fraction(image, box, c) for c in COLOURS if c not in ("grey", "black", "white")}
    best = max(shares, key=lambda c: shares[c])
    return best if shares[best] >= COLOUR_FRACTION else None


def template_description(frame: Frame, prompt: str) -> Answer:
    """Label + dominant colour, not a model's sentence: the event says so (`description_engine`)."""
    m = re.search(r"crop around an? (.+?) found by", prompt)
    label = m.group(1) if m else "object"
    colour = dominant_colour(frame.image)
    text = f"{label} in {colour}" if colour and colour not in label else label
    return Answer(text=text)


def _mentions_people(text: str) -> bool:
    return re.search(PEOPLE_WORDS, text.lower()) is not None
