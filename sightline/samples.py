"""Sample media: Debian's vtest.avi when installed, otherwise clips generated here.

Generated clips are deterministic (same arguments → same pixels) and know where
their figures are at every instant, so tests can check boxes and timing exactly.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path

import numpy as np

VTEST_CANDIDATES = (
    Path("/usr/share/doc/opencv-doc/examples/data/vtest.avi"),
    Path("/usr/share/opencv4/samples/data/vtest.avi"),
)


@dataclass(frozen=True)
class Figure:
    """A coloured, person-shaped figure moving in a straight line between enter and exit."""

    colour: tuple[int, int, int]  # BGR
    enter_s: float
    exit_s: float
    start: tuple[float, float]  # centre, as fractions of width and height
    end: tuple[float, float]
    size: tuple[float, float] = (0.08, 0.35)  # width, height as fractions
    label: str = "person"

    def box_at(self, t: float, width: int, height: int) -> tuple[float, float, float, float] | None:
        """Pixel box at media time t, or None when the figure is not in the picture."""
        if not (self.enter_s <= t < self.exit_s):
            return None
        a = (t - self.enter_s) / max(self.exit_s - self.enter_s, 1e-9)
        cx = (self.start[0] + a * (self.end[0] - self.start[0])) * width
        cy = (self.start[1] + a * (self.end[1] - self.start[1])) * height
        w, h = self.size[0] * width, self.size[1] * height
        return (max(0.0, cx - w / 2), max(0.0, cy - h / 2), min(width, cx + w / 2), min(height, cy + h / 2))


def background(width: int, height: int, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    y = np.linspace(60, 140, height, dtype=np.float32)[:, None]
    x = np.linspace(0, 40, width, dtype=np.float32)[None, :]
    base = np.clip(y + x, 0, 255).astype(np.uint8)
    img = np.dstack([base, base + 10, base + 5]).astype(np.uint8)
    for _ in range(6):  # static "furniture" so the scene is not flat
        x1, y1 = int(rng.integers(0, width - 40)), int(rng.integers(0, height - 40))
        w, h = int(rng.integers(20, width // 4)), int(rng.integers(20, height // 4))
        img[y1 : y1 + h, x1 : x1 + w] = rng.integers(30, 200, 3, dtype=np.uint8)
    return img


def render(t: float, bg: np.ndarray, figures: Sequence[Figure]) -> np.ndarray:
    img = bg.copy()
    h, w = img.shape[:2]
    for f in figures:
        box = f.box_at(t, w, h)
        if box is None:
            continue
        x1, y1, x2, y2 = (round(v) for v in box)
        head = max(1, (y2 - y1) // 6)
        img[y1 + head : y2, x1:x2] = f.colour
        hx1, hx2 = x1 + (x2 - x1) // 4, x2 - (x2 - x1) // 4
        img[y1 : y1 + head, hx1:hx2] = (150, 180, 220)
    return img


def generate_clip(
    path: str | Path,
    *,
    duration_s: float = 12.0,
    fps: int = 10,
    size: tuple[int, int] = (640, 360),
    figures: Sequence[Figure] = (),
    seed: int = 0,
    gop: int | None = None,
    noise: float = 0.0,
) -> Path:
    """Encode an H.264 MP4 of the figures over a static background."""

    out = Path(path)
    out.parent.mkdir(parents=True, exist_ok=True)
    width, height = size
    bg = background(width, height, seed)
    rng = np.random.default_rng(seed + 1)

    def frames() -> Iterator[np.ndarray]:
        for i in range(round(duration_s * fps)):
            img = render(i / fps, bg, figures)
            if noise:
                jitter = rng.normal(0, noise, img.shape)
                img = np.clip(img.astype(np.float32) + jitter, 0, 255).astype(np.uint8)
            yield img

    options = {"preset": "ultrafast", "tune": "zerolatency", "g": str(gop or fps * 2), "crf": "23"}
    return write_h264(out, frames(), fps, size, options)


def write_h264(
    path: str | Path, images: Iterable[np.ndarray], fps: int, size: tuple[int, int], options: dict[str, str]
) -> Path:
    """Encode BGR images (each `size` = (width, height)) as an H.264 MP4 at `fps`, frame i at i/fps."""
    import av

    out = Path(path)
    with av.open(str(out), "w") as container:
        stream = container.add_stream("libx264", rate=fps)
        stream.width, stream.height, stream.pix_fmt = size[0], size[1], "yuv420p"
        stream.time_base = Fraction(1, fps)
        stream.options = {**options}  # a copy typed as av wants it
        for i, img in enumerate(images):
            frame = av.VideoFrame.from_ndarray(img, format="bgr24")
            frame.pts = i
            for packet in stream.encode(frame):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
    return out


def vtest_path() -> Path | None:
    return next((p for p in VTEST_CANDIDATES if p.is_file()), None)


def sample_video(data_dir: str | Path) -> Path:
    """The demo's sample camera: vtest.avi (pedestrians) if installed, else a generated clip."""
    found = vtest_path()
    if found:
        return found
    target = Path(data_dir) / "samples" / "sample.mp4"
    if not target.exists():
        generate_clip(
            target,
            duration_s=30,
            fps=10,
            size=(768, 576),
            figures=[
                Figure((40, 40, 200), 2, 14, (0.1, 0.6), (0.9, 0.55)),
                Figure((200, 80, 40), 10, 26, (0.85, 0.5), (0.2, 0.6)),
            ],
        )
    return target


def cut_clip(src: str | Path, dst: str | Path, seconds: float) -> Path:
    """The first `seconds` of a video, re-encoded as H.264 MP4 at the source's size and frame rate."""
    import av

    with av.open(str(src)) as inp:
        vin = inp.streams.video[0]
        fps = round(float(vin.average_rate or 10))
        size = (vin.codec_context.width, vin.codec_context.height)
        images = (f.to_ndarray(format="bgr24") for f in inp.decode(video=0))
        first = itertools.islice(images, math.ceil(seconds * fps))
        return write_h264(dst, first, fps, size, {"preset": "ultrafast", "crf": "20"})


def remux(src: str | Path, dst: str | Path, options: dict[str, str] | None = None) -> Path:
    """The video stream of `src` copied into the container `dst`'s suffix names, packets unchanged."""
    import av

    with av.open(str(src)) as inp, av.open(str(dst), "w", options=options or {}) as out:
        stream = inp.streams.video[0]
        target = out.add_stream_from_template(stream)
        for packet in inp.demux(stream):
            if packet.dts is not None:  # the demuxer's flush packet
                packet.stream = target
                out.mux(packet)
    return Path(dst)
