"""The recording index: segments ingest closed, where they are on disk, and their retention.

Ingest writes the files under data_dir/recordings/<camera>/ and announces each closed segment
on the recordings topic; the sink stores the announcement here. A segment path comes from a
Kafka message, so it is untrusted: it is resolved inside the recordings directory or refused.

Retention is one pass over the index, oldest first: segments older than `max_age_days`;
`events`-mode segments that ended `settle_s` ago with no event within `pre_s`/`post_s`; then
the oldest segments of any camera above `camera_max_bytes`; then the oldest of all above
`max_bytes`; and files nobody indexed (their announcement was lost), untouched for
`orphan_grace_s`. Files go first, rows after, so a crash in between leaves rows whose file is
missing (a clip reports them as a gap), never files nobody knows about.
"""

from __future__ import annotations

import contextlib
import logging
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sqlalchemy import Connection, and_, delete, func, select
from sqlalchemy.engine import Engine

from bus.contracts import RecordedSegment
from configs.settings import RecordingConfig
from sinks import tables as t
from sinks.db import epoch, insert_for

log = logging.getLogger(__name__)
RECORDINGS_DIR = "recordings"


class RecordingMissing(LookupError):
    pass


@dataclass(frozen=True)
class SegmentRow:
    segment_id: str
    camera_id: str
    source_session: str
    path: str
    mode: str
    start_ts: float
    end_ts: float
    duration_s: float
    bytes: int
    complete: bool

    @classmethod
    def of(cls, row: Any) -> SegmentRow:
        return cls(
            row.segment_id,
            row.camera_id,
            row.source_session,
            row.path,
            row.mode,
            float(row.start_ts),
            float(row.end_ts),
            float(row.duration_s),
            int(row.bytes),
            bool(row.complete),
        )


def recordings_root(data_dir: str | Path) -> Path:
    return (Path(data_dir) / RECORDINGS_DIR).resolve()


def resolve_segment(data_dir: str | Path, rel: str) -> Path:
    """The file a segment path names, inside the recordings directory, or RecordingMissing."""
    root = recordings_root(data_dir)
    if "\x00" in rel or Path(rel).is_absolute():
        raise RecordingMissing("segment path is not relative")
    path = (root / rel).resolve()
    if not path.is_relative_to(root) or path.suffix.lower() != ".mp4":
        raise RecordingMissing("segment path points outside the recordings directory")
    if not path.is_file():
        raise RecordingMissing("segment file is gone")
    return path


def write_segment(engine: Engine, conn: Connection, seg: RecordedSegment) -> bool:
    row = insert_for(engine, t.segments).values(
        segment_id=seg.segment_id,
        camera_id=seg.camera_id,
        source_session=seg.source_session,
        seq=seg.seq,
        path=seg.path,
        mode=seg.mode,
        start_ts=epoch(seg.start_ts),
        end_ts=epoch(seg.end_ts),
        source_start_s=seg.source_start_s,
        duration_s=seg.duration_s,
        frames=seg.frames,
        bytes=seg.bytes,
        complete=seg.complete,
    )
    return bool(conn.execute(row.on_conflict_do_nothing(index_elements=["segment_id"])).rowcount)


def segments_between(engine: Engine, camera_id: str, start: float, end: float) -> list[SegmentRow]:
    """Segments of a camera that overlap [start, end) (epoch seconds), in time order."""
    c = t.segments.c
    q = (
        select(t.segments)
        .where(and_(c.camera_id == camera_id, c.start_ts < end, c.end_ts > start))
        .order_by(c.start_ts, c.seq)
    )
    with engine.connect() as conn:
        return [SegmentRow.of(r) for r in conn.execute(q)]


def available_range(engine: Engine, camera_id: str) -> tuple[float, float] | None:
    c = t.segments.c
    with engine.connect() as conn:
        row = conn.execute(
            select(func.min(c.start_ts), func.max(c.end_ts)).where(c.camera_id == camera_id)
        ).first()
    if row is None or row[0] is None:
        return None
    return float(row[0]), float(row[1])


@dataclass(frozen=True)
class RecordingReport:
    deleted: dict[str, int]  # why -> segments
    bytes_freed: int
    bytes_kept: int


