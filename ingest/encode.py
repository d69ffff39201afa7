"""Frame → JPEG that fits: at most max_width × max_height (aspect kept) and at most max_bytes."""

from __future__ import annotations

import math
from dataclasses import dataclass

import av
import cv2

MIN_SIDE = 32


class FrameTooLarge(ValueError):
    """Even a tiny, low-quality JPEG does not fit (max_bytes absurdly small)."""


@dataclass(frozen=True)
class Encoded:
    jpeg: bytes
    width: int
    height: int
    quality: int


def fit(width: int, height: int, max_width: int, max_height: int) -> tuple[int, int]:
    scale = min(1.0, max_width / width, max_height / height)
    # Even sizes: swscale and JPEG chroma subsampling both prefer them.
    w = max(2, int(width * scale) // 2 * 2)
    h = max(2, int(height * scale) // 2 * 2)
    return w, h


def encode_jpeg(
    frame: av.VideoFrame, *, max_width: int, max_height: int, quality: int, max_bytes: int
) -> Encoded:
    """Downscale (never crop) until the JPEG fits; lower the quality only when already small."""
    w, h = fit(frame.width, frame.height, max_width, max_height)
    q = quality
    for _ in range(12):
        img = frame.to_ndarray(format="bgr24", width=w, height=h, interpolation="AREA")
        ok, buf = cv2.imencode(".jpg", img, [cv2.IMWRITE_JPEG_QUALITY, q])
        if not ok:  # pragma: no cover - cv2 fails only on empty images
            raise ValueError("JPEG encoding failed")
        size = int(buf.size)
        if size <= max_bytes:
            return Encoded(buf.tobytes(), w, h, q)
        shrink = math.sqrt(max_bytes / size) * 0.92
        if min(w, h) * shrink >= MIN_SIDE:
            w, h = max(2, int(w * shrink) // 2 * 2), max(2, int(h * shrink) // 2 * 2)
        elif q > 20:
            q = max(20, q - 20)
        else:
            break
    raise FrameTooLarge(f"a {frame.width}x{frame.height} frame does not fit in {max_bytes} bytes")
