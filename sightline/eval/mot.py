"""MOTChallenge ground truth (`gt.txt`) → `GroundTruth`.

Rows are `frame,id,bb_left,bb_top,bb_width,bb_height,conf,class,visibility` (MOT16/17/20);
MOT15-style rows (`...,conf,x,y,z` with class missing or -1) are read as pedestrians.
Frames are 1-based. Given the video the file annotates, frame f is at that video's own
timestamp of its f-th frame (PTS × time base, as ingest stamps frames), so a clip whose first
PTS is not 0 (an MPEG-TS remux, an edit list) is judged against the right frames; without it,
at (f - 1) / fps. MOT pixel coordinates are 1-based too, so bb_left 1 becomes x1 = 0 here;
boxes are clipped to the frame.

Which rows count (the MOT17 devkit's rules, simplified):
- class in `classes` (default {1}: pedestrian) and conf != 0 and visibility >= min_visibility: a box
  that must be found;
- conf == 0, a class in `DISTRACTOR_CLASSES`, or visibility below the minimum: an *ignored* box —
  a prediction on it is neither a hit nor a false positive;
- any other class (cars, bicycles, occluders): dropped.
"""

from __future__ import annotations

import configparser
import csv
import math
from collections import defaultdict
from collections.abc import Iterable
from itertools import pairwise
from pathlib import Path
from typing import TypeVar

from sightline.eval.truth import (
    GroundTruth,
    TruthBox,
    TruthError,
    TruthObject,
    VideoInfo,
    intervals_from_times,
)

PEDESTRIAN = 1
# person on vehicle, static person, distractor, reflection: people a detector may rightly see.
DISTRACTOR_CLASSES = frozenset({2, 7, 8, 12})
DEFAULT_FPS = 30.0
N = TypeVar("N", int, float)


def read_mot(
    path: str | Path,
    *,
    fps: float | None = None,
    classes: Iterable[int] = (PEDESTRIAN,),
    min_visibility: float = 0.0,
    label: str = "person",
    width: int | None = None,
    height: int | None = None,
    video: str | Path | None = None,
) -> GroundTruth:
    """Read a `gt.txt` (or a sequence directory with `gt/gt.txt` and `seqinfo.ini`).

    `fps`, `width`, `height` override `seqinfo.ini`; without either, fps defaults to
    DEFAULT_FPS (30, the MOTChallenge norm) and the size to the extent of the boxes.
    `video`: the clip itself; its frames' own timestamps place the rows (see the module doc).
    """
    p = Path(path)
    gt = p / "gt" / "gt.txt" if p.is_dir() else p
    if not gt.is_file():
        raise TruthError(f"{p}: no MOT gt.txt found (expected a gt.txt file or a directory with gt/gt.txt)")
    info = _seqinfo(gt)
    stamps = video_frame_times(video) if video is not None else None
    rate = fps or _num(info.get("framerate"), float) or _rate(stamps) or DEFAULT_FPS
    if rate <= 0:
        raise TruthError(f"{gt}: fps must be positive, got {rate}")
    rows = _rows(gt)
    w = width or _num(info.get("imwidth"), int) or math.ceil(max((r.x - 1 + r.w for r in rows), default=1))
    h = height or _num(info.get("imheight"), int) or math.ceil(max((r.y - 1 + r.h for r in rows), default=1))
    n_frames = _num(info.get("seqlength"), int) or max((r.frame for r in rows), default=1)
    keep = frozenset(classes)
    if stamps is not None:
        last = max(n_frames, max(r.frame for r in rows))
        if last > len(stamps):
            raise TruthError(f"{gt}: frame {last} is beyond the {len(stamps)} frames of {video}")

        def when(frame: int) -> float:
            return stamps[frame - 1]
    else:

        def when(frame: int) -> float:
            return _time(frame, rate)

    per_id: dict[int, list[TruthBox]] = defaultdict(list)
    for r in rows:
        if r.cls in keep and r.conf != 0 and r.vis >= min_visibility:
            ignore = False
        elif r.cls in keep or r.cls in DISTRACTOR_CLASSES:
            ignore = True
        else:
            continue
        box = _clip((r.x - 1, r.y - 1, r.x - 1 + r.w, r.y - 1 + r.h), w, h)
        if box is None:
            continue  # entirely outside the frame
        per_id[r.track].append(TruthBox(t=when(r.frame), bbox=box, ignore=ignore))

    objects = []
    for track, boxes in sorted(per_id.items()):
        boxes.sort(key=lambda b: b.t)
        if len({b.t for b in boxes}) != len(boxes):
            raise TruthError(f"{gt}: id {track} has two rows for the same frame")
        spans = intervals_from_times((b.t for b in boxes), max_gap_s=1.5 / rate)
        objects.append(TruthObject(id=str(track), label=label, intervals=spans, boxes=tuple(boxes)))
    segment = VideoInfo(
        file=info.get("name", gt.parent.parent.name if gt.parent.name == "gt" else gt.name),
        width=w, height=h, fps=rate, start_s=when(1), end_s=when(n_frames),
    )  # fmt: skip
    times = tuple(when(f) for f in range(1, n_frames + 1))
    note = f"imported from MOTChallenge {gt} (classes {sorted(keep)}, min visibility {min_visibility})"
    return GroundTruth(video=segment, times=times, objects=tuple(objects), note=note)


