"""Read views over the store: summaries, per-camera timelines, snapshots and component status."""

from __future__ import annotations

from datetime import datetime
from pathlib import Path as FsPath
from typing import Annotated, Any

from fastapi import APIRouter, Depends, HTTPException, Path, Query, Request
from fastapi.responses import FileResponse
from pydantic import BaseModel, Field

from bus.contracts import ID_PATTERN, Summary
from dashboard.auth import MEDIA_TOKEN_TTL_S, media_token, viewer
from dashboard.state import AppState, get_state, unprocessable
from sinks.snapshots import SnapshotMissing, resolve_snapshot, snapshot_ref
from sinks.timeline import Timeline, timeline

router = APIRouter(tags=["views"], dependencies=[viewer])
IdQuery = Annotated[str | None, Query(pattern=ID_PATTERN)]


@router.get("/api/summaries", response_model=list[Summary], response_model_by_alias=True)
def list_summaries(
    state: Annotated[AppState, Depends(get_state)],
    camera_id: IdQuery = None,
    query_id: IdQuery = None,
    since: datetime | None = None,
    until: datetime | None = None,
    limit: Annotated[int, Query(ge=1, le=500)] = 50,
) -> list[Summary]:
    """Summary windows, newest first."""
    rows = state.store.summaries(camera_id, query_id, since, until, limit)
    return [Summary.model_validate(r) for r in rows]


@router.get("/api/cameras/{camera_id}/timeline", response_model=Timeline)
def camera_timeline(
    camera_id: Annotated[str, Path(pattern=ID_PATTERN)],
    state: Annotated[AppState, Depends(get_state)],
    since: datetime | None = None,
    until: datetime | None = None,
    query_id: IdQuery = None,
) -> Timeline:
    """Presence segments (one per tracked object) and summary windows overlapping [since, until)."""
    if since is not None and until is not None and until <= since:
        raise unprocessable(["query", "until"], "`until` must be after `since`")
    return timeline(state.store, camera_id, since, until, query_id=query_id)


@router.get("/api/timelines", response_model=list[Timeline])
def camera_timelines(
    state: Annotated[AppState, Depends(get_state)],
    camera_id: Annotated[
        list[Annotated[str, Query(pattern=ID_PATTERN)]], Query(min_length=1, max_length=100)
    ],
    since: datetime | None = None,
    until: datetime | None = None,
) -> list[Timeline]:
    """Several cameras' timelines in one request (the dashboard asks for the cards on screen at once:
    one request per camera every few seconds did not scale to a thousand cameras)."""
    if since is not None and until is not None and until <= since:
        raise unprocessable(["query", "until"], "`until` must be after `since`")
    return [timeline(state.store, cid, since, until) for cid in dict.fromkeys(camera_id)]


class MediaToken(BaseModel):
    token: str | None = Field(description="pass as `?token=`; null when the API has no keys")
    expires_in_s: int


@router.get("/api/media-token", response_model=MediaToken)
def get_media_token(request: Request, state: Annotated[AppState, Depends(get_state)]) -> MediaToken:
    """A short-lived signed token for the URLs a browser cannot put a header on (event streams,
    snapshots): better in a URL than the API key itself. It carries the key's role, and is
    accepted only as `?token=` on those GET routes."""
    keys = state.settings.api.api_keys
    key = getattr(request.state, "api_key", None)
    if not keys or key is None:
        return MediaToken(token=None, expires_in_s=MEDIA_TOKEN_TTL_S)
    return MediaToken(token=media_token(keys, key), expires_in_s=MEDIA_TOKEN_TTL_S)


@router.get(
    "/api/snapshots/{snapshot_id}",
    response_class=FileResponse,
    responses={200: {"content": {"image/jpeg": {}}}, 404: {"description": "no snapshot"}},
)
def get_snapshot(
    snapshot_id: Annotated[str, Path(pattern=ID_PATTERN)], state: Annotated[AppState, Depends(get_state)]
) -> FileResponse:
    """The JPEG (boxes drawn) for an event id, or the best snapshot of a track id."""
    ref = snapshot_ref(state.store, snapshot_id)
    try:
        path: FsPath = resolve_snapshot(state.settings.data_dir, ref)
    except SnapshotMissing as exc:
        raise HTTPException(404, str(exc)) from None
    return FileResponse(path, media_type="image/jpeg", headers={"Cache-Control": "private, max-age=3600"})


@router.get("/api/cameras/{camera_id}/snapshot", responses={200: {"content": {"image/jpeg": {}}}, 404: {}})
def latest_camera_snapshot(
    camera_id: Annotated[str, Path(pattern=ID_PATTERN)], state: Annotated[AppState, Depends(get_state)]
) -> FileResponse:
    """The camera's most recent snapshot (boxes drawn)."""
    ref = state.store.latest_snapshot(camera_id)
    try:
        path = resolve_snapshot(state.settings.data_dir, ref)
    except SnapshotMissing as exc:
        raise HTTPException(404, str(exc)) from None
    return FileResponse(path, media_type="image/jpeg", headers={"Cache-Control": "no-cache"})


@router.get("/api/status")
def list_status(state: Annotated[AppState, Depends(get_state)]) -> list[dict[str, Any]]:
    """The latest StatusUpdate of every camera and worker."""
    return state.store.statuses()
