"""Cutting clips out of recordings with PyAV: remuxed (no re-encode) or annotated (boxes burnt in).

A clip is a list of pieces, each a file and a stretch of it, placed on one timeline (wall-clock
epoch seconds for segments, media seconds for a file camera). The clip's time 0 is `origin`;
a packet at timeline time T sits at T - origin in the clip, so a hole between pieces stays a
hole (players hold the last frame) and box times map to video times by one subtraction.

Remuxed clips start at the keyframe at or before the requested start (no re-encode at all);
annotated clips are decoded and re-encoded anyway, so they start exactly at `start`. A source
whose codec MP4 cannot carry (a file camera's MS-MPEG4 AVI, such as the demo's vtest) is
re-encoded to H.264 like an annotated clip without boxes: a clip that plays beats a 500.
A piece that cannot be read (missing, corrupt, cut short) becomes a gap, never an error.
"""

from __future__ import annotations

import logging
import queue
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from fractions import Fraction
from pathlib import Path
from typing import Any

import av
import av.error

log = logging.getLogger(__name__)
OUT_TB = Fraction(1, 90000)
Boxes = list[tuple[tuple[float, float, float, float], str]]
BoxesAt = Callable[[float], Boxes]


@dataclass(frozen=True)
class Piece:
    path: Path
    base: float  # timeline time of the file's media time 0
    start: float  # timeline span of this file that the clip wants
    end: float
    covers: tuple[float, float]  # what the file holds on the timeline (for reporting what is lost)
    ours: bool = False  # a segment we wrote: its MP4 header says everything, so skip the probing


@dataclass
class ClipResult:
    origin: float | None = None  # timeline time of the clip's 0 (None: nothing could be read)
    end: float | None = None
    frames: int = 0
    size: tuple[int, int] | None = None  # an annotated clip's picture size (width, height)
    source_size: tuple[int, int] | None = None  # ... and the recording's
    gaps: list[tuple[float, float, str]] = field(default_factory=list)  # timeline start, end, why


class ClipEmpty(LookupError):
    """Nothing readable in the requested range."""


def _packets(
    piece: Piece, result: ClipResult, first: bool, threads: bool = False
) -> Iterator[tuple[Any, float]]:
    """(packet, timeline time) of one piece; the first piece starts at the keyframe before its start."""
    try:
        # Probing a segment decodes frames to learn what its header already says: a third of a
        # 10 s clip's serving time at 1080p.
        options = {"probesize": "32", "analyzeduration": "0"} if piece.ours else {}
        container = av.open(str(piece.path), options=options)
    except (av.error.FFmpegError, OSError) as exc:
        result.gaps.append((*piece.covers, f"unreadable segment: {type(exc).__name__}"))
        return
    last_t = piece.covers[0]
    try:
        stream = container.streams.video[0]
        if threads:
            stream.thread_type = "AUTO"  # frame threads: the caller flushes the decoder at the end
        tb = stream.time_base or Fraction(1, 90000)
        held: list[tuple[Any, float]] = []  # the GOP before `start`, for the first piece
        for pkt in container.demux(stream):
            ticks = pkt.pts if pkt.pts is not None else pkt.dts
            if pkt.size == 0 or ticks is None:
                continue
            t = piece.base + float(ticks * tb)
            if t >= piece.end:
                break
            if t < piece.start:
                if first and pkt.is_keyframe:
                    held = [(pkt, t)]
                elif first and held:
                    held.append((pkt, t))
                continue
            if held and not pkt.is_keyframe:  # a keyframe right at start needs nothing before it
                yield from held
            held = []
            last_t = t
            yield pkt, t
        if threads:
            yield None, last_t  # flush the decoder now, while its container is still open
    except (av.error.FFmpegError, OSError) as exc:
        result.gaps.append((last_t, piece.covers[1], f"segment cut short: {type(exc).__name__}"))
    finally:
        container.close()


def find_origin(pieces: list[Piece]) -> float | None:
    """Where `remux` would put the clip's 0 s (its first keyframe), by reading packets only."""
    scratch = ClipResult()
    for i, piece in enumerate(pieces):
        for pkt, t in _packets(piece, scratch, first=i == 0):
            if pkt.is_keyframe:
                return t
    return None