def video_frame_times(video: str | Path) -> list[float]:
    """Media time of every frame of `video`, in presentation order, stamped as ingest's PyAV
    source stamps them (PTS × time base; the frame's own time, else one nominal frame on)."""
    import av

    try:
        with av.open(str(video)) as c:
            stream = c.streams.video[0]
            tb = stream.time_base
            step = 1.0 / float(stream.average_rate or stream.guessed_rate or 25)
            out: list[float] = []
            for frame in c.decode(stream):
                if frame.pts is not None and tb is not None:
                    out.append(float(frame.pts * tb))
                elif frame.time is not None:
                    out.append(float(frame.time))
                else:
                    out.append(out[-1] + step if out else 0.0)
    except (av.FFmpegError, IndexError) as e:
        raise TruthError(f"{video}: cannot read the video's frame times: {e}") from e
    return sorted(out)


class _Row:
    __slots__ = ("cls", "conf", "frame", "h", "track", "vis", "w", "x", "y")

    def __init__(self, cells: list[float]) -> None:
        self.frame, self.track = int(cells[0]), int(cells[1])
        self.x, self.y, self.w, self.h = cells[2:6]
        self.conf = cells[6] if len(cells) > 6 else 1.0
        # MOT15 rows carry world x,y,z (-1) after conf, not class/visibility.
        mot15 = len(cells) >= 10 or (len(cells) > 7 and cells[7] == -1)
        self.cls = PEDESTRIAN if mot15 or len(cells) <= 7 else int(cells[7])
        self.vis = cells[8] if len(cells) > 8 and not mot15 else 1.0


def _rows(gt: Path) -> list[_Row]:
    rows = []
    with gt.open(encoding="utf-8", newline="") as f:
        for n, cells in enumerate(csv.reader(f), start=1):
            if not cells or not "".join(cells).strip():
                continue
            try:
                nums = [float(c) for c in cells]
            except ValueError as e:
                raise TruthError(f"{gt}:{n}: not a MOT row (numbers expected): {','.join(cells)!r}") from e
            if len(nums) < 6:
                raise TruthError(f"{gt}:{n}: a MOT row needs at least 6 columns, got {len(nums)}")
            if not all(math.isfinite(v) for v in nums):
                raise TruthError(f"{gt}:{n}: non-finite number in {','.join(cells)!r}")
            row = _Row(nums)
            if row.frame < 1:
                raise TruthError(f"{gt}:{n}: frames are 1-based, got frame {row.frame}")
            if row.w <= 0 or row.h <= 0:
                raise TruthError(f"{gt}:{n}: box width and height must be positive")
            rows.append(row)
    if not rows:
        raise TruthError(f"{gt}: no rows")
    return rows


def _seqinfo(gt: Path) -> dict[str, str]:
    """`seqinfo.ini` beside the `gt/` directory, keys lower-cased; {} when absent."""
    ini = gt.parent.parent / "seqinfo.ini" if gt.parent.name == "gt" else gt.parent / "seqinfo.ini"
    if not ini.is_file():
        return {}
    cp = configparser.ConfigParser()
    try:
        cp.read(ini, encoding="utf-8")
    except configparser.Error as e:
        raise TruthError(f"{ini}: unreadable seqinfo.ini: {e}") from e
    return {k.lower(): v for k, v in cp["Sequence"].items()} if cp.has_section("Sequence") else {}


def _num(text: str | None, kind: type[N]) -> N | None:
    if text is None:
        return None
    try:
        return kind(float(text))
    except ValueError as e:
        raise TruthError(f"seqinfo.ini: {text!r} is not a number") from e


def _rate(stamps: list[float] | None) -> float | None:
    """Frames per second from a video's frame times (the median step)."""
    if not stamps or len(stamps) < 2:
        return None
    steps = sorted(b - a for a, b in pairwise(stamps) if b > a)
    return 1.0 / steps[len(steps) // 2] if steps else None


def _time(frame: int, fps: float) -> float:
    return (frame - 1) / fps


def _clip(b: tuple[float, float, float, float], w: int, h: int) -> tuple[float, float, float, float] | None:
    x1, y1, x2, y2 = max(0.0, b[0]), max(0.0, b[1]), min(float(w), b[2]), min(float(h), b[3])
    return (x1, y1, x2, y2) if x2 > x1 and y2 > y1 else None
