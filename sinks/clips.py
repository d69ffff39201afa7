"""Which files a clip is cut from, where its holes are, and the boxes of an event's track.

Two timelines: a recorded live camera is on wall-clock time (epoch seconds; segments say when
they started), a file camera is on its own media time (the file is its recording, clips are cut
from it directly). Events carry both (`wall_ts`, `pts_s`); `Timeline` picks the one that fits.
"""

from __future__ import annotations

import itertools
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from sqlalchemy import select

from bus.contracts import ObjectEvent
from sinks import tables as t
from sinks.clipcut import Piece
from sinks.db import epoch
from sinks.recordings import RecordingMissing, available_range, resolve_segment, segments_between
from sinks.store import Store

TimelineKind = Literal["wall", "media"]


class OutOfRange(LookupError):
    """Nothing retained in the range; `available` is what there is (None: nothing at all)."""

    def __init__(self, msg: str, available: tuple[float, float] | None) -> None:
        super().__init__(msg)
        self.available = available


@dataclass(frozen=True)
class ClipPlan:
    camera_id: str
    timeline: TimelineKind
    start: float
    end: float
    pieces: list[Piece]
    gaps: list[tuple[float, float, str]]


def plan_from_segments(
    store: Store, data_dir: str | Path, camera_id: str, start: float, end: float, tolerance_s: float
) -> ClipPlan:
    """The segments covering [start, end) on wall time; holes longer than `tolerance_s` are gaps."""
    segs = segments_between(store.engine, camera_id, start, end)
    if not segs:
        raise OutOfRange("no recording of this camera in the range", available_range(store.engine, camera_id))
    pieces: list[Piece] = []
    gaps: list[tuple[float, float, str]] = []
    cursor = start
    for s in segs:
        if s.start_ts - cursor > tolerance_s:
            gaps.append((cursor, s.start_ts, "not recorded (camera offline or recording off)"))
        try:
            path = resolve_segment(data_dir, s.path)
        except RecordingMissing as exc:
            gaps.append((max(cursor, s.start_ts), min(end, s.end_ts), str(exc)))
            cursor = max(cursor, s.end_ts)
            continue
        # The first piece starts at the requested start (the cutter backs up to its keyframe); later
        # ones are taken whole: a segment begins with a keyframe, and dropping its first packets
        # because two segments overlap by a few milliseconds would break decoding.
        first = not pieces
        span = (s.start_ts, s.end_ts)
        pieces.append(Piece(path, s.start_ts, start if first else s.start_ts - 1.0, end, span, ours=True))
        cursor = max(cursor, s.end_ts)
    if end - cursor > tolerance_s:
        gaps.append((cursor, end, "not recorded (yet)"))
    return ClipPlan(camera_id, "wall", start, end, pieces, gaps)


def plan_from_file(camera_id: str, path: Path, start: float, end: float) -> ClipPlan:
    """A file camera: the clip comes from the file itself, on its media time."""
    if not path.is_file():
        raise OutOfRange("the camera's file is not on this host", None)
    start = max(0.0, start)
    return ClipPlan(camera_id, "media", start, end, [Piece(path, 0.0, start, end, (start, end))], [])


def clip_gaps(plan: ClipPlan, cut_gaps: list[tuple[float, float, str]]) -> list[tuple[float, float, str]]:
    """All holes (the index's and the cutter's), inside the plan's range, in order."""
    out = [(max(a, plan.start), min(b, plan.end), why) for a, b, why in [*plan.gaps, *cut_gaps]]
    return sorted(g for g in out if g[1] > g[0])


def get_event(store: Store, event_id: str) -> ObjectEvent | None:
    with store.engine.connect() as conn:
        payload = conn.execute(select(t.events.c.payload).where(t.events.c.event_id == event_id)).scalar()
    return None if payload is None else ObjectEvent.model_validate_json(payload)


def first_event_of_track(store: Store, track_key: str) -> str | None:
    """The first stored event of a track, by the track's key (what search hits and timelines name)."""
    c = t.events.c
    with store.engine.connect() as conn:
        row = conn.execute(
            select(t.tracks.c.camera_id, t.tracks.c.query_id, t.tracks.c.track_id).where(
                t.tracks.c.id == track_key
            )
        ).first()
        if row is None:
            return None
        q = (
            select(c.event_id)
            .where(c.camera_id == row.camera_id, c.query_id == row.query_id, c.track_id == row.track_id)
            .order_by(c.pts_s, c.seq)
            .limit(1)
        )
        found = conn.execute(q).scalar()
    return None if found is None else str(found)


def track_events(store: Store, ev: ObjectEvent) -> list[ObjectEvent]:
    """Every stored event of the event's track, in media-time order."""
    c = t.events.c
    q = (
        select(c.payload)
        .where(c.camera_id == ev.camera_id, c.query_id == ev.query_id, c.track_id == ev.track_id)
        .order_by(c.pts_s, c.seq)
    )
    with store.engine.connect() as conn:
        out = [ObjectEvent.model_validate_json(p) for p in conn.execute(q).scalars()]
    return [e for e in out if e.source_session == ev.source_session] or [ev]


def when(ev: ObjectEvent, timeline: TimelineKind) -> float:
    return epoch(ev.wall_ts) if timeline == "wall" else ev.pts_s


@dataclass(frozen=True)
class TrackBoxes:
    """A track's sampled boxes on a timeline; `at(t)` interpolates linearly between samples."""

    points: list[tuple[float, tuple[float, float, float, float]]]
    label: str
    hold_s: float = 0.25  # shown this long beyond the first and last sample (half a sampling step)

    @classmethod
    def of(cls, events: list[ObjectEvent], timeline: TimelineKind) -> TrackBoxes:
        pts = sorted({when(e, timeline): e.bbox for e in events}.items())
        return cls(pts, events[-1].label if events else "")

    def at(self, t: float) -> list[tuple[tuple[float, float, float, float], str]]:
        p = self.points
        if not p or t < p[0][0] - self.hold_s or t > p[-1][0] + self.hold_s:
            return []
        if t <= p[0][0]:
            return [(p[0][1], self.label)]
        for (t0, b0), (t1, b1) in itertools.pairwise(p):
            if t0 <= t <= t1:
                f = (t - t0) / (t1 - t0) if t1 > t0 else 0.0
                box = tuple(a + (b - a) * f for a, b in zip(b0, b1, strict=True))
                return [((box[0], box[1], box[2], box[3]), self.label)]
        return [(p[-1][1], self.label)]

    def as_json(self) -> list[dict[str, Any]]:
        return [{"t": tt, "bbox": list(b)} for tt, b in self.points]


def dumps_gaps(gaps: list[tuple[float, float, str]], origin: float) -> str:
    """The X-Sightline-Gaps header: JSON, times both on the timeline and in clip seconds."""
    return json.dumps(
        [
            {"start": round(a, 3), "end": round(b, 3), "clip_start_s": round(a - origin, 3), "why": why}
            for a, b, why in gaps
        ],
        separators=(",", ":"),
    )
