"""Tracker steps → `ObjectEvent`s, the contract subscribers get (ids deterministic, boxes rounded)."""

from __future__ import annotations

from analyzer.tracking import TrackEvent
from bus.contracts import ObjectEvent, QuerySpec, stable_id
from glm45v_engine import VisionEngine


def object_events(
    engine: VisionEngine,
    q: QuerySpec,
    camera_id: str,
    session: str,
    size: tuple[int, int],
    steps: list[TrackEvent],
    *,
    latency_ms: float = 0.0,
    snapshot: str | None = None,
) -> list[ObjectEvent]:
    """`size` is the original frame's (width, height); `session` the frame's, unless a step has its own."""
    w, h = max(size[0], 1), max(size[1], 1)
    return [
        ObjectEvent(
            event_id=stable_id(camera_id, q.id, s.track_id, s.phase, s.frame_id),
            phase=s.phase,
            camera_id=camera_id,
            query_id=q.id,
            query_text=q.text,
            track_id=s.track_id,
            label=s.label,
            bbox=_round(s.bbox),
            bbox_norm=_round((s.bbox[0] / w, s.bbox[1] / h, s.bbox[2] / w, s.bbox[3] / h), 5),
            frame_id=s.frame_id,
            source_session=s.session or session,
            pts_s=round(s.pts_s, 3),
            wall_ts=s.wall_ts,
            closed_at=s.closed_at,
            score=s.score,
            engine=engine.name,
            model=engine.model,
            latency_ms=round(latency_ms, 1),
            snapshot=snapshot if s.phase == "start" else None,
        )
        for s in steps
    ]


def _round(b: tuple[float, float, float, float], nd: int = 1) -> tuple[float, float, float, float]:
    return (round(b[0], nd), round(b[1], nd), round(b[2], nd), round(b[3], nd))
