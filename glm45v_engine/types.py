"""Engine-side value types: frames in, groundings / summaries / answers out.

Boxes are always in pixels of the ORIGINAL image the caller passed in.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Protocol, runtime_checkable

import numpy as np
import numpy.typing as npt

BBox = tuple[float, float, float, float]
Image = npt.NDArray[np.uint8]


class EngineError(Exception):
    """The engine could not produce an answer (after retries, or for a refused request)."""

    def __init__(self, message: str, *, retryable: bool = False, engine: str = "") -> None:
        super().__init__(message)
        self.retryable = retryable
        self.engine = engine


class UnsupportedQuery(EngineError):
    """The engine cannot answer this kind of question (e.g. the baseline asked about cars)."""


@dataclass(frozen=True, eq=False)
class Frame:
    """One image. `image` is H×W×3 uint8 BGR; `jpeg` may carry the already-encoded bytes."""

    image: Image
    camera_id: str | None = None
    frame_id: int | None = None
    pts_s: float | None = None
    wall_ts: datetime | None = None
    jpeg: bytes | None = None

    def __post_init__(self) -> None:
        img = self.image
        if not isinstance(img, np.ndarray) or img.ndim != 3 or img.shape[2] != 3 or img.dtype != np.uint8:
            raise ValueError("Frame.image must be an H×W×3 uint8 BGR array")

    @property
    def size(self) -> tuple[int, int]:
        """(width, height) of the original image."""
        return int(self.image.shape[1]), int(self.image.shape[0])

    @classmethod
    def from_jpeg(cls, data: bytes, **fields: Any) -> Frame:
        import cv2

        img = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_COLOR)
        if img is None:
            raise ValueError("not a decodable JPEG")
        return cls(image=np.asarray(img, dtype=np.uint8), jpeg=data, **fields)


@dataclass(frozen=True)
class Clip:
    """Frames of one camera in time order, each with its media time."""

    frames: tuple[Frame, ...]
    camera_id: str | None = None

    def __post_init__(self) -> None:
        if not self.frames:
            raise ValueError("a clip needs at least one frame")

    @property
    def start_s(self) -> float:
        return self.frames[0].pts_s or 0.0

    @property
    def end_s(self) -> float:
        return self.frames[-1].pts_s or 0.0


@dataclass(frozen=True)
class Box:
    label: str | None
    bbox: BBox
    score: float | None = None


@dataclass(frozen=True)
class Usage:
    tokens_in: int = 0
    tokens_out: int = 0
    cost: float = 0.0
    estimated: bool = False  # counted locally because the server sent no `usage`
    # Prompt tokens expected before the call was sent (exact visual tokens + estimated text),
    # kept beside the reported `tokens_in` so a drift between the two shows up. 0 = not computed.
    expected_in: int = 0

    def __add__(self, other: Usage) -> Usage:
        return Usage(
            self.tokens_in + other.tokens_in,
            self.tokens_out + other.tokens_out,
            self.cost + other.cost,
            self.estimated or other.estimated,
            self.expected_in + other.expected_in,
        )


@dataclass(frozen=True)
class Grounding:
    """The answer for one frame: its boxes in original-image pixels."""

    boxes: tuple[Box, ...]
    image_size: tuple[int, int]
    raw_text: str = ""
    thinking: str | None = None
    usage: Usage = Usage()
    latency_ms: float = 0.0
    # The answer had box markup (box tokens, a bracket opening a number) and yet no box could be
    # read: a garbled answer, which is not the same as "nothing there". Set by the backend that
    # parsed it, so nobody downstream parses `raw_text` again.
    unreadable: bool = False


@dataclass(frozen=True)
class TimedSegment:
    start_s: float
    end_s: float
    description: str


@dataclass(frozen=True)
class SummaryResult:
    text: str
    segments: tuple[TimedSegment, ...] = ()
    thinking: str | None = None
    raw_text: str = ""
    usage: Usage = Usage()
    latency_ms: float = 0.0


@dataclass(frozen=True)
class Answer:
    text: str
    thinking: str | None = None
    boxes: tuple[Box, ...] = ()
    raw_text: str = ""
    usage: Usage = Usage()
    latency_ms: float = 0.0


@dataclass
class EngineStats:
    """Counters every engine keeps; exported as metrics."""

    calls: int = 0
    errors: int = 0
    retries: int = 0
    tokens_in: int = 0
    tokens_out: int = 0
    tokens_in_expected: int = 0
    cost: float = 0.0
    latency_ms_total: float = 0.0
    by_error: dict[str, int] = field(default_factory=dict)

    def record(self, usage: Usage, latency_ms: float) -> None:
        self.calls += 1
        self.tokens_in += usage.tokens_in
        self.tokens_in_expected += usage.expected_in
        self.tokens_out += usage.tokens_out
        self.cost += usage.cost
        self.latency_ms_total += latency_ms

    def error(self, kind: str) -> None:
        self.errors += 1
        self.by_error[kind] = self.by_error.get(kind, 0) + 1


@runtime_checkable
class VisionEngine(Protocol):
    name: str
    model: str
    stats: EngineStats

    async def ground(
        self, frames: Sequence[Frame], query: str, *, thinking: bool = False
    ) -> list[Grounding]: ...

    async def summarize(self, clip: Clip, prompt: str, *, thinking: bool = False) -> SummaryResult: ...

    async def ask(self, media: Sequence[Frame] | Clip, prompt: str, *, thinking: bool = False) -> Answer: ...

    async def aclose(self) -> None: ...
