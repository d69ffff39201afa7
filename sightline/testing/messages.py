"""Well-formed sample messages for tests, demos and docs (deterministic ids, real contracts)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from bus.contracts import ObjectEvent, StatusUpdate, Summary, stable_id

T0 = datetime(2026, 1, 1, 12, 0, 0, tzinfo=UTC)


def event(
    camera_id: str = "cam1",
    query_id: str = "red",
    track_id: str = "t1",
    phase: str = "start",
    frame_id: int = 0,
    t_s: float = 0.0,
    *,
    label: str = "person in red",
    bbox: tuple[float, float, float, float] = (100.0, 50.0, 200.0, 300.0),
    size: tuple[int, int] = (640, 360),
    score: float | None = 0.9,
    snapshot: str | None = None,
    engine: str = "baseline",
    start: datetime = T0,
) -> ObjectEvent:
    w, h = size
    x1, y1, x2, y2 = bbox
    wall = start + timedelta(seconds=t_s)
    return ObjectEvent(
        event_id=stable_id(camera_id, query_id, track_id, phase, frame_id),
        phase=phase,
        camera_id=camera_id,
        query_id=query_id,
        query_text=f"{label}?",
        track_id=track_id,
        label=label,
        bbox=bbox,
        bbox_norm=(x1 / w, y1 / h, x2 / w, y2 / h),
        frame_id=frame_id,
        pts_s=t_s,
        wall_ts=wall,
        closed_at=wall if phase == "end" else None,
        score=score,
        engine=engine,
        model="hog+colour" if engine == "baseline" else "glm-4.5v",
        latency_ms=12.5,
        snapshot=snapshot,
    )


def track(
    camera_id: str = "cam1", query_id: str = "red", track_id: str = "t1", t0: float = 0.0, t1: float = 4.0
) -> list[ObjectEvent]:
    """A start, one update and an end: the life of one object on camera."""
    mid = (t0 + t1) / 2
    return [
        event(camera_id, query_id, track_id, "start", int(t0 * 10), t0, score=0.7),
        event(
            camera_id, query_id, track_id, "update", int(mid * 10), mid, score=0.95, bbox=(150, 60, 250, 310)
        ),
        event(camera_id, query_id, track_id, "end", int(t1 * 10), t1, score=0.8, bbox=(300, 60, 400, 310)),
    ]


def summary(
    camera_id: str = "cam1", query_id: str = "what", t0: float = 0.0, window_s: float = 10.0
) -> Summary:
    return Summary(
        summary_id=stable_id("summary", camera_id, query_id, t0),
        camera_id=camera_id,
        query_id=query_id,
        query_text="What happened?",
        window_start_s=t0,
        window_end_s=t0 + window_s,
        window_start_wall=T0 + timedelta(seconds=t0),
        window_end_wall=T0 + timedelta(seconds=t0 + window_s),
        text=f"A person walks across the scene between {t0:.0f}s and {t0 + window_s:.0f}s.",
        segments=(),
        engine="baseline",
        model="hog+colour",
    )


def status(camera_id: str = "cam1", state: str = "streaming", t_s: float = 0.0) -> StatusUpdate:
    return StatusUpdate(
        component="camera",
        id=camera_id,
        state=state,
        ts=T0 + timedelta(seconds=t_s),
        fps_in=10.0,
        fps_out=2.0,
    )
