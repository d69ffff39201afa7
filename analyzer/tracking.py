"""Boxes over time → tracks → start / update / end.

A VLM answers 0.5–2 frames a second; a walking person's boxes often do not
overlap from one sample to the next, so IoU association (made for 30 fps
detectors) loses them. We associate by the distance between a track's
*predicted* centre (constant velocity) and a detection's centre, measured in
box sizes and widened with the time gap while a track has no velocity yet.
Sizes must be plausible; assignment is globally optimal (Hungarian). Everything
is a function of media time, so replays are exact.

Labels are not identity: GLM names the same object differently from one answer to
the next ("person in red", "people in red", "woman in a red coat"; a label-less
answer is given the query text), so within a (camera, query) association is by
where the object is and how it moves only. A track's label is what was said most
often (the latest wording on a tie), kept for people to read.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from datetime import datetime
from typing import Any, Literal

import numpy as np
from scipy.optimize import linear_sum_assignment

from bus.contracts import BBox, stable_id
from configs.settings import TrackingConfig

Phase = Literal["start", "update", "end"]
INF_COST = 1e9


@dataclass(frozen=True)
class Detection:
    label: str
    bbox: BBox
    score: float | None = None


@dataclass
class Track:
    track_id: str
    label: str
    first_pts: float
    first_frame_id: int
    first_wall: str
    first_bbox: BBox
    bbox: BBox
    last_pts: float
    last_frame_id: int
    last_wall: str
    hits: int = 1
    vx: float = 0.0
    vy: float = 0.0
    has_velocity: bool = False
    confirmed: bool = False
    last_emit_pts: float = 0.0
    last_emit_bbox: BBox = (0.0, 0.0, 0.0, 0.0)
    score: float | None = None
    wordings: dict[str, int] = field(default_factory=dict)  # label -> times said (insertion = first said)
    # Media time of the latest answer about a crop that did not show this track (analyzer.regions):
    # not looked at is not missing, so `max_missing_s` counts from the later of this and last_pts.
    held_pts: float | None = None

    def said(self, label: str) -> None:
        """Count a wording; the track's label becomes the most frequent one, the latest on a tie."""
        self.wordings[label] = self.wordings.pop(label, 0) + 1  # re-inserted: latest is last
        best = max(self.wordings.values())
        self.label = [w for w, n in self.wordings.items() if n == best][-1]


@dataclass(frozen=True)
class TrackEvent:
    phase: Phase
    track_id: str
    label: str
    bbox: BBox
    pts_s: float
    frame_id: int
    wall_ts: datetime
    closed_at: datetime | None = None
    score: float | None = None
    reason: str = ""
    session: str = ""  # the source session the track lived in (an end can be emitted in the next one)


def centre(b: BBox) -> tuple[float, float]:
    return (b[0] + b[2]) / 2, (b[1] + b[3]) / 2


def size(b: BBox) -> float:
    return math.sqrt(max(b[2] - b[0], 1.0) * max(b[3] - b[1], 1.0))