def remux(pieces: list[Piece], out_path: Path) -> ClipResult:
    """A plain MP4 with the index in front (faststart), packets copied."""
    result = ClipResult()
    out: Any = None
    ostream: Any = None
    last_dts = -1
    try:
        for i, piece in enumerate(pieces):
            for pkt, t in _packets(piece, result, first=i == 0 or out is None):
                if out is None:
                    if not pkt.is_keyframe:
                        continue  # a clip must start on a keyframe
                    out = av.open(str(out_path), "w", format="mp4", options={"movflags": "+faststart"})
                    try:
                        ostream = out.add_stream_from_template(pkt.stream)
                    except ValueError:  # a codec MP4 cannot hold (the MS-MPEG4 of an old AVI)
                        out.close()
                        out = None
                        return annotate(pieces, out_path, pieces[0].start, lambda _t: [])
                    ostream.time_base = OUT_TB
                    result.origin = t
                assert result.origin is not None
                tb = pkt.time_base
                shift = (pkt.dts - pkt.pts) if pkt.dts is not None and pkt.pts is not None else 0
                pts = round((t - result.origin) / OUT_TB)
                dts = pts + round(shift * tb / OUT_TB)
                if dts <= last_dts:
                    dts = last_dts + 1
                pkt.time_base = OUT_TB
                pkt.pts, pkt.dts = max(pts, dts), dts
                pkt.stream = ostream
                out.mux(pkt)
                last_dts = dts
                result.frames += 1
                result.end = t
    finally:
        if out is not None:
            out.close()
    if result.origin is None:
        raise ClipEmpty("no readable video in the requested range")
    return result


def _planes(frame: Any) -> list[Any]:
    """Writable numpy views of a 4:2:0 frame's Y, U and V planes (their visible part)."""
    import numpy as np

    return [
        np.frombuffer(memoryview(p), np.uint8).reshape(p.height, p.line_size)[:, : p.width]
        for p in frame.planes[:3]
    ]


