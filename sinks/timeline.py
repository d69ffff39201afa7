"""Timelines: per camera, when each tracked object was present and which summary windows exist."""

from __future__ import annotations

import json
from datetime import UTC, datetime

from pydantic import BaseModel, ConfigDict
from sqlalchemy import select

from sinks import tables as t
from sinks.db import epoch
from sinks.store import Store


class _Frozen(BaseModel):
    model_config = ConfigDict(frozen=True)


class PresenceSegment(_Frozen):
    query_id: str
    track_id: str
    label: str
    start: datetime
    end: datetime
    ended: bool
    best_score: float | None
    snapshot: str | None


class SummaryWindow(_Frozen):
    summary_id: str
    query_id: str
    start: datetime
    end: datetime
    text: str


class Timeline(_Frozen):
    camera_id: str
    since: datetime | None
    until: datetime | None
    segments: list[PresenceSegment]
    summaries: list[SummaryWindow]


def _dt(ts: float) -> datetime:
    return datetime.fromtimestamp(ts, UTC)


def timeline(
    store: Store,
    camera_id: str,
    since: datetime | None = None,
    until: datetime | None = None,
    limit: int = 2000,
    query_id: str | None = None,
) -> Timeline:
    """Tracks and summary windows that overlap [since, until), oldest first; optionally one query's."""
    tc, sc = t.tracks.c, t.summaries.c
    tq = select(t.tracks).where(tc.camera_id == camera_id).order_by(tc.first_ts, tc.id).limit(limit)
    sq = select(sc.summary_id, sc.query_id, sc.start_ts, sc.end_ts, sc.payload).where(
        sc.camera_id == camera_id
    )
    if query_id is not None:
        tq = tq.where(tc.query_id == query_id)
        sq = sq.where(sc.query_id == query_id)
    if since is not None:
        tq = tq.where(tc.last_ts >= epoch(since))
        sq = sq.where(sc.end_ts >= epoch(since))
    if until is not None:
        tq = tq.where(tc.first_ts < epoch(until))
        sq = sq.where(sc.start_ts < epoch(until))
    sq = sq.order_by(sc.start_ts, sc.summary_id).limit(limit)
    with store.engine.connect() as conn:
        tracks = conn.execute(tq).all()
        windows = conn.execute(sq).all()
    return Timeline(
        camera_id=camera_id,
        since=since,
        until=until,
        segments=[
            PresenceSegment(
                query_id=r.query_id,
                track_id=r.track_id,
                label=r.label,
                start=_dt(r.first_ts),
                end=_dt(r.last_ts),
                ended=bool(r.ended),
                best_score=r.best_score,
                snapshot=r.best_snapshot or r.start_snapshot,
            )
            for r in tracks
        ],
        summaries=[
            SummaryWindow(
                summary_id=r.summary_id,
                query_id=r.query_id,
                start=_dt(r.start_ts),
                end=_dt(r.end_ts),
                text=json.loads(r.payload)["text"],
            )
            for r in windows
        ],
    )
