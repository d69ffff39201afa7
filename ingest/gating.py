"""Gates: which sampled frames are worth publishing. Motion and scene change look at a tiny grey image.

Every gate publishes a heartbeat frame at least every `heartbeat_s` of media time, so a
person standing still is still seen downstream.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import av
import numpy as np

Reason = Literal["sample", "motion", "scene_change", "heartbeat", "keyframe", "first"]
GateName = Literal["always", "motion", "scene_change"]

SMALL_WIDTH = 64
# Grey levels; below this a pixel counts as unchanged (noise, compression). After the 3x3 blur,
# per-pixel sensor noise of sigma 10 stays under 15 (sigma 6 under 10). At 25, a person whose
# clothes differ from the background by ~30 levels went unseen for half of a walk
# (found by `sightline bench gating`).
PIXEL_DELTA = 15


MAX_REGIONS = 16  # more separate changes than this are reported as the one box around them all
Box = tuple[float, float, float, float]


@dataclass(frozen=True)
class Decision:
    publish: bool
    reason: Reason
    score: float | None
    regions: tuple[Box, ...] | None = None  # where it changed, 0..1 of the frame (motion gate only)


def small_grey(frame: av.VideoFrame, width: int = SMALL_WIDTH) -> np.ndarray:
    """A ~64-pixel-wide grey image, as float32. Strided reads of the luma plane: no full conversion."""
    if frame.format.name.startswith(("yuv", "yuvj", "nv12", "nv21", "gray")):
        plane = frame.planes[0]
        luma = np.frombuffer(memoryview(plane), np.uint8).reshape(plane.height, plane.line_size)
        luma = luma[:, : frame.width]
        step = max(1, frame.width // width)
        small: np.ndarray = luma[::step, ::step]
    else:
        h = max(1, round(frame.height * width / frame.width))
        small = np.asarray(frame.to_ndarray(format="gray", width=width, height=h))
    return small.astype(np.float32)


def _blur(img: np.ndarray) -> np.ndarray:
    # 3x3 box blur by shifted sums: cheap, and it removes single-pixel codec noise.
    p = np.pad(img, 1, mode="edge")
    h, w = img.shape
    out = sum(p[dy : dy + h, dx : dx + w] for dy in range(3) for dx in range(3))
    return np.asarray(out, dtype=np.float32) / 9.0


class Gate:
    """Base: `decide(frame, pts_s)` for each sampled frame, in order."""

    name: GateName = "always"

    def __init__(self, heartbeat_s: float) -> None:
        self.heartbeat_s = heartbeat_s
        self._last_pub: float | None = None

    def decide(self, frame: av.VideoFrame, pts_s: float, keyframe_reason: bool = False) -> Decision:
        score = self.score(frame)
        base: Reason = "keyframe" if keyframe_reason else "sample"
        if self._last_pub is None or pts_s < self._last_pub:
            d = Decision(True, "first", score, self.regions())
        elif self.triggered(score):
            d = Decision(True, base if self.name == "always" else self.name, score, self.regions())
        elif pts_s - self._last_pub >= self.heartbeat_s:
            d = Decision(True, "heartbeat", score, self.regions())
        else:
            d = Decision(False, base, score)
        if d.publish:
            self._last_pub = pts_s
            self.published()
        return d

    def score(self, frame: av.VideoFrame) -> float | None:
        return None

    def triggered(self, score: float | None) -> bool:
        return True

    def regions(self) -> tuple[Box, ...] | None:
        """Where the frame just scored changed (None: this gate does not measure it)."""
        return None

    def published(self) -> None:
        """Hook: the frame just scored was published."""


class MotionGate(Gate):
    """Changed-area fraction between consecutive sampled frames, on a small blurred grey image,
    after taking out a change of the whole picture's brightness (lighting is not motion)."""

    name: GateName = "motion"

    def __init__(self, heartbeat_s: float, threshold: float) -> None:
        super().__init__(heartbeat_s)
        self.threshold = threshold
        self._prev: np.ndarray | None = None
        self._changed: np.ndarray | None = None

    def score(self, frame: av.VideoFrame) -> float | None:
        cur = _blur(small_grey(frame))
        prev, self._prev = self._prev, cur
        if prev is None or prev.shape != cur.shape:
            self._changed = None
            return 0.0
        diff = cur - prev
        # A light switched or flickering shifts every pixel alike: that is not motion. The median
        # change is the shift (most of a picture does not move); motion is change beyond it.
        self._changed = np.abs(diff - float(np.median(diff))) > PIXEL_DELTA
        return float(np.mean(self._changed))

    def triggered(self, score: float | None) -> bool:
        return score is not None and score >= self.threshold

    def regions(self) -> tuple[Box, ...] | None:
        return None if self._changed is None else changed_regions(self._changed)


def changed_regions(changed: np.ndarray, max_regions: int = MAX_REGIONS) -> tuple[Box, ...]:
    """Boxes (0..1 of the image) around the connected changed areas of a small boolean mask.

    Single changed cells are codec noise and ignored; a cell stands for several pixels of the
    frame, so the boxes are as coarse as the mask (~10 px of a 640 px frame)."""
    import cv2

    mask = changed.astype(np.uint8)
    n, _, stats, _ = cv2.connectedComponentsWithStats(mask, connectivity=8)
    h, w = mask.shape
    boxes = [
        (float(x / w), float(y / h), float((x + bw) / w), float((y + bh) / h))
        for x, y, bw, bh, area in (stats[i] for i in range(1, n))
        if area >= 2
    ]
    boxes.sort(key=lambda b: (b[2] - b[0]) * (b[3] - b[1]), reverse=True)
    if len(boxes) > max_regions:
        boxes = [
            (
                min(b[0] for b in boxes),
                min(b[1] for b in boxes),
                max(b[2] for b in boxes),
                max(b[3] for b in boxes),
            )
        ]
    return tuple((round(b[0], 4), round(b[1], 4), round(b[2], 4), round(b[3], 4)) for b in boxes)


class SceneGate(Gate):
    """L1 distance (0..2) of grey histograms between this frame and the last published one."""

    name: GateName = "scene_change"

    def __init__(self, heartbeat_s: float, threshold: float) -> None:
        super().__init__(heartbeat_s)
        self.threshold = threshold
        self._ref: np.ndarray | None = None
        self._cur: np.ndarray | None = None

    def score(self, frame: av.VideoFrame) -> float | None:
        hist, _ = np.histogram(small_grey(frame), bins=32, range=(0, 256))
        self._cur = hist.astype(np.float32) / max(1, int(hist.sum()))
        if self._ref is None:
            return 0.0
        return float(np.abs(self._cur - self._ref).sum())

    def triggered(self, score: float | None) -> bool:
        return score is not None and score >= self.threshold

    def published(self) -> None:
        self._ref = self._cur


def make_gate(name: GateName, *, heartbeat_s: float, motion_threshold: float, scene_threshold: float) -> Gate:
    if name == "motion":
        return MotionGate(heartbeat_s, motion_threshold)
    if name == "scene_change":
        return SceneGate(heartbeat_s, scene_threshold)
    return Gate(heartbeat_s)
