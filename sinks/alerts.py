"""Alerts and the zones/lines/rules they come from, in the store (tables `alerts`, `rule_objects`).

Alert writes are idempotent by `alert_id` (a restarted rules process or a redelivered alert
adds nothing); reads page newest first on (ts, seq) like events.
"""

from __future__ import annotations

import json
import time
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import Connection, and_, delete, or_, select
from sqlalchemy.engine import Engine

from bus.contracts import Alert, ControlMessage
from bus.rulespec import LineSpec, RuleSet, RuleSpec, ZoneSpec
from sinks import tables as t
from sinks.db import dumps, epoch, insert_for

RuleObject = ZoneSpec | LineSpec | RuleSpec
KINDS: dict[str, type[ZoneSpec] | type[LineSpec] | type[RuleSpec]] = {
    "zone": ZoneSpec,
    "line": LineSpec,
    "rule": RuleSpec,
}


def write_alerts(engine: Engine, conn: Connection, alerts: Sequence[Alert]) -> list[Alert]:
    """Insert the alerts not stored yet; returns those that were new."""
    if not alerts:
        return []
    ids = [a.alert_id for a in alerts]
    known = {r[0] for r in conn.execute(select(t.alerts.c.alert_id).where(t.alerts.c.alert_id.in_(ids)))}
    now = time.time()
    fresh: list[Alert] = []
    for a in alerts:
        if a.alert_id in known:
            continue
        known.add(a.alert_id)
        row = insert_for(engine, t.alerts).values(
            alert_id=a.alert_id,
            rule_id=a.rule_id,
            camera_id=a.camera_id,
            track_id=a.track_id,
            condition=a.condition,
            severity=a.severity,
            ts=epoch(a.wall_ts),
            pts_s=a.pts_s,
            snapshot=a.snapshot,
            received_at=now,
            payload=dumps(a.model_dump(mode="json", by_alias=True)),
        )
        if conn.execute(row.on_conflict_do_nothing(index_elements=["alert_id"])).rowcount:
            fresh.append(a)
    return fresh


@dataclass(frozen=True)
class AlertFilter:
    camera_id: str | None = None
    rule_id: str | None = None
    severity: str | None = None
    since: datetime | None = None
    until: datetime | None = None

    def where(self, q: Any) -> Any:
        c = t.alerts.c
        for col, value in (
            (c.camera_id, self.camera_id),
            (c.rule_id, self.rule_id),
            (c.severity, self.severity),
        ):
            if value is not None:
                q = q.where(col == value)
        if self.since is not None:
            q = q.where(c.ts >= epoch(self.since))
        if self.until is not None:
            q = q.where(c.ts < epoch(self.until))
        return q


def list_alerts(
    engine: Engine, flt: AlertFilter, limit: int = 50, before: tuple[float, int] | None = None
) -> tuple[list[dict[str, Any]], tuple[float, int] | None]:
    """Newest first; returns the page and the (ts, seq) to continue before, if there is more."""
    c = t.alerts.c
    q = flt.where(select(c.seq, c.ts, c.payload)).order_by(c.ts.desc(), c.seq.desc()).limit(limit + 1)
    if before is not None:
        q = q.where(or_(c.ts < before[0], and_(c.ts == before[0], c.seq < before[1])))
    with engine.connect() as conn:
        rows = conn.execute(q).all()
    more = len(rows) > limit
    rows = rows[:limit]
    nxt = (float(rows[-1].ts), int(rows[-1].seq)) if more and rows else None
    return [json.loads(r.payload) for r in rows], nxt


def alerts_after(
    engine: Engine, seq: int, flt: AlertFilter, limit: int = 200
) -> list[tuple[int, dict[str, Any]]]:
    """Alerts that arrived after `seq` (arrival order), for the live stream."""
    c = t.alerts.c
    q = flt.where(select(c.seq, c.payload)).where(c.seq > seq).order_by(c.seq).limit(limit)
    with engine.connect() as conn:
        return [(int(r.seq), json.loads(r.payload)) for r in conn.execute(q)]


def get_alert(engine: Engine, alert_id: str) -> dict[str, Any] | None:
    with engine.connect() as conn:
        payload = conn.execute(select(t.alerts.c.payload).where(t.alerts.c.alert_id == alert_id)).scalar()
    return json.loads(payload) if payload else None


def last_alert_seq(engine: Engine) -> int:
    from sqlalchemy import func

    with engine.connect() as conn:
        return int(conn.execute(select(func.max(t.alerts.c.seq))).scalar() or 0)


# -- zones, lines, rules ----------------------------------------------------------------------


def kind_of(obj: RuleObject) -> str:
    return "zone" if isinstance(obj, ZoneSpec) else "line" if isinstance(obj, LineSpec) else "rule"


def put_object(engine: Engine, obj: RuleObject, ts: float | None = None) -> None:
    with engine.begin() as conn:
        _upsert(engine, conn, obj, time.time() if ts is None else ts)


def _upsert(engine: Engine, conn: Connection, obj: RuleObject, ts: float) -> None:
    ins = insert_for(engine, t.rule_objects)
    row = ins.values(
        kind=kind_of(obj),
        id=obj.id,
        camera_id=getattr(obj, "camera", None),
        spec=obj.model_dump_json(by_alias=True),
        updated_at=ts,
    )
    x = ins.excluded
    conn.execute(
        row.on_conflict_do_update(
            index_elements=["kind", "id"],
            set_={"spec": x.spec, "camera_id": x.camera_id, "updated_at": x.updated_at},
            where=x.updated_at >= t.rule_objects.c.updated_at,
        )
    )


def put_rule_object(engine: Engine, conn: Connection, m: ControlMessage) -> None:
    """A zone/line/rule registration or deletion from the control topic."""
    c = t.rule_objects.c
    if m.op == "delete":
        conn.execute(
            delete(t.rule_objects).where(c.kind == m.kind, c.id == m.id, c.updated_at <= epoch(m.ts))
        )
    elif isinstance(m.body, ZoneSpec | LineSpec | RuleSpec):
        _upsert(engine, conn, m.body, epoch(m.ts))


def delete_object(engine: Engine, kind: str, obj_id: str) -> bool:
    c = t.rule_objects.c
    with engine.begin() as conn:
        return bool(conn.execute(delete(t.rule_objects).where(c.kind == kind, c.id == obj_id)).rowcount)


def load_objects(engine: Engine) -> tuple[list[ZoneSpec], list[LineSpec], list[RuleSpec]]:
    """Everything stored, by kind; a rule whose zone is gone is returned too (the evaluator disables it)."""
    c = t.rule_objects.c
    zones: list[ZoneSpec] = []
    lines: list[LineSpec] = []
    rules: list[RuleSpec] = []
    with engine.connect() as conn:
        for r in conn.execute(select(c.kind, c.spec).order_by(c.kind, c.id)):
            if r.kind == "zone":
                zones.append(ZoneSpec.model_validate_json(r.spec))
            elif r.kind == "line":
                lines.append(LineSpec.model_validate_json(r.spec))
            elif r.kind == "rule":
                rules.append(RuleSpec.model_validate_json(r.spec))
    return zones, lines, rules


def import_ruleset(engine: Engine, rs: RuleSet) -> None:
    objs: list[RuleObject] = [*rs.zones, *rs.lines, *rs.rules]
    for obj in objs:
        put_object(engine, obj)
