"""The event store: idempotent writes of what the topics carry, and the reads the API needs.

Every write is an upsert keyed by the message's own id, so replaying a topic changes nothing.
"""

from __future__ import annotations

import base64
import json
import math
import time
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any

from sqlalchemy import Connection, Select, and_, delete, func, or_, select, text
from sqlalchemy.engine import Engine

from bus.contracts import (
    Alert,
    CameraSpec,
    ControlMessage,
    ObjectEvent,
    QuerySpec,
    RecordedSegment,
    StatusUpdate,
    Summary,
)
from bus.redact import redact_text, redact_url
from sinks import tables as t
from sinks.alerts import put_rule_object, write_alerts
from sinks.db import create_engine, dumps, epoch, insert_for
from sinks.eventwrite import write_events
from sinks.recordings import write_segment

if TYPE_CHECKING:
    from sinks.indexer import BackgroundIndexer
    from sinks.search import SearchIndex

Message = ObjectEvent | Summary | StatusUpdate | ControlMessage | RecordedSegment | Alert


MAX_SEQ = 2**63 - 1  # the events table's BIGINT


class BadCursor(ValueError):
    """A pagination cursor that this store did not hand out."""


@dataclass(frozen=True)
class EventFilter:
    camera_id: str | None = None
    query_id: str | None = None
    label: str | None = None
    phase: str | None = None
    since: datetime | None = None
    until: datetime | None = None

    def where(self, q: Select[Any]) -> Select[Any]:
        c = t.events.c
        for col, value in ((c.camera_id, self.camera_id), (c.query_id, self.query_id)):
            if value is not None:
                q = q.where(col == value)
        if self.label is not None:
            q = q.where(c.label == self.label)
        if self.phase is not None:
            q = q.where(c.phase == self.phase)
        if self.since is not None:
            q = q.where(c.ts >= epoch(self.since))
        if self.until is not None:
            q = q.where(c.ts < epoch(self.until))
        return q


@dataclass(frozen=True)
class Page:
    items: list[dict[str, Any]]
    next_cursor: str | None


