"""`sightline engine check`: send one probe image to the configured engine and show what came back.

The first thing to run against a new deployment: it prints the model the server reports, the
latency, tokens and cost, the thinking (if any), the raw answer and the parsed boxes, and exits
non-zero with the reason when the engine cannot be reached or refuses.
"""

from __future__ import annotations

import asyncio
import sys
import time
from collections.abc import Mapping
from typing import Any, TextIO

import cv2
import numpy as np
from pydantic import BaseModel

from glm45v_engine.registry import load_engine
from glm45v_engine.types import EngineError, Frame, Grounding, Image, VisionEngine

PROBE_SIZE = (640, 360)
PROBE_FIGURE = (260, 90, 320, 300)  # x1, y1, x2, y2 of the red figure in the probe image


def probe_image() -> Image:
    """A plain scene with one red, person-shaped figure (so box answers can be eyeballed)."""
    w, h = PROBE_SIZE
    img = np.zeros((h, w, 3), np.uint8)
    img[:] = np.linspace(70, 150, h, dtype=np.uint8)[:, None, None]
    x1, y1, x2, y2 = PROBE_FIGURE
    head = (y2 - y1) // 6
    img[y1 + head : y2, x1:x2] = (30, 30, 220)
    img[y1 : y1 + head, x1 + (x2 - x1) // 4 : x2 - (x2 - x1) // 4] = (150, 180, 220)
    return img


def main(
    engine_config: Mapping[str, Any] | BaseModel,
    image: str | None = None,
    query: str = "people",
    out: TextIO | None = None,
) -> int:
    out = out or sys.stdout
    try:
        frame = _load_frame(image)
        engine = load_engine(engine_config)
    except (EngineError, ValueError) as exc:
        print(f"engine check FAILED: {exc}", file=sys.stderr)
        return 2
    t0 = time.perf_counter()
    try:
        grounding = asyncio.run(_probe(engine, frame, query))
    except EngineError as exc:
        where = getattr(getattr(engine, "cfg", None), "base_url", None)
        print(
            f"engine check FAILED ({engine.name}{' at ' + where if where else ''}): {exc}",
            file=sys.stderr,
        )
        return 1
    _report(engine, frame, query, grounding, (time.perf_counter() - t0) * 1000, out)
    return 0


def _load_frame(path: str | None) -> Frame:
    if path is None:
        return Frame(image=probe_image(), camera_id="probe")
    img = cv2.imread(path, cv2.IMREAD_COLOR)
    if img is None:
        raise ValueError(f"cannot read probe image {path!r}")
    return Frame(image=np.asarray(img, np.uint8), camera_id="probe")


async def _probe(engine: VisionEngine, frame: Frame, query: str) -> Grounding:
    try:
        [g] = await engine.ground([frame], query)
        return g
    finally:
        await engine.aclose()


def _report(
    engine: VisionEngine, frame: Frame, query: str, g: Grounding, wall_ms: float, out: TextIO
) -> None:
    prices = getattr(getattr(engine, "cfg", None), "prices", None)
    currency = getattr(prices, "currency", "")
    w, h = frame.size
    lines = [
        f"engine:   {engine.name}",
        f"model:    {engine.model}",
        f"probe:    {w}x{h} image, query {query!r}",
        f"latency:  {g.latency_ms:.0f} ms (call), {wall_ms:.0f} ms (wall, incl. connect/load)",
        f"tokens:   {g.usage.tokens_in} in, {g.usage.tokens_out} out"
        + (" (estimated)" if g.usage.estimated else ""),
        f"cost:     {g.usage.cost:.6f} {currency}".rstrip(),
    ]
    if g.thinking:
        lines.append(f"thinking: {_short(g.thinking)}")
    lines.append(f"answer:   {_short(g.raw_text) if g.raw_text else '(no text: not a language model)'}")
    lines.append(f"boxes:    {len(g.boxes)}")
    for b in g.boxes:
        x1, y1, x2, y2 = b.bbox
        lines.append(f"  - {b.label}: [{x1:.0f}, {y1:.0f}, {x2:.0f}, {y2:.0f}] px")
    print("\n".join(lines), file=out)


def _short(text: str, limit: int = 300) -> str:
    one = " ".join(text.split())
    return one if len(one) <= limit else one[: limit - 1] + "…"
