"""Server-Sent Events: new events as the sink stores them, with the same filters as /api/events.

The feed polls the store (not Kafka), so it works in every deployment the API does and
survives API restarts: the SSE `id` is the store's arrival sequence, and a reconnecting
browser resumes from `Last-Event-ID` without gaps.
"""

from __future__ import annotations

import asyncio
import json
import re
import time
from collections.abc import AsyncIterator, Callable
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Header, HTTPException, Query, Request
from fastapi.responses import StreamingResponse
from starlette.concurrency import run_in_threadpool

from dashboard.api_events import event_filter
from dashboard.auth import authenticated_caller, viewer
from dashboard.state import AppState, get_state
from sinks.store import MAX_SEQ, EventFilter

router = APIRouter(tags=["events"], dependencies=[viewer])
POLL_S = 0.5
HEARTBEAT_S = 15.0
LAST_EVENT_ID = re.compile(r"[0-9]{1,19}", re.ASCII)


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


class _StreamResponse(StreamingResponse):
    """Gives its stream slot back however the stream ends (done, lifetime, client gone, cancelled)."""

    def __init__(self, content: AsyncIterator[str], release: Callable[[], None]) -> None:
        super().__init__(
            content,
            media_type="text/event-stream",
            headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"},
        )
        self._release = release

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        try:
            await super().__call__(scope, receive, send)
        finally:
            self._release()


def _last_event_id(value: str | None) -> int | None:
    """An id this feed sent (ASCII digits, within the events table's range); anything else is a 400.
    `str.isdigit` took `²` (then int() raised) and 19 digits overflowed the database integer."""
    if value is None or value == "":
        return None
    if not LAST_EVENT_ID.fullmatch(value) or int(value) > MAX_SEQ:
        raise HTTPException(400, "Last-Event-ID must be an event id this stream sent (ASCII digits)")
    return int(value)


@router.get(
    "/api/events/stream",
    response_class=StreamingResponse,
    responses={
        200: {"content": {"text/event-stream": {}}, "description": "`object_event` messages"},
        400: {"description": "bad Last-Event-ID"},
        429: {"description": "too many open streams for this key, address or server"},
    },
)
async def stream_events(
    request: Request,
    flt: Annotated[EventFilter, Depends(event_filter)],
    state: Annotated[AppState, Depends(get_state)],
    last_event_id: Annotated[str | None, Header(max_length=20)] = None,
    max_s: Annotated[
        float | None,
        Query(
            gt=0, le=86400, description="close the stream after this long (at most api.sse_max_lifetime_s)"
        ),
    ] = None,
    backlog: Annotated[int, Query(ge=0, le=500, description="first send the last N stored events")] = 0,
) -> StreamingResponse:
    """Events stored from now on (or after `Last-Event-ID`), as `text/event-stream`.

    Every stream ends after `api.sse_max_lifetime_s` (EventSource reconnects with Last-Event-ID, so
    nothing is lost); open streams are capped per key, per client address and in total (429)."""
    after = _last_event_id(last_event_id)
    lifetime = state.settings.api.sse_max_lifetime_s
    max_s = lifetime if max_s is None else min(max_s, lifetime)
    key = authenticated_caller(request)
    client = request.client.host if request.client else "unknown"
    refused = state.streams.acquire(key, client)
    if refused:
        raise HTTPException(429, f"{refused}; close one first", headers={"Retry-After": "5"})
    try:
        if after is None:
            after = await run_in_threadpool(state.store.last_seq)
        else:
            backlog = 0  # a reconnect resumes exactly where it stopped
    except BaseException:
        state.streams.release(key, client)
        raise
    released = False

    def release() -> None:
        nonlocal released
        if not released:
            released = True
            state.streams.release(key, client)

    return _StreamResponse(_feed(request, state, flt, after, max_s, backlog), release)