@dataclass
class Tracker:
    """Tracks of one (camera, query). Call `step` for every frame the engine answered, in order."""

    camera_id: str
    query_id: str
    config: TrackingConfig = field(default_factory=TrackingConfig)
    tracks: list[Track] = field(default_factory=list)
    session: str = ""
    frame_size: tuple[int, int] = (0, 0)  # original (width, height), for normalising boxes of `end` events

    def step(
        self,
        pts: float,
        frame_id: int,
        wall: datetime,
        detections: list[Detection],
        session: str = "",
        frame_size: tuple[int, int] = (0, 0),
        view: Sequence[BBox] | None = None,
    ) -> list[TrackEvent]:
        """`view`: the parts of the frame the answer was about (crops, original pixels); None = all of it."""
        events = self.expire(pts, frame_id, wall)
        if frame_size != (0, 0):
            self.frame_size = frame_size
        if session and session != self.session:
            events += self.close_all(wall, "source restarted") if self.session else []
            self.session = session
        matches, new = self._associate(pts, detections)
        if view is not None:
            matched = {id(t) for t, _ in matches}
            for t in self.tracks:
                cx, cy = centre(t.bbox)
                if id(t) not in matched and not any(v[0] <= cx <= v[2] and v[1] <= cy <= v[3] for v in view):
                    t.held_pts = pts
        for track, det in matches:
            events += self._update(track, det, pts, frame_id, wall)
        for i, det in new:
            self.tracks.append(self._open(det, pts, frame_id, wall, i))
            events += self._maybe_confirm(self.tracks[-1])
        return events

    def expire(self, pts: float, frame_id: int, wall: datetime) -> list[TrackEvent]:
        """End tracks unseen for longer than max_missing_s of media time."""
        events, keep = [], []
        for t in self.tracks:
            if (
                pts - max(t.last_pts, t.held_pts if t.held_pts is not None else t.last_pts)
                > self.config.max_missing_s
            ):
                if t.confirmed:
                    events.append(self._end(t, wall, "lost"))
            else:
                keep.append(t)
        self.tracks = keep
        return events

    def close_all(self, wall: datetime, reason: str) -> list[TrackEvent]:
        events = [self._end(t, wall, reason) for t in self.tracks if t.confirmed]
        self.tracks = []
        return events

    def _associate(
        self, pts: float, dets: list[Detection]
    ) -> tuple[list[tuple[Track, Detection]], list[tuple[int, Detection]]]:
        if not self.tracks or not dets:
            return [], list(enumerate(dets))
        cost = np.full((len(self.tracks), len(dets)), INF_COST)
        for i, t in enumerate(self.tracks):
            dt = max(pts - t.last_pts, 0.0)
            px, py = centre(t.bbox)
            px, py = px + t.vx * dt, py + t.vy * dt
            gate = self.config.max_dist + (0.0 if t.has_velocity else self.config.speed_gate * dt)
            for j, d in enumerate(dets):
                ratio = (size(d.bbox) / size(t.bbox)) ** 2
                if not (1 / self.config.max_area_ratio <= ratio <= self.config.max_area_ratio):
                    continue
                cx, cy = centre(d.bbox)
                dist = math.hypot(cx - px, cy - py) / max(size(t.bbox), size(d.bbox))
                if dist <= gate:
                    cost[i, j] = dist / gate
        rows, cols = linear_sum_assignment(cost)
        matched = [
            (self.tracks[r], dets[c]) for r, c in zip(rows, cols, strict=True) if cost[r, c] < INF_COST
        ]
        used = {c for r, c in zip(rows, cols, strict=True) if cost[r, c] < INF_COST}
        return matched, [(j, d) for j, d in enumerate(dets) if j not in used]

    def _open(self, det: Detection, pts: float, frame_id: int, wall: datetime, index: int) -> Track:
        tid = stable_id(self.camera_id, self.query_id, self.session, frame_id, index, det.label)[:13]
        w = wall.isoformat()
        t = Track(tid, det.label, pts, frame_id, w, det.bbox, det.bbox, pts, frame_id, w, score=det.score)
        t.said(det.label)
        return t

    def _update(
        self, t: Track, det: Detection, pts: float, frame_id: int, wall: datetime
    ) -> list[TrackEvent]:
        dt = pts - t.last_pts
        if dt > 0:
            (ox, oy), (nx, ny) = centre(t.bbox), centre(det.bbox)
            vx, vy = (nx - ox) / dt, (ny - oy) / dt
            a = 0.5 if t.has_velocity else 1.0
            t.vx, t.vy = a * vx + (1 - a) * t.vx, a * vy + (1 - a) * t.vy
            t.has_velocity = True
        t.bbox, t.last_pts, t.last_frame_id, t.last_wall = det.bbox, pts, frame_id, wall.isoformat()
        t.hits += 1
        t.said(det.label)
        if det.score is not None:
            t.score = max(t.score or det.score, det.score)
        if not t.confirmed:
            return self._maybe_confirm(t)
        moved = math.dist(centre(det.bbox), centre(t.last_emit_bbox)) / max(det.bbox[2] - det.bbox[0], 1.0)
        due = pts - t.last_emit_pts >= self.config.update_every_s
        if due or (self.config.update_move_frac and moved >= self.config.update_move_frac):
            t.last_emit_pts, t.last_emit_bbox = pts, det.bbox
            return [
                TrackEvent(
                    "update",
                    t.track_id,
                    t.label,
                    det.bbox,
                    pts,
                    frame_id,
                    wall,
                    score=det.score,
                    session=self.session,
                )
            ]
        return []

    def _maybe_confirm(self, t: Track) -> list[TrackEvent]:
        if t.confirmed or t.hits < self.config.min_hits:
            return []
        t.confirmed = True
        # The start is reported where the object first appeared, not where we became sure of it.
        t.last_emit_pts, t.last_emit_bbox = t.first_pts, t.first_bbox
        wall = datetime.fromisoformat(t.first_wall)
        return [
            TrackEvent(
                "start",
                t.track_id,
                t.label,
                t.first_bbox,
                t.first_pts,
                t.first_frame_id,
                wall,
                score=t.score,
                session=self.session,
            )
        ]

    def _end(self, t: Track, closed: datetime, reason: str) -> TrackEvent:
        return TrackEvent(
            "end",
            t.track_id,
            t.label,
            t.bbox,
            t.last_pts,
            t.last_frame_id,
            datetime.fromisoformat(t.last_wall),
            closed_at=closed,
            score=t.score,
            reason=reason,
            session=self.session,
        )

    # Checkpoints: the tracker's whole state as JSON-able data, so another worker can continue it.
    def to_state(self) -> dict[str, Any]:
        return {
            "session": self.session,
            "frame_size": list(self.frame_size),
            "tracks": [asdict(t) for t in self.tracks],
        }

    def load_state(self, state: dict[str, Any]) -> None:
        self.session = state.get("session", "")
        w, h = state.get("frame_size", (0, 0))
        self.frame_size = (int(w), int(h))
        self.tracks = [
            Track(
                **{
                    **t,
                    "first_bbox": tuple(t["first_bbox"]),
                    "bbox": tuple(t["bbox"]),
                    "last_emit_bbox": tuple(t["last_emit_bbox"]),
                }
            )
            for t in state.get("tracks", [])
        ]
