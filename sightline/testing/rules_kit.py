"""Object events whose paths are known at every instant, for the rules tests and `bench rules`.

A walker is a function of media time → foot point (normalised) or None while out of view; it is
sampled at a given rate and turned into the `ObjectEvent`s the analyzer would publish (start,
one update per sample, end at the last sighting).
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta

from bus.contracts import ObjectEvent, stable_id

Path = Callable[[float], tuple[float, float] | None]
T0 = datetime(2026, 1, 5, 12, 0, tzinfo=UTC)
BOX_W, BOX_H = 0.05, 0.2

# The example: a gate zone and a fence line on camera `door`.
RULES_YAML = """
zones: [{id: gate, camera: door, polygon: [[0.6,0.5],[0.8,0.5],[0.8,0.9],[0.6,0.9]]}]
lines: [{id: fence, camera: door, points: [[0.5,0.0],[0.5,1.0]], inside: [0.75,0.5]}]
rules:
  - {id: red-at-gate, query: red, when: {dwell: {zone: gate, seconds: 10}}}
  - {id: fence-in, query: red, when: {cross: {line: fence, direction: in}}}
  - {id: fence-out, query: red, when: {cross: {line: fence, direction: out}}, severity: info}
"""


def event(
    camera: str,
    track: str,
    phase: str,
    t: float,
    foot: tuple[float, float],
    *,
    t0: datetime = T0,
    query: str = "red",
    label: str = "person",
    session: str = "s1",
    frame: int | None = None,
    snapshot: str | None = None,
) -> ObjectEvent:
    x, y = foot
    box = (max(x - BOX_W / 2, 0.0), max(y - BOX_H, 0.0), min(x + BOX_W / 2, 1.0), min(y, 1.0))
    fid = frame if frame is not None else round(t * 100)
    return ObjectEvent(
        event_id=stable_id(camera, query, track, phase, fid),
        phase=phase,
        camera_id=camera,
        query_id=query,
        query_text=query,
        track_id=track,
        label=label,
        bbox=(box[0] * 1000, box[1] * 1000, box[2] * 1000, box[3] * 1000),
        bbox_norm=box,
        frame_id=fid,
        source_session=session,
        pts_s=round(t, 3),
        wall_ts=t0 + timedelta(seconds=t),
        engine="test",
        model="test",
        snapshot=snapshot,
    )


def walk(
    camera: str, track: str, path: Path, fps: float, t_end: float, *, offset: float = 0.0, **kw: object
) -> list[ObjectEvent]:
    """Samples path(i/fps) for i/fps <= t_end; events at media time offset + i/fps."""
    seen = [(i / fps, path(i / fps)) for i in range(int(t_end * fps) + 1)]
    vis = [(t, p) for t, p in seen if p is not None]
    out = []
    for i, (t, p) in enumerate(vis):
        phase = "start" if i == 0 else ("end" if i == len(vis) - 1 else "update")
        out.append(event(camera, track, phase, offset + t, p, **kw))  # type: ignore[arg-type]
    return out


def back_and_forth(speed: float, x0: float = 0.1, x1: float = 0.9, y: float = 0.7) -> Path:
    """Left to right, then back: crosses x=0.5 inwards, then outwards."""
    leg = (x1 - x0) / speed

    def at(t: float) -> tuple[float, float] | None:
        if t < 0 or t > 2 * leg:
            return None
        return (x0 + speed * t, y) if t <= leg else (x1 - speed * (t - leg), y)

    return at


def linger(x: float, y: float, t_from: float, t_to: float) -> Path:
    """Stands still at (x, y) between t_from and t_to."""
    return lambda t: (x, y) if t_from <= t <= t_to else None


def scene(
    camera: str, n_tracks: int, fps: float = 1.0, *, seed: int = 0, session: str = "s1"
) -> list[ObjectEvent]:
    """A busy camera: walkers at several speeds crossing the fence both ways, some lingering at
    the gate; one camera's events in media-time order (ties by track)."""
    events: list[ObjectEvent] = []
    speeds = (0.04, 0.1, 0.25, 0.4)
    for k in range(n_tracks):
        i = k + seed
        offset = 3.0 * k
        if i % 3 == 2:
            path = linger(0.7, 0.7, 0.0, 12.0 + (i % 5) * 2)
            t_end = 20.0
        else:
            path = back_and_forth(speeds[i % 4], y=0.3 + 0.1 * (i % 6))
            t_end = 2 * 0.8 / speeds[i % 4] + 1
        events += walk(camera, f"{camera}-t{k}", path, fps, t_end, offset=offset, session=session)
    return sorted(events, key=lambda e: (e.pts_s, e.track_id))