class Store:
    """One database (SQLite file or PostgreSQL); safe to share between threads."""

    def __init__(self, url: str, *, migrate: bool = True) -> None:
        self.url = url
        self.engine: Engine = create_engine(url)
        self.search: SearchIndex | None = None  # set by the sink: what it stores is indexed too
        self.indexer: BackgroundIndexer | None = None  # see `index_in_background`
        if migrate:
            from sinks.migrate import upgrade

            upgrade(self.engine)

    def index_in_background(self, depth: int = 2) -> None:
        """Index on a worker thread (the sink, the search bench): `write` returns after the commit."""
        from sinks.indexer import BackgroundIndexer

        if self.search is not None and self.indexer is None:
            self.indexer = BackgroundIndexer(self.search, depth)

    def flush_index(self) -> None:
        """Wait until everything written so far is indexed (a no-op when indexing is inline)."""
        if self.indexer is not None:
            self.indexer.flush()

    def close(self) -> None:
        if self.indexer is not None:
            self.indexer.close()  # what was stored is indexed before the engine goes
        self.engine.dispose()

    def ping(self) -> None:
        with self.engine.connect() as conn:
            conn.execute(text("SELECT 1"))

    # -- writes -------------------------------------------------------------------------------

    def write(self, messages: Iterable[Message]) -> list[Message]:
        """Upsert a batch in one transaction; returns the events and summaries that were new."""
        batch = list(messages)
        fresh: list[Message] = []
        with self.engine.begin() as conn:
            for msg in batch:  # rare kinds, in order: an upsert then a delete of one id must stay so
                if isinstance(msg, ControlMessage):
                    self._control(conn, msg)
                elif isinstance(msg, StatusUpdate):
                    self._status(conn, msg)
                elif isinstance(msg, Summary) and self._summary(conn, msg):
                    fresh.append(msg)
                elif isinstance(msg, RecordedSegment):
                    write_segment(self.engine, conn, msg)  # an index row, not news: never sent outbound
            fresh += write_events(self.engine, conn, [m for m in batch if isinstance(m, ObjectEvent)])
            fresh += write_alerts(self.engine, conn, [m for m in batch if isinstance(m, Alert)])
        if self.search is not None and fresh:
            # After the commit: a slow embedder never holds the write lock. A crash in between leaves
            # rows unindexed, which the next start-up's backfill finds.
            if self.indexer is not None:
                self.indexer.submit(fresh)
            else:
                self.search.index_messages(fresh)
        return fresh

    def _summary(self, conn: Connection, s: Summary) -> bool:
        ins = insert_for(self.engine, t.summaries).values(
            summary_id=s.summary_id,
            camera_id=s.camera_id,
            query_id=s.query_id,
            start_ts=epoch(s.window_start_wall),
            end_ts=epoch(s.window_end_wall),
            payload=dumps(s.model_dump(mode="json", by_alias=True)),
        )
        return bool(conn.execute(ins.on_conflict_do_nothing(index_elements=["summary_id"])).rowcount)

    def _status(self, conn: Connection, s: StatusUpdate) -> None:
        ins = insert_for(self.engine, t.status)
        row = ins.values(
            component=s.component,
            id=s.id,
            state=s.state,
            ts=epoch(s.ts),
            # Workers put error text in `reason`; an open() error can quote a camera URL with its password.
            payload=redact_text(dumps(s.model_dump(mode="json", by_alias=True))),
        )
        x = ins.excluded
        # Only a newer report replaces an older one, whatever order they arrive in.
        conn.execute(
            row.on_conflict_do_update(
                index_elements=["component", "id"],
                set_={"state": x.state, "ts": x.ts, "payload": x.payload},
                where=x.ts >= t.status.c.ts,
            )
        )

    def _control(self, conn: Connection, m: ControlMessage) -> None:
        if m.kind in ("zone", "line", "rule"):
            put_rule_object(self.engine, conn, m)
            return
        if m.op == "delete":
            table = t.cameras if m.kind == "camera" else t.queries
            conn.execute(delete(table).where(table.c.id == m.id))
        elif m.camera is not None:
            self._put_camera(conn, m.camera, epoch(m.ts))
        elif m.query is not None:
            self._put_query(conn, m.query, epoch(m.ts))

    def _put_camera(self, conn: Connection, cam: CameraSpec, ts: float) -> None:
        # Only the masked URL is kept: database backups must not hold camera passwords. The
        # control topic is the one place with the real URL (docs/deploy.md: treat it as a secret).
        cam = cam.model_copy(update={"url": redact_url(cam.url)})
        ins = insert_for(self.engine, t.cameras)
        row = ins.values(id=cam.id, spec=cam.to_json().decode(), enabled=cam.enabled, updated_at=ts)
        x = ins.excluded
        conn.execute(
            row.on_conflict_do_update(
                index_elements=["id"],
                set_={"spec": x.spec, "enabled": x.enabled, "updated_at": x.updated_at},
                where=x.updated_at >= t.cameras.c.updated_at,
            )
        )

    def _put_query(self, conn: Connection, q: QuerySpec, ts: float) -> None:
        ins = insert_for(self.engine, t.queries)
        row = ins.values(id=q.id, spec=q.to_json().decode(), kind=q.kind, updated_at=ts)
        x = ins.excluded
        conn.execute(
            row.on_conflict_do_update(
                index_elements=["id"],
                set_={"spec": x.spec, "kind": x.kind, "updated_at": x.updated_at},
                where=x.updated_at >= t.queries.c.updated_at,
            )
        )

    # -- reads --------------------------------------------------------------------------------

    def events(self, flt: EventFilter, limit: int = 50, cursor: str | None = None) -> Page:
        """Newest first, keyset-paginated on (ts, seq) so pages stay stable while events arrive."""
        c = t.events.c
        q = flt.where(select(c.seq, c.ts, c.payload)).order_by(c.ts.desc(), c.seq.desc()).limit(limit + 1)
        if cursor:
            ts, seq = _decode_cursor(cursor)
            q = q.where(or_(c.ts < ts, and_(c.ts == ts, c.seq < seq)))
        with self.engine.connect() as conn:
            rows = conn.execute(q).all()
        more = len(rows) > limit
        rows = rows[:limit]
        nxt = _encode_cursor(rows[-1].ts, rows[-1].seq) if more and rows else None
        return Page([json.loads(r.payload) for r in rows], nxt)

    def events_after(self, seq: int, flt: EventFilter, limit: int = 200) -> list[tuple[int, dict[str, Any]]]:
        """Events that arrived after `seq` (arrival order), for live feeds."""
        c = t.events.c
        q = flt.where(select(c.seq, c.payload)).where(c.seq > seq).order_by(c.seq).limit(limit)
        with self.engine.connect() as conn:
            return [(int(r.seq), json.loads(r.payload)) for r in conn.execute(q)]

    def events_up_to(self, seq: int, flt: EventFilter, limit: int) -> list[tuple[int, dict[str, Any]]]:
        """The last `limit` events that arrived at or before `seq`, in arrival order (a feed's backlog)."""
        c = t.events.c
        q = flt.where(select(c.seq, c.payload)).where(c.seq <= seq).order_by(c.seq.desc()).limit(limit)
        with self.engine.connect() as conn:
            rows = [(int(r.seq), json.loads(r.payload)) for r in conn.execute(q)]
        return rows[::-1]

    def last_seq(self) -> int:
        with self.engine.connect() as conn:
            value = conn.execute(select(func.max(t.events.c.seq))).scalar()
        return int(value or 0)

    def summaries(
        self,
        camera_id: str | None = None,
        query_id: str | None = None,
        since: datetime | None = None,
        until: datetime | None = None,
        limit: int = 50,
    ) -> list[dict[str, Any]]:
        c = t.summaries.c
        q = select(c.payload).order_by(c.start_ts.desc(), c.summary_id).limit(limit)
        if camera_id is not None:
            q = q.where(c.camera_id == camera_id)
        if query_id is not None:
            q = q.where(c.query_id == query_id)
        if since is not None:
            q = q.where(c.end_ts >= epoch(since))
        if until is not None:
            q = q.where(c.start_ts < epoch(until))
        with self.engine.connect() as conn:
            return [json.loads(r.payload) for r in conn.execute(q)]

    def statuses(self, component: str | None = None) -> list[dict[str, Any]]:
        q = select(t.status.c.payload).order_by(t.status.c.component, t.status.c.id)
        if component is not None:
            q = q.where(t.status.c.component == component)
        with self.engine.connect() as conn:
            return [json.loads(r.payload) for r in conn.execute(q)]

    def latest_snapshot(self, camera_id: str) -> str | None:
        c = t.events.c
        q = (
            select(c.snapshot)
            .where(c.camera_id == camera_id, c.snapshot.is_not(None))
            .order_by(c.ts.desc(), c.seq.desc())
            .limit(1)
        )
        with self.engine.connect() as conn:
            ref = conn.execute(q).scalar()
        return str(ref) if ref else None

    def counts(self) -> dict[str, int]:
        out = {}
        with self.engine.connect() as conn:
            for table in (t.cameras, t.queries, t.events, t.tracks, t.summaries, t.status, t.alerts):
                out[table.name] = int(conn.execute(select(func.count()).select_from(table)).scalar() or 0)
        return out

    # -- cameras and queries ------------------------------------------------------------------

    def put_camera(self, cam: CameraSpec) -> None:
        with self.engine.begin() as conn:
            self._put_camera(conn, cam, time.time())

    def put_query(self, q: QuerySpec) -> None:
        with self.engine.begin() as conn:
            self._put_query(conn, q, time.time())

    def delete_entity(self, kind: str, entity_id: str) -> bool:
        table = t.cameras if kind == "camera" else t.queries
        with self.engine.begin() as conn:
            return bool(conn.execute(delete(table).where(table.c.id == entity_id)).rowcount)

    def cameras(self) -> list[CameraSpec]:
        with self.engine.connect() as conn:
            rows = conn.execute(select(t.cameras.c.spec).order_by(t.cameras.c.id))
            return [CameraSpec.model_validate_json(r.spec) for r in rows]

    def camera(self, camera_id: str) -> CameraSpec | None:
        with self.engine.connect() as conn:
            spec = conn.execute(select(t.cameras.c.spec).where(t.cameras.c.id == camera_id)).scalar()
        return CameraSpec.model_validate_json(spec) if spec else None

    def queries(self) -> list[QuerySpec]:
        with self.engine.connect() as conn:
            rows = conn.execute(select(t.queries.c.spec).order_by(t.queries.c.id))
            return [QuerySpec.model_validate_json(r.spec) for r in rows]

    def query(self, query_id: str) -> QuerySpec | None:
        with self.engine.connect() as conn:
            spec = conn.execute(select(t.queries.c.spec).where(t.queries.c.id == query_id)).scalar()
        return QuerySpec.model_validate_json(spec) if spec else None


def _encode_cursor(ts: float, seq: int) -> str:
    return base64.urlsafe_b64encode(dumps([ts, seq]).encode()).decode().rstrip("=")


def _decode_cursor(cursor: str) -> tuple[float, int]:
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
        ts, seq = json.loads(raw)
        ts = float(ts)
    except (ValueError, TypeError) as exc:
        raise BadCursor("cursor is not one this API returned") from exc
    # Bounded before it reaches SQL: 1e30 overflowed the driver's integer (a 500), NaN compares false.
    if type(seq) is not int or not 0 <= seq <= MAX_SEQ or not math.isfinite(ts) or abs(ts) > 1e11:
        raise BadCursor("cursor is not one this API returned")
    return ts, seq
