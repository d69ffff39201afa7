"""Event reads: the list with filters and keyset pagination, newest first."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Literal

from fastapi import APIRouter, Depends, HTTPException, Query
from pydantic import BaseModel

from bus.contracts import ID_PATTERN, ObjectEvent
from dashboard.auth import viewer
from dashboard.state import AppState, get_state
from sinks.store import BadCursor, EventFilter

router = APIRouter(tags=["events"], dependencies=[viewer])

Phase = Literal["start", "update", "end"]


class EventPage(BaseModel):
    items: list[ObjectEvent]
    next_cursor: str | None


def event_filter(
    camera_id: Annotated[str | None, Query(pattern=ID_PATTERN)] = None,
    query_id: Annotated[str | None, Query(pattern=ID_PATTERN)] = None,
    label: Annotated[str | None, Query(max_length=200)] = None,
    phase: Phase | None = None,
    since: datetime | None = None,
    until: datetime | None = None,
) -> EventFilter:
    return EventFilter(camera_id, query_id, label, phase, since, until)


@router.get("/api/events", response_model=EventPage, response_model_by_alias=True)
def list_events(
    flt: Annotated[EventFilter, Depends(event_filter)],
    state: Annotated[AppState, Depends(get_state)],
    limit: Annotated[int, Query(ge=1, le=500)] = 50,
    cursor: Annotated[str | None, Query(max_length=200)] = None,
) -> EventPage:
    try:
        page = state.store.events(flt, limit=limit, cursor=cursor)
    except BadCursor as exc:
        raise HTTPException(400, str(exc)) from None
    return EventPage(items=[ObjectEvent.model_validate(i) for i in page.items], next_cursor=page.next_cursor)