def _picture(frame: Any, boxes: Boxes, size: tuple[int, int], scaler: Any) -> Any:
    """The frame to encode: `frame` itself when it needs nothing, else a new 4:2:0 frame of `size`
    with the boxes drawn straight into its planes (no RGB round trip). A new frame it must be: the
    decoder may still predict later frames from the one it gave us.

    A smaller `size` is one swscale pass (area averaging: a downscale's anti-aliasing at the cost
    of bilinear) through the clip's one `scaler` — a reformatter per frame would rebuild its
    swscale context every time, which doubled the scaling's cost — and its output is ours to draw
    on; at the frame's own size the planes are copied."""
    import cv2
    import numpy as np

    w, h = size
    if (frame.width, frame.height) != size or frame.format.name != "yuv420p":
        out = scaler.reformat(frame, width=w, height=h, format="yuv420p", interpolation="AREA")
        planes = _planes(out)
    elif boxes:
        out = av.VideoFrame(w, h, "yuv420p")
        planes = _planes(out)
        for src, dst in zip(_planes(frame), planes, strict=True):
            np.copyto(dst, src)
    else:
        return frame
    if not boxes:
        return out
    y, u, v = planes
    sx, sy = w / frame.width, h / frame.height
    for (x1, y1, x2, y2), label in boxes:
        p1, p2 = (round(x1 * sx), round(y1 * sy)), (round(x2 * sx), round(y2 * sy))
        h1, h2 = (p1[0] // 2, p1[1] // 2), (p2[0] // 2, p2[1] // 2)
        cv2.rectangle(y, p1, p2, 81, 2)  # BT.601 red: Y 81, U 90, V 240
        cv2.rectangle(u, h1, h2, 90, 1)
        cv2.rectangle(v, h1, h2, 240, 1)
        cv2.putText(y, label[:40], (p1[0], max(12, p1[1] - 4)), 0, 0.6, 235, 2)
    return out


def output_size(width: int, height: int, max_height: int | None) -> tuple[int, int]:
    """The annotated clip's size: the source's (rounded down to even), or scaled down to
    `max_height` keeping the aspect ratio; never scaled up. None or 0: the source's size."""
    w, h = width // 2 * 2, height // 2 * 2
    if max_height and max_height < h:
        w, h = max(2, round(width * max_height / height / 2) * 2), max_height // 2 * 2
    return w, h


class _Encoder:
    """libx264 into a faststart MP4 on its own thread, fed through a short queue: PyAV releases the
    GIL inside the codec calls, so encoding one frame overlaps decoding, scaling and drawing the
    next (10 s of 1080p to 720p on the shared 2-core machine: median 2.7 s against 3.2 s inline)."""

    def __init__(self, out_path: Path, size: tuple[int, int], fps: int) -> None:
        self.out: Any = av.open(str(out_path), "w", format="mp4", options={"movflags": "+faststart"})
        self.stream: Any = self.out.add_stream("libx264", rate=fps)
        self.stream.width, self.stream.height = size
        self.stream.pix_fmt = "yuv420p"
        self.stream.time_base = OUT_TB
        self.stream.options = {"preset": "ultrafast"}
        # Slice threads (PyAV's default, said here because it was measured): frame threads were no
        # faster with the encoder on its own thread, and keep more frames in flight.
        self.stream.codec_context.thread_type = "SLICE"
        self.queue: queue.Queue[Any] = queue.Queue(maxsize=8)
        self.error: BaseException | None = None
        self.aborted = False
        self.thread = threading.Thread(target=self._run, name="clip-encode", daemon=True)
        self.thread.start()

    def _run(self) -> None:
        try:
            while (frame := self.queue.get()) is not None:
                self.out.mux(self.stream.encode(frame))
            if not self.aborted:
                self.out.mux(self.stream.encode(None))
        except BaseException as exc:  # handed to the caller at its next put() or at close()
            self.error = exc
            while self.queue.get() is not None:  # keep taking, so put() never blocks
                pass

    def put(self, frame: Any) -> None:
        if self.error is not None:
            raise self.error
        self.queue.put(frame)

    def close(self, *, abort: bool = False) -> None:
        self.aborted = abort
        self.queue.put(None)
        self.thread.join()
        self.out.close()
        if self.error is not None and not abort:
            raise self.error


def annotate(
    pieces: list[Piece],
    out_path: Path,
    start: float,
    boxes_at: BoxesAt,
    *,
    fps_hint: float = 25.0,
    max_height: int | None = None,
) -> ClipResult:
    """Decode, draw the boxes `boxes_at(t)` gives, encode H.264 (ultrafast). Starts exactly at `start`.

    `max_height` scales the picture down to that height (never up; None: the source's size).
    Frames without a box go to the encoder as decoded when no scaling is asked; decoding uses frame
    threads, so each piece's decoder is flushed at its end (its last frames come out only then)."""
    from av.video.reformatter import VideoReformatter

    result = ClipResult(origin=start)
    scaler = VideoReformatter()
    enc: _Encoder | None = None
    size = (0, 0)
    last_pts = -1

    def emit(frame: Any, ft: float, base_end: float) -> None:
        nonlocal enc, size, last_pts
        if ft < start or ft >= base_end:
            return
        if enc is None:
            size = output_size(frame.width, frame.height, max_height)
            result.source_size, result.size = (frame.width, frame.height), size
            enc = _Encoder(out_path, size, round(fps_hint) or 25)
        vf = _picture(frame, boxes_at(ft), size, scaler)
        pts = max(last_pts + 1, round((ft - start) / OUT_TB))
        vf.pts, vf.time_base = pts, OUT_TB
        vf.pict_type = av.video.frame.PictureType.NONE  # let the encoder place its own keyframes
        last_pts = pts
        enc.put(vf)
        result.frames += 1
        result.end = ft

    ok = False
    try:
        for i, piece in enumerate(pieces):
            stream: Any = None
            for pkt, _t in _packets(piece, result, first=i == 0, threads=True):
                if pkt is not None:
                    stream = pkt.stream
                    frames = pkt.decode()
                elif stream is not None:
                    frames = stream.decode(None)  # the frames still inside the threaded decoder
                else:
                    continue
                for frame in frames:
                    if frame.pts is not None:  # flushed frames come without their time base
                        emit(frame, piece.base + float(frame.pts * stream.time_base), piece.end)
        ok = True
    finally:
        if enc is not None:
            enc.close(abort=not ok)
    if result.frames == 0:
        raise ClipEmpty("no readable video in the requested range")
    return result
