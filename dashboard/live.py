"""Server-Sent Events: new events as the sink stores them, with the same filters as /api/events.

The feed polls the store (not Kafka), so it works in every deployment the API does and
survives API restarts: the SSE `id` is the store's arrival sequence, and a reconnecting
browser resumes from `Last-Event-ID` without gaps.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Header, Query, Request
from fastapi.responses import StreamingResponse
from starlette.concurrency import run_in_threadpool

from dashboard.api_events import event_filter
from dashboard.auth import viewer
from dashboard.state import AppState, get_state
from sinks.store import EventFilter

router = APIRouter(tags=["events"], dependencies=[viewer])
POLL_S = 0.5
HEARTBEAT_S = 15.0


def _message(seq: int, payload: dict[str, Any]) -> str:
    return f"id: {seq}\nevent: object_event\ndata: {json.dumps(payload, separators=(',', ':'))}\n\n"


async def _feed(
    request: Request, state: AppState, flt: EventFilter, after: int, max_s: float | None, backlog: int
) -> AsyncIterator[str]:
    yield "retry: 2000\n\n"
    if backlog:  # history and live from one cursor: nothing lost between "load" and "subscribe"
        for seq, payload in await run_in_threadpool(state.store.events_up_to, after, flt, backlog):
            yield _message(seq, payload)
    started = last_beat = time.monotonic()
    while True:
        if await request.is_disconnected():
            return
        rows = await run_in_threadpool(state.store.events_after, after, flt)
        for seq, payload in rows:
            after = seq
            yield _message(seq, payload)
        now = time.monotonic()
        if max_s is not None and now - started >= max_s:
            return
        if now - last_beat >= HEARTBEAT_S:
            last_beat = now
            yield ": keep-alive\n\n"  # proxies drop idle connections
        if not rows:
            await asyncio.sleep(POLL_S)


@router.get(
    "/api/events/stream",
    response_class=StreamingResponse,
    responses={200: {"content": {"text/event-stream": {}}, "description": "`object_event` messages"}},
)
async def stream_events(
    request: Request,
    flt: Annotated[EventFilter, Depends(event_filter)],
    state: Annotated[AppState, Depends(get_state)],
    last_event_id: Annotated[str | None, Header(max_length=20)] = None,
    max_s: Annotated[
        float | None, Query(gt=0, le=86400, description="close the stream after this long")
    ] = None,
    backlog: Annotated[int, Query(ge=0, le=500, description="first send the last N stored events")] = 0,
) -> StreamingResponse:
    """Events stored from now on (or after `Last-Event-ID`), as `text/event-stream`."""
    after = int(last_event_id) if last_event_id and last_event_id.isdigit() else None
    if after is None:
        after = await run_in_threadpool(state.store.last_seq)
    else:
        backlog = 0  # a reconnect resumes exactly where it stopped
    return StreamingResponse(
        _feed(request, state, flt, after, max_s, backlog),
        media_type="text/event-stream",
        headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"},
    )