def plan_retention(
    segs: list[SegmentRow], event_times: dict[str, list[float]], cfg: RecordingConfig, now: float
) -> dict[str, str]:
    """segment_id -> why it goes. `segs` oldest first; `event_times` per camera, sorted."""
    import bisect

    doomed: dict[str, str] = {}
    age_cut = now - cfg.max_age_days * 86400
    for s in segs:
        if s.end_ts < age_cut:
            doomed[s.segment_id] = "age"
        elif s.mode == "events" and s.end_ts < now - cfg.settle_s:
            times = event_times.get(s.camera_id, [])
            # An event at time e claims [e - pre_s, e + post_s]; keep the segment if that overlaps it.
            i = bisect.bisect_left(times, s.start_ts - cfg.post_s)
            if i >= len(times) or times[i] > s.end_ts + cfg.pre_s:
                doomed[s.segment_id] = "no_event"
    if cfg.camera_max_bytes is not None:
        per_cam: dict[str, int] = defaultdict(int)
        for s in segs:
            if s.segment_id not in doomed:
                per_cam[s.camera_id] += s.bytes
        for s in segs:  # oldest first
            if s.segment_id not in doomed and per_cam[s.camera_id] > cfg.camera_max_bytes:
                doomed[s.segment_id] = "camera_size"
                per_cam[s.camera_id] -= s.bytes
    total = sum(s.bytes for s in segs if s.segment_id not in doomed)
    for s in segs:
        if total <= cfg.max_bytes:
            break
        if s.segment_id not in doomed:
            doomed[s.segment_id] = "size"
            total -= s.bytes
    return doomed


def _prune_orphans(data_dir: str | Path, indexed: set[str], cutoff: float, deleted: dict[str, int]) -> int:
    """Files no row names (the announcement was lost: ingest killed, camera moved, broker down),
    untouched since `cutoff`: unreachable for clips and uncounted by the size caps, so they go."""
    root = recordings_root(data_dir)
    if not root.is_dir():
        return 0
    freed = 0
    for path in root.glob("*/*.mp4"):
        rel = path.relative_to(root).as_posix()
        try:
            st = path.stat()
        except OSError:
            continue
        if rel not in indexed and st.st_mtime < cutoff:
            with contextlib.suppress(FileNotFoundError):
                path.unlink()
            deleted["orphan"] += 1
            freed += st.st_size
    return freed


def prune_recordings(
    engine: Engine, data_dir: str | Path, cfg: RecordingConfig, now: float
) -> RecordingReport:
    """One retention pass over every camera's segments (see the module docstring)."""
    c = t.segments.c
    with engine.connect() as conn:
        segs = [SegmentRow.of(r) for r in conn.execute(select(t.segments).order_by(c.start_ts, c.seq))]
        cams = sorted({s.camera_id for s in segs if s.mode == "events"})
        event_times: dict[str, list[float]] = {}
        for cam in cams:
            q = select(t.events.c.ts).where(t.events.c.camera_id == cam).order_by(t.events.c.ts)
            event_times[cam] = [float(x) for x in conn.execute(q).scalars()]
    doomed = plan_retention(segs, event_times, cfg, now)
    by_id = {s.segment_id: s for s in segs}
    deleted: dict[str, int] = defaultdict(int)
    orphans = _prune_orphans(data_dir, {s.path for s in segs}, now - cfg.orphan_grace_s, deleted)
    freed = 0
    for sid, why in doomed.items():
        with contextlib.suppress(RecordingMissing, FileNotFoundError):
            resolve_segment(data_dir, by_id[sid].path).unlink()
        deleted[why] += 1
        freed += by_id[sid].bytes
    ids = list(doomed)
    with engine.begin() as conn:
        for i in range(0, len(ids), 500):
            conn.execute(delete(t.segments).where(c.segment_id.in_(ids[i : i + 500])))
    kept = sum(s.bytes for s in segs) - freed
    freed += orphans
    if ids or orphans:
        log.info("recording retention: deleted %s, freed %d bytes, %d kept", dict(deleted), freed, kept)
    return RecordingReport(dict(deleted), freed, kept)
