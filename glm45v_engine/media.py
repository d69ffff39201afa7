"""Pixels to what a server accepts: downscaled JPEG data URLs and short H.264 MP4 clips."""

from __future__ import annotations

import base64
import io
from collections.abc import Sequence
from fractions import Fraction

import cv2
import numpy as np

from glm45v_engine.types import Frame, Image


def fit_size(width: int, height: int, max_side: int) -> tuple[int, int]:
    """(w, h) scaled so the longer side is at most max_side, aspect ratio kept."""
    scale = min(1.0, max_side / max(width, height))
    return max(1, round(width * scale)), max(1, round(height * scale))


def downscale(image: Image, max_side: int) -> Image:
    h, w = image.shape[:2]
    tw, th = fit_size(w, h, max_side)
    if (tw, th) == (w, h):
        return image
    return np.asarray(cv2.resize(image, (tw, th), interpolation=cv2.INTER_AREA), np.uint8)


def frame_jpeg(frame: Frame, max_side: int, quality: int = 90) -> tuple[bytes, tuple[int, int]]:
    """JPEG bytes as sent and their (w, h). Reuses the frame's own JPEG when it is already small enough."""
    w, h = frame.size
    if frame.jpeg is not None and max(w, h) <= max_side:
        return frame.jpeg, (w, h)
    img = downscale(frame.image, max_side)
    ok, buf = cv2.imencode(".jpg", img, [cv2.IMWRITE_JPEG_QUALITY, quality])
    if not ok:
        raise ValueError("could not encode frame as JPEG")
    return buf.tobytes(), (int(img.shape[1]), int(img.shape[0]))


def data_url(data: bytes, mime: str) -> str:
    return f"data:{mime};base64,{base64.b64encode(data).decode('ascii')}"


def subsample(frames: Sequence[Frame], limit: int) -> list[Frame]:
    """At most `limit` frames, evenly spread, always keeping the first and the last."""
    if len(frames) <= limit:
        return list(frames)
    if limit == 1:
        return [frames[-1]]
    idx = sorted({round(i * (len(frames) - 1) / (limit - 1)) for i in range(limit)})
    return [frames[i] for i in idx]


def clip_fps(frames: Sequence[Frame]) -> int:
    """A constant frame rate that keeps the clip's duration (servers read fps from the container)."""
    if len(frames) < 2:
        return 1
    span = (frames[-1].pts_s or 0.0) - (frames[0].pts_s or 0.0)
    if span <= 0:
        return 1
    return max(1, min(30, round((len(frames) - 1) / span)))


def encode_mp4(frames: Sequence[Frame], max_side: int, fps: int) -> bytes:
    """An H.264 MP4 of the frames at a constant fps; sides made even for yuv420p."""
    import av

    first = downscale(frames[0].image, max_side)
    h, w = first.shape[:2]
    w, h = w - w % 2, h - h % 2
    buf = io.BytesIO()
    with av.open(buf, mode="w", format="mp4") as container:
        stream = container.add_stream("libx264", rate=fps)
        stream.width, stream.height, stream.pix_fmt = w, h, "yuv420p"
        stream.time_base = Fraction(1, fps)
        stream.options = {"preset": "ultrafast", "crf": "20"}
        for i, f in enumerate(frames):
            img = np.asarray(cv2.resize(f.image, (w, h), interpolation=cv2.INTER_AREA), np.uint8)
            vf = av.VideoFrame.from_ndarray(img, format="bgr24")
            vf.pts = i
            for packet in stream.encode(vf):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
    return buf.getvalue()
