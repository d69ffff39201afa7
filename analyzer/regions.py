"""Moving regions instead of whole frames: where to crop, and boxes back into the frame.

Ingest's motion gate already compares each sampled frame with the previous one; it reports
where the picture changed (`FrameMeta.motion_regions`, 0..1 of the frame). The analyzer, which
knows each query's settings (`configs.settings.Regions`), turns those into crops of the JPEG it
has: each region padded for context, regions close to each other merged, each crop at least
`min_side_px` a side (never below GLM-4.5V's 112 px minimum), all clamped to the frame. The
model's boxes come back in the crop's pixels (the parser has already turned its 0-1000
coordinates into pixels of the image it was sent) and are moved back by the crop's origin —
exact, no scaling.

The whole frame is sent instead when nothing was measured (another gate, the first frame), when
nothing moved (a heartbeat), when the crops would cover more than `full_frame_above` of the
frame, and at least every `full_frame_every_s` of media time, so that objects that stand still
outside the moving regions are looked at again.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import replace

from configs.settings import Regions
from glm45v_engine import Box, Frame, Grounding

Rect = tuple[int, int, int, int]  # x1, y1, x2, y2 in pixels of the image (x2, y2 exclusive)
NormBox = tuple[float, float, float, float]


def _gap(a: Rect, b: Rect) -> int:
    """Chebyshev distance between two rectangles in pixels (0 when they touch or overlap)."""
    gx = max(0, max(a[0], b[0]) - min(a[2], b[2]))
    gy = max(0, max(a[1], b[1]) - min(a[3], b[3]))
    return max(gx, gy)


def _union(rects: Sequence[Rect]) -> Rect:
    return (
        min(r[0] for r in rects),
        min(r[1] for r in rects),
        max(r[2] for r in rects),
        max(r[3] for r in rects),
    )


def _merge(rects: list[Rect], gap: float) -> list[Rect]:
    """Merge any two rectangles at most `gap` apart, until no two are (order-independent result)."""
    rects = sorted(rects)
    merged = True
    while merged:
        merged = False
        for i in range(len(rects)):
            for j in range(i + 1, len(rects)):
                if _gap(rects[i], rects[j]) <= gap:
                    rects[i] = _union([rects[i], rects[j]])
                    del rects[j]
                    merged = True
                    break
            if merged:
                break
    return sorted(rects)


def _grow(lo: int, hi: int, least: int, limit: int) -> tuple[int, int]:
    """Widen [lo, hi) around its centre to at least `least` (at most `limit`), kept inside [0, limit)."""
    least = min(least, limit)
    if hi - lo >= least:
        return lo, hi
    lo = (lo + hi - least) // 2
    lo = min(max(lo, 0), limit - least)
    return lo, lo + least


def pad_rect(box: NormBox, size: tuple[int, int], pad_frac: float) -> Rect:
    """A 0..1 region in pixels of an image of `size`, padded by `pad_frac` of its own size on
    every side, rounded outwards and clamped to the image."""
    w, h = size
    x1, y1, x2, y2 = box[0] * w, box[1] * h, box[2] * w, box[3] * h
    px, py = (x2 - x1) * pad_frac, (y2 - y1) * pad_frac
    return (
        max(0, math.floor(x1 - px)),
        max(0, math.floor(y1 - py)),
        min(w, math.ceil(x2 + px)),
        min(h, math.ceil(y2 + py)),
    )


def plan_crops(
    regions: Sequence[NormBox] | None, size: tuple[int, int], cfg: Regions
) -> tuple[Rect, ...] | None:
    """The crops to send for a frame of `size` (pixels of the image at hand), or None for the
    whole frame: nothing measured or nothing moved, or the crops would cover most of it."""
    if not regions:
        return None
    w, h = size
    rects = [r for r in (pad_rect(b, size, cfg.pad_frac) for b in regions) if r[2] > r[0] and r[3] > r[1]]
    if not rects:
        return None
    gap = cfg.merge_gap_frac * max(w, h)
    for _ in range(len(rects) + 1):  # growing can make crops meet: merge, grow, until stable
        rects = _merge(rects, gap)
        if len(rects) > cfg.max_crops:
            rects = [_union(rects)]
        grown = []
        for r in rects:
            x1, x2 = _grow(r[0], r[2], cfg.min_side_px, w)
            y1, y2 = _grow(r[1], r[3], cfg.min_side_px, h)
            grown.append((x1, y1, x2, y2))
        stable = sorted(grown) == _merge(list(grown), gap)
        rects = grown
        if stable:
            break
    rects = _merge(rects, gap)
    area = sum((r[2] - r[0]) * (r[3] - r[1]) for r in rects)
    if area > cfg.full_frame_above * w * h:
        return None
    return tuple(sorted(rects))


def whole_frame_due(last_full: tuple[str, float] | None, session: str, pts_s: float, every_s: float) -> bool:
    """A whole frame is due when none was sent in this source session, or `every_s` ago or more."""
    return last_full is None or last_full[0] != session or pts_s - last_full[1] >= every_s - 1e-6


def crop(frame: Frame, rect: Rect) -> Frame:
    x1, y1, x2, y2 = rect
    return replace(frame, image=frame.image[y1:y2, x1:x2].copy(), jpeg=None)


def box_to_frame(bbox: tuple[float, float, float, float], rect: Rect) -> tuple[float, float, float, float]:
    """A box in the crop's pixels -> pixels of the image the crop was cut from."""
    return (bbox[0] + rect[0], bbox[1] + rect[1], bbox[2] + rect[0], bbox[3] + rect[1])


def join(answers: Sequence[Grounding], rects: Sequence[Rect], size: tuple[int, int]) -> Grounding:
    """The crops' answers as one answer about the whole image: boxes moved back, usage summed.

    Unreadable only if every crop's answer was (a readable crop says what it saw)."""
    boxes = tuple(
        Box(b.label, box_to_frame(b.bbox, r), b.score)
        for g, r in zip(answers, rects, strict=True)
        for b in g.boxes
    )
    usage = answers[0].usage
    for g in answers[1:]:
        usage = usage + g.usage
    return Grounding(
        boxes=boxes,
        image_size=size,
        raw_text="\n".join(g.raw_text for g in answers),
        thinking=None,
        usage=usage,
        latency_ms=max(g.latency_ms for g in answers),
        unreadable=all(g.unreadable for g in answers) and not boxes,
    )
