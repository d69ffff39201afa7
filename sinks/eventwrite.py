"""Batched, idempotent event writes and the track fold.

Per batch: one SELECT finds the ids already stored, one multi-row INSERT adds the new events
(ON CONFLICT DO NOTHING covers a concurrent writer), and the new events are folded into
their tracks in Python first, then one upsert per touched track. The fold only uses
min / max / OR, so applying an event twice (a race between two sinks) changes nothing.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

from sqlalchemy import Connection, and_, case, func, or_, select
from sqlalchemy.engine import Engine

from bus.contracts import ObjectEvent, stable_id
from sinks import tables as t
from sinks.db import dumps, epoch, executemany, insert_for

CHUNK = 500  # ids per IN (...) list; far below SQLite's variable limit


@lru_cache(maxsize=65536)  # every event of a batch asks it twice (fold, then index) for few tracks
def track_key(camera_id: str, query_id: str, track_id: str) -> str:
    return stable_id("track", camera_id, query_id, track_id)


@dataclass(frozen=True)
class TrackFold:
    id: str
    camera_id: str
    query_id: str
    track_id: str
    label: str
    first_ts: float
    last_ts: float
    first_pts: float
    last_pts: float
    ended: bool
    best_score: float | None
    start_snapshot: str | None
    best_snapshot: str | None
    last_bbox: tuple[float, ...]  # as JSON only once per fold, when it is written

    @classmethod
    def of(cls, ev: ObjectEvent) -> TrackFold:
        ts = epoch(ev.wall_ts)
        end_ts = epoch(ev.closed_at) if ev.phase == "end" and ev.closed_at else ts
        return cls(
            id=track_key(ev.camera_id, ev.query_id, ev.track_id),
            camera_id=ev.camera_id,
            query_id=ev.query_id,
            track_id=ev.track_id,
            label=ev.label,
            first_ts=ts,
            last_ts=max(ts, end_ts),
            first_pts=ev.pts_s,
            last_pts=ev.pts_s,
            ended=ev.phase == "end",
            best_score=ev.score,
            start_snapshot=ev.snapshot if ev.phase == "start" else None,
            best_snapshot=ev.snapshot,
            last_bbox=tuple(ev.bbox),
        )

    def merge(self, o: TrackFold) -> TrackFold:
        """The same rules as the SQL upsert below, applied in memory."""
        better = self.best_score is None or (o.best_score is not None and o.best_score > self.best_score)
        newer = o.last_ts >= self.last_ts
        return TrackFold(  # spelt out: dataclasses.replace costs more than the rest of the fold
            id=self.id,
            camera_id=self.camera_id,
            query_id=self.query_id,
            track_id=self.track_id,
            label=self.label,
            first_ts=min(self.first_ts, o.first_ts),
            last_ts=max(self.last_ts, o.last_ts),
            first_pts=min(self.first_pts, o.first_pts),
            last_pts=max(self.last_pts, o.last_pts),
            ended=self.ended or o.ended,
            best_score=o.best_score if better else self.best_score,
            best_snapshot=(
                o.best_snapshot if better and o.best_snapshot else self.best_snapshot or o.best_snapshot
            ),
            start_snapshot=self.start_snapshot or o.start_snapshot,
            last_bbox=o.last_bbox if newer else self.last_bbox,
        )


def _event_row(ev: ObjectEvent, received_at: float) -> dict[str, Any]:
    return {
        "event_id": ev.event_id,
        "camera_id": ev.camera_id,
        "query_id": ev.query_id,
        "track_id": ev.track_id,
        "phase": ev.phase,
        "label": ev.label,
        "ts": epoch(ev.wall_ts),
        "pts_s": ev.pts_s,
        "score": ev.score,
        "snapshot": ev.snapshot,
        "received_at": received_at,
        # pydantic's own JSON (Rust) writes the same text as json.dumps of model_dump for ASCII,
        # at a fraction of the cost; it keeps non-ASCII as UTF-8 where json.dumps escaped it.
        "payload": ev.model_dump_json(by_alias=True),
    }


def _existing(conn: Connection, ids: list[str]) -> set[str]:
    found: set[str] = set()
    for i in range(0, len(ids), CHUNK):
        chunk = ids[i : i + CHUNK]
        found.update(
            conn.execute(select(t.events.c.event_id).where(t.events.c.event_id.in_(chunk))).scalars()
        )
    return found


def write_events(engine: Engine, conn: Connection, events: Sequence[ObjectEvent]) -> list[ObjectEvent]:
    """Store the events not seen before (by id) and fold them into tracks; returns those new events."""
    unique = list({ev.event_id: ev for ev in reversed(events)}.values())[::-1]  # first copy wins, order kept
    if not unique:
        return []
    seen = _existing(conn, [ev.event_id for ev in unique])
    fresh = [ev for ev in unique if ev.event_id not in seen]
    if not fresh:
        return []
    now = time.time()
    rows = [_event_row(ev, now) for ev in fresh]
    folds: dict[str, TrackFold] = {}
    for ev in fresh:
        f = TrackFold.of(ev)
        folds[f.id] = folds[f.id].merge(f) if f.id in folds else f
    # Rows and folds are made before the first write: on SQLite the write lock is held from the
    # INSERT to the commit, and the search indexer's thread waits for it meanwhile.
    ins = insert_for(engine, t.events).on_conflict_do_nothing(index_elements=["event_id"])
    executemany(conn, ins, rows)
    _upsert_tracks(engine, conn, list(folds.values()))
    return fresh


def _upsert_tracks(engine: Engine, conn: Connection, folds: list[TrackFold]) -> None:
    ins = insert_for(engine, t.tracks)
    c, x = t.tracks.c, ins.excluded
    better = or_(c.best_score.is_(None), and_(x.best_score.is_not(None), x.best_score > c.best_score))
    newer = x.last_ts >= c.last_ts
    stmt = ins.on_conflict_do_update(
        index_elements=["id"],
        set_={
            "first_ts": case((x.first_ts < c.first_ts, x.first_ts), else_=c.first_ts),
            "last_ts": case((newer, x.last_ts), else_=c.last_ts),
            "first_pts": case((x.first_pts < c.first_pts, x.first_pts), else_=c.first_pts),
            "last_pts": case((x.last_pts > c.last_pts, x.last_pts), else_=c.last_pts),
            "ended": or_(c.ended, x.ended),
            "best_score": case((better, x.best_score), else_=c.best_score),
            "best_snapshot": case(
                (and_(better, x.best_snapshot.is_not(None)), x.best_snapshot),
                else_=func.coalesce(c.best_snapshot, x.best_snapshot),
            ),
            "start_snapshot": func.coalesce(c.start_snapshot, x.start_snapshot),
            "last_bbox": case((newer, x.last_bbox), else_=c.last_bbox),
        },
    )
    executemany(conn, stmt, [{**f.__dict__, "last_bbox": dumps(list(f.last_bbox))} for f in folds])
