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
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from fractions import Fraction
from pathlib import Path
from typing import Any

import av
import av.error

log = logging.getLogger(__name__)
OUT_TB = Fraction(1, 90000)
BoxesAt = Callable[[float], list[tuple[tuple[float, float, float, float], str]]]


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


def _draw_yuv(frame: Any, boxes: list[tuple[tuple[float, float, float, float], str]]) -> Any:
    """A copy of a 4:2:0 frame with the boxes drawn straight into its planes: one plane copy, no
    RGB round trip. A copy it must be: the decoder may still predict later frames from this one."""
    import cv2
    import numpy as np

    if frame.format.name not in ("yuv420p", "yuvj420p"):
        frame = frame.reformat(format="yuv420p")
    out = av.VideoFrame(frame.width, frame.height, "yuv420p")
    planes = []
    for src, dst in zip(frame.planes[:3], out.planes[:3], strict=True):
        a = np.frombuffer(memoryview(src), np.uint8).reshape(src.height, src.line_size)[:, : src.width]
        b = np.frombuffer(memoryview(dst), np.uint8).reshape(dst.height, dst.line_size)[:, : dst.width]
        np.copyto(b, a)
        planes.append(b)
    y, u, v = planes
    for (x1, y1, x2, y2), label in boxes:
        p1, p2 = (round(x1), round(y1)), (round(x2), round(y2))
        h1, h2 = (p1[0] // 2, p1[1] // 2), (p2[0] // 2, p2[1] // 2)
        cv2.rectangle(y, p1, p2, 81, 2)  # BT.601 red: Y 81, U 90, V 240
        cv2.rectangle(u, h1, h2, 90, 1)
        cv2.rectangle(v, h1, h2, 240, 1)
        cv2.putText(y, label[:40], (p1[0], max(12, p1[1] - 4)), 0, 0.6, 235, 2)
    return out


def annotate(
    pieces: list[Piece], out_path: Path, start: float, boxes_at: BoxesAt, *, fps_hint: float = 25.0
) -> ClipResult:
    """Decode, draw the boxes `boxes_at(t)` gives, encode H.264 (ultrafast). Starts exactly at `start`.

    Frames without a box go to the encoder as decoded; decoding uses frame threads, so each
    piece's decoder is flushed at its end (its last frames come out only then)."""
    result = ClipResult(origin=start)
    out: Any = None
    ostream: Any = None
    last_pts = -1

    def emit(frame: Any, ft: float, base_end: float) -> None:
        nonlocal out, ostream, last_pts
        if ft < start or ft >= base_end:
            return
        boxes = boxes_at(ft)
        vf = _draw_yuv(frame, boxes) if boxes else frame
        if out is None:
            out = av.open(str(out_path), "w", format="mp4", options={"movflags": "+faststart"})
            ostream = out.add_stream("libx264", rate=round(fps_hint) or 25)
            ostream.width, ostream.height = frame.width // 2 * 2, frame.height // 2 * 2
            ostream.pix_fmt = "yuv420p"
            ostream.time_base = OUT_TB
            ostream.options = {"preset": "ultrafast"}
        pts = max(last_pts + 1, round((ft - start) / OUT_TB))
        vf.pts, vf.time_base = pts, OUT_TB
        vf.pict_type = av.video.frame.PictureType.NONE  # let the encoder place its own keyframes
        last_pts = pts
        out.mux(ostream.encode(vf))
        result.frames += 1
        result.end = ft

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
        if out is not None:
            out.mux(ostream.encode(None))
    finally:
        if out is not None:
            out.close()
    if result.frames == 0:
        raise ClipEmpty("no readable video in the requested range")
    return result
