"""GET /api/search: tracks and summaries from history, by words and meaning, best first."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated, Literal

from fastapi import APIRouter, Depends, Query
from pydantic import BaseModel, Field

from bus.contracts import ID_PATTERN
from dashboard.auth import viewer
from dashboard.state import AppState, get_state, unprocessable
from sinks.db import epoch
from sinks.search_rank import Hit, SearchFilter

router = APIRouter(tags=["search"], dependencies=[viewer])
MAX_Q = 1000


class SearchHit(BaseModel):
    kind: Literal["track", "summary"]
    id: str = Field(description="track id (GET /api/snapshots/{id} is its best snapshot) or summary_id")
    camera_id: str
    camera_name: str
    query_id: str
    label: str
    start: datetime
    end: datetime
    text: str = Field(description="what was indexed: description or label and query, and the camera")
    description: str | None
    snapshot_url: str | None
    score: float = Field(description="reciprocal-rank fusion of the words and meaning ranks")
    matched: Literal["words", "meaning", "both"]
    similarity: float | None = Field(description="cosine similarity when it matched by meaning")


class SearchOut(BaseModel):
    q: str
    meaning: bool = Field(description="false while the stored vectors need `sightline search reindex`")
    hits: list[SearchHit]


def to_out(h: Hit) -> SearchHit:
    return SearchHit(
        kind="track" if h.kind == "track" else "summary",
        id=h.id,
        camera_id=h.camera_id,
        camera_name=h.camera_name,
        query_id=h.query_id,
        label=h.label,
        start=datetime.fromtimestamp(h.start, UTC),
        end=datetime.fromtimestamp(h.end, UTC),
        text=h.text,
        description=h.description,
        snapshot_url=f"/api/snapshots/{h.id}" if h.kind == "track" and h.snapshot else None,
        score=h.score,
        matched=h.matched,
        similarity=h.similarity,
    )


def search_filter(
    camera_id: Annotated[str | None, Query(pattern=ID_PATTERN)] = None,
    query_id: Annotated[str | None, Query(pattern=ID_PATTERN)] = None,
    label: Annotated[str | None, Query(max_length=200)] = None,
    kind: Literal["track", "summary"] | None = None,
    since: datetime | None = None,
    until: datetime | None = None,
) -> SearchFilter:
    if since is not None and until is not None and until <= since:
        raise unprocessable(["query", "until"], "`until` must be after `since`")
    return SearchFilter(
        camera_id=camera_id,
        query_id=query_id,
        label=label,
        kind=kind,
        since=epoch(since) if since else None,
        until=epoch(until) if until else None,
    )


@router.get("/api/search", response_model=SearchOut, responses={422: {}, 503: {"description": "off"}})
def search(
    q: Annotated[str, Query(min_length=1, max_length=MAX_Q, description="words or a description")],
    flt: Annotated[SearchFilter, Depends(search_filter)],
    state: Annotated[AppState, Depends(get_state)],
    limit: Annotated[int, Query(ge=1, le=200)] = 20,
) -> SearchOut:
    """Hits overlapping [since, until), filtered by camera, query, label and kind; best first."""
    if not q.strip():
        raise unprocessable(["query", "q"], "`q` is blank")
    index = state.search()
    return SearchOut(q=q, meaning=index.vectors_ok, hits=[to_out(h) for h in index.search(q, flt, limit)])
