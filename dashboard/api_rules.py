"""Zones, lines and rules (CRUD), alerts (list + SSE) and the dry run of a rule over stored events.

Bodies are the `bus.rulespec` objects themselves (the rules file's shape as JSON). Writes go to
the control topic and the store, like cameras and queries; `sightline rules` follows the topic.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator, Iterator
from datetime import datetime
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, Header, HTTPException, Path, Query, Request, Response
from fastapi.responses import FileResponse, StreamingResponse
from pydantic import BaseModel, ConfigDict, Field
from starlette.concurrency import run_in_threadpool

from bus.contracts import ID_PATTERN, Alert, ControlMessage, ObjectEvent
from bus.rulespec import LineSpec, RuleSpec, ZoneSpec, reference_problems
from dashboard.auth import admin, authenticated_caller, viewer
from dashboard.live import HEARTBEAT_S, POLL_S, _last_event_id, _StreamResponse
from dashboard.state import AppState, get_state, unprocessable
from sinks import alerts as store_alerts
from sinks.snapshots import SnapshotMissing, resolve_snapshot
from sinks.store import EventFilter

router = APIRouter(tags=["rules and alerts"], dependencies=[viewer])
IdPath = Annotated[str, Path(pattern=ID_PATTERN)]
DRY_RUN_MAX_EVENTS = 500_000


class RuleOut(BaseModel):
    rule: RuleSpec
    disabled_reason: str | None = Field(None, description="why `sightline rules` will not evaluate it")


class AlertPage(BaseModel):
    items: list[Alert]
    next_cursor: str | None


class DryRunIn(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)
    rule: RuleSpec
    since: datetime | None = None
    until: datetime | None = None
    limit: int = Field(200, ge=1, le=1000, description="alerts returned whole; all are counted")


class DryRunOut(BaseModel):
    alerts: list[Alert]
    count: int
    per_day: dict[str, int] = Field(description="UTC date → alerts the rule would have raised")
    events: int = Field(description="stored events evaluated")
    truncated: bool = Field(description="the range held more than the events evaluated")


def _objects(state: AppState) -> tuple[list[ZoneSpec], list[LineSpec], list[RuleSpec]]:
    return store_alerts.load_objects(state.store.engine)


def _check_rule(state: AppState, rule: RuleSpec, zones: list[ZoneSpec], lines: list[LineSpec]) -> None:
    """Unknown zone, line or query → 422 naming the field (never a 5xx later in the evaluator)."""
    problems = reference_problems(zones, lines, [rule])
    if problems:
        path, msg = problems[0].split(": ", 1)
        raise unprocessable(["body", *path.split(".")[2:]], msg, "unknown_reference")
    if rule.query is not None and rule.query not in {q.id for q in state.store.queries()}:
        raise unprocessable(["body", "query"], f"unknown query {rule.query!r}", "unknown_reference")


# -- zones and lines --------------------------------------------------------------------------


@router.get("/api/zones", response_model=list[ZoneSpec])
def list_zones(
    state: Annotated[AppState, Depends(get_state)],
    camera_id: Annotated[str | None, Query(pattern=ID_PATTERN)] = None,
) -> list[ZoneSpec]:
    return [z for z in _objects(state)[0] if camera_id is None or z.camera == camera_id]


@router.post("/api/zones", response_model=ZoneSpec, status_code=201, dependencies=[admin])
def put_zone(body: ZoneSpec, state: Annotated[AppState, Depends(get_state)]) -> ZoneSpec:
    state.publish_control(ControlMessage(op="upsert", kind="zone", id=body.id, zone=body))
    return body


@router.get("/api/lines", response_model=list[LineSpec])
def list_lines(
    state: Annotated[AppState, Depends(get_state)],
    camera_id: Annotated[str | None, Query(pattern=ID_PATTERN)] = None,
) -> list[LineSpec]:
    return [ln for ln in _objects(state)[1] if camera_id is None or ln.camera == camera_id]


@router.post("/api/lines", response_model=LineSpec, status_code=201, dependencies=[admin])
def put_line(body: LineSpec, state: Annotated[AppState, Depends(get_state)]) -> LineSpec:
    state.publish_control(ControlMessage(op="upsert", kind="line", id=body.id, line=body))
    return body


def _delete(state: AppState, kind: Literal["zone", "line", "rule"], obj_id: str) -> Response:
    zones, lines, rules = _objects(state)
    ids = {"zone": {z.id for z in zones}, "line": {ln.id for ln in lines}, "rule": {r.id for r in rules}}[
        kind
    ]
    if obj_id not in ids:
        raise HTTPException(404, f"no {kind} {obj_id!r}")
    state.publish_control(ControlMessage(op="delete", kind=kind, id=obj_id))
    return Response(status_code=204)


@router.delete("/api/zones/{zone_id}", status_code=204, dependencies=[admin])
def delete_zone(zone_id: IdPath, state: Annotated[AppState, Depends(get_state)]) -> Response:
    """A rule naming a deleted zone stays, disabled with a reason (see GET /api/rules)."""
    return _delete(state, "zone", zone_id)


@router.delete("/api/lines/{line_id}", status_code=204, dependencies=[admin])
def delete_line(line_id: IdPath, state: Annotated[AppState, Depends(get_state)]) -> Response:
    return _delete(state, "line", line_id)


@router.delete("/api/rules/{rule_id}", status_code=204, dependencies=[admin])
def delete_rule(rule_id: IdPath, state: Annotated[AppState, Depends(get_state)]) -> Response:
    return _delete(state, "rule", rule_id)


# -- rules ------------------------------------------------------------------------------------


@router.get("/api/rules", response_model=list[RuleOut], response_model_by_alias=True)
def list_rules(state: Annotated[AppState, Depends(get_state)]) -> list[RuleOut]:
    zones, lines, rules = _objects(state)
    out = []
    for r in rules:
        problems = reference_problems(zones, lines, [r])
        reason = problems[0].split(": ", 1)[1] if problems else (None if r.enabled else "disabled")
        out.append(RuleOut(rule=r, disabled_reason=reason))
    return out


@router.post(
    "/api/rules", response_model=RuleSpec, response_model_by_alias=True, status_code=201, dependencies=[admin]
)
def put_rule(body: RuleSpec, state: Annotated[AppState, Depends(get_state)]) -> RuleSpec:
    zones, lines, _ = _objects(state)
    _check_rule(state, body, zones, lines)
    state.publish_control(ControlMessage(op="upsert", kind="rule", id=body.id, rule=body))
    return body


@router.post("/api/rules/dry-run", response_model=DryRunOut, response_model_by_alias=True)
def dry_run_rule(body: DryRunIn, state: Annotated[AppState, Depends(get_state)]) -> DryRunOut:
    """What `rule` (not saved) would have raised over the stored events of its camera in the range."""
    from rules.backtest import dry_run

    zones, lines, _ = _objects(state)
    _check_rule(state, body.rule, zones, lines)
    rule = body.rule.model_copy(update={"enabled": True})
    cameras = {z.id: z.camera for z in zones} if rule.when.zone else {ln.id: ln.camera for ln in lines}
    camera = cameras[rule.when.zone or rule.when.line or ""]
    flt = EventFilter(
        camera_id=camera, query_id=rule.query, label=rule.label, since=body.since, until=body.until
    )
    seen = {"n": 0, "more": False}

    def events() -> Iterator[ObjectEvent]:
        after = 0
        while True:
            rows = state.store.events_after(after, flt, limit=5000)
            for seq, payload in rows:
                if seen["n"] >= DRY_RUN_MAX_EVENTS:
                    seen["more"] = True
                    return
                seen["n"] += 1
                after = seq
                yield ObjectEvent.model_validate(payload)
            if len(rows) < 5000:
                return

    result = dry_run(zones, lines, [rule], events(), keep=body.limit)
    return DryRunOut(
        alerts=result.alerts,
        count=sum(result.per_day.values()),
        per_day=dict(sorted(result.per_day.items())),
        events=result.events,
        truncated=bool(seen["more"]),
    )


# -- alerts -----------------------------------------------------------------------------------


def alert_filter(
    camera_id: Annotated[str | None, Query(pattern=ID_PATTERN)] = None,
    rule_id: Annotated[str | None, Query(pattern=ID_PATTERN)] = None,
    severity: Literal["info", "warning", "critical"] | None = None,
    since: datetime | None = None,
    until: datetime | None = None,
) -> store_alerts.AlertFilter:
    return store_alerts.AlertFilter(camera_id, rule_id, severity, since, until)


@router.get("/api/alerts", response_model=AlertPage, response_model_by_alias=True)
def list_alerts(
    flt: Annotated[store_alerts.AlertFilter, Depends(alert_filter)],
    state: Annotated[AppState, Depends(get_state)],
    limit: Annotated[int, Query(ge=1, le=500)] = 50,
    cursor: Annotated[str | None, Query(max_length=200)] = None,
) -> AlertPage:
    before = None
    if cursor:
        try:
            ts, seq = cursor.split("_", 1)
            before = (float(ts), int(seq))
        except ValueError:
            raise HTTPException(400, "cursor is not one this API returned") from None
    items, nxt = store_alerts.list_alerts(state.store.engine, flt, limit, before)
    return AlertPage(
        items=[Alert.model_validate(i) for i in items], next_cursor=f"{nxt[0]!r}_{nxt[1]}" if nxt else None
    )


@router.get(
    "/api/alerts/{alert_id}/snapshot",
    response_class=FileResponse,
    responses={200: {"content": {"image/jpeg": {}}}, 404: {"description": "no such alert or no snapshot"}},
)
def alert_snapshot(
    alert_id: Annotated[str, Path(max_length=64)], state: Annotated[AppState, Depends(get_state)]
) -> FileResponse:
    """The snapshot of the object that raised the alert (its track's first sighting, boxes drawn)."""
    alert = store_alerts.get_alert(state.store.engine, alert_id)
    if alert is None:
        raise HTTPException(404, f"no alert {alert_id!r}")
    try:
        path = resolve_snapshot(state.settings.data_dir, alert.get("snapshot"))
    except SnapshotMissing as exc:
        raise HTTPException(404, str(exc)) from None
    return FileResponse(path, media_type="image/jpeg", headers={"Cache-Control": "private, max-age=3600"})


def _message(seq: int, payload: dict[str, Any]) -> str:
    return f"id: {seq}\nevent: alert\ndata: {json.dumps(payload, separators=(',', ':'))}\n\n"


async def _feed(
    request: Request, state: AppState, flt: store_alerts.AlertFilter, after: int, max_s: float
) -> AsyncIterator[str]:
    yield "retry: 2000\n\n"
    started = last_beat = time.monotonic()
    while True:
        if await request.is_disconnected():
            return
        rows = await run_in_threadpool(store_alerts.alerts_after, state.store.engine, after, flt)
        for seq, payload in rows:
            after = seq
            yield _message(seq, payload)
        now = time.monotonic()
        if now - started >= max_s:
            return
        if now - last_beat >= HEARTBEAT_S:
            last_beat = now
            yield ": keep-alive\n\n"
        if not rows:
            await asyncio.sleep(POLL_S)


@router.get(
    "/api/alerts/stream",
    response_class=StreamingResponse,
    responses={200: {"content": {"text/event-stream": {}}, "description": "`alert` messages"}},
)
async def stream_alerts(
    request: Request,
    flt: Annotated[store_alerts.AlertFilter, Depends(alert_filter)],
    state: Annotated[AppState, Depends(get_state)],
    last_event_id: Annotated[str | None, Header(max_length=20)] = None,
    max_s: Annotated[float | None, Query(gt=0, le=86400)] = None,
) -> StreamingResponse:
    """Alerts stored from now on (or after `Last-Event-ID`); the same stream limits as /api/events/stream."""
    after = _last_event_id(last_event_id)
    lifetime = state.settings.api.sse_max_lifetime_s
    limit_s = lifetime if max_s is None else min(max_s, lifetime)
    key = authenticated_caller(request)
    client = request.client.host if request.client else "unknown"
    refused = state.streams.acquire(key, client)
    if refused:
        raise HTTPException(429, f"{refused}; close one first", headers={"Retry-After": "5"})
    try:
        if after is None:
            after = await run_in_threadpool(store_alerts.last_alert_seq, state.store.engine)
    except BaseException:
        state.streams.release(key, client)
        raise
    released = False

    def release() -> None:
        nonlocal released
        if not released:
            released = True
            state.streams.release(key, client)

    return _StreamResponse(_feed(request, state, flt, after, limit_s), release)
