"""Cameras and queries: reads from the store; writes go to the control topic AND the store."""

from __future__ import annotations

import re
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, HTTPException, Path, Response
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from bus.camera_urls import SourceRefused, resolve
from bus.contracts import ID_PATTERN, CameraSpec, ControlMessage, QuerySpec, RecordMode
from bus.redact import MASK, redact_text, redact_url
from configs.settings import Budget, Regions
from dashboard.auth import admin, viewer
from dashboard.state import AppState, get_state, unprocessable

router = APIRouter(tags=["cameras and queries"], dependencies=[viewer])
EntityPath = Annotated[str, Path(pattern=ID_PATTERN)]
Gate = Literal["always", "motion", "scene_change"]
SCHEME = re.compile(r"^([A-Za-z][A-Za-z0-9+.-]+):")


class _In(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class CameraIn(_In):
    id: str = Field(pattern=ID_PATTERN)
    url: str = Field(min_length=1, max_length=2048, description="file path, file://, rtsp(s)://, http(s)://")
    name: str = Field("", max_length=200)
    enabled: bool = True
    sample_fps: float | None = Field(None, gt=0, le=60)
    gate: Gate | None = None
    realtime: bool | None = None
    loop: bool = False
    keyframes_only: bool | None = None
    record: RecordMode | None = Field(None, description="live cameras: off | continuous | events")
    budget: Budget | None = Field(None, description="model spend cap (tokens/hour, calls/minute, money/day)")
    regions: Regions | None = Field(
        None, description="send moving regions instead of whole frames (analyzer.regions)"
    )


class CameraPatch(_In):
    url: str | None = Field(None, min_length=1, max_length=2048)
    name: str | None = Field(None, max_length=200)
    enabled: bool | None = None
    sample_fps: float | None = Field(None, gt=0, le=60)
    gate: Gate | None = None
    realtime: bool | None = None
    loop: bool | None = None
    keyframes_only: bool | None = None
    record: RecordMode | None = None
    budget: Budget | None = Field(None, description="model spend cap (tokens/hour, calls/minute, money/day)")
    regions: Regions | None = Field(
        None, description="send moving regions instead of whole frames (analyzer.regions)"
    )


class CameraOut(BaseModel):
    id: str
    url: str = Field(description="credentials are always masked")
    name: str
    enabled: bool
    sample_fps: float | None
    gate: str | None
    realtime: bool | None
    loop: bool
    keyframes_only: bool | None
    record: RecordMode | None = Field(None, description="null: the deployment's recording.mode")
    budget: Budget | None = None
    regions: Regions | None = None
    status: dict[str, Any] | None = Field(None, description="the camera's latest StatusUpdate")
    budget_status: dict[str, Any] | None = Field(
        None, description="the analyzer's budget StatusUpdate: state `budget` while the camera is degraded"
    )


class QueryIn(_In):
    id: str = Field(pattern=ID_PATTERN)
    text: str = Field(min_length=1, max_length=1000)
    kind: Literal["grounding", "summary"] = "grounding"
    cameras: tuple[Annotated[str, Field(max_length=64)], ...] = ("*",)
    interval_s: float | None = Field(None, ge=0, le=86400)
    window_s: float = Field(30.0, gt=0, le=3600)
    stride_s: float | None = Field(None, gt=0, le=86400)
    thinking: bool = False
    enabled: bool = True
    budget: Budget | None = Field(None, description="model spend cap (tokens/hour, calls/minute, money/day)")
    regions: Regions | None = Field(
        None, description="send moving regions instead of whole frames (analyzer.regions)"
    )
    priority: int = Field(0, ge=-100, le=100, description="under a camera budget, lower degrades first")


class QueryPatch(_In):
    text: str | None = Field(None, min_length=1, max_length=1000)
    cameras: tuple[Annotated[str, Field(max_length=64)], ...] | None = None
    interval_s: float | None = Field(None, ge=0, le=86400)
    window_s: float | None = Field(None, gt=0, le=3600)
    stride_s: float | None = Field(None, gt=0, le=86400)
    thinking: bool | None = None
    enabled: bool | None = None
    budget: Budget | None = Field(None, description="model spend cap (tokens/hour, calls/minute, money/day)")
    regions: Regions | None = Field(
        None, description="send moving regions instead of whole frames (analyzer.regions)"
    )
    priority: int | None = Field(None, ge=-100, le=100)


class QueryOut(QueryIn):
    model_config = ConfigDict(extra="ignore", frozen=True)


def camera_out(
    cam: CameraSpec, status: dict[str, Any] | None, budget_status: dict[str, Any] | None = None
) -> CameraOut:
    data = cam.model_dump(exclude={"schema_id"})
    return CameraOut(**{**data, "url": redact_url(cam.url)}, status=status, budget_status=budget_status)


def _check_scheme(state: AppState, url: str) -> None:
    # Any "word:" prefix is a scheme to FFmpeg (concat:, subfile:, data:...), not only "word://".
    m = SCHEME.match(url.strip())
    scheme = m.group(1).lower() if m else "file"
    allowed = state.settings.ingest.allowed_schemes
    if scheme not in allowed:
        msg = f"url scheme {scheme!r} is not allowed; allowed: {', '.join(allowed)}"
        raise unprocessable(["body", "url"], msg, "url_scheme")
    # The rest of what ingest would refuse (paths outside ingest.media_dirs, `..`, symlinks out,
    # hostless URLs, odd webcam devices), said now rather than as a failed camera later.
    try:
        resolve(url, state.settings.ingest, must_exist=False)
    except SourceRefused as exc:
        raise unprocessable(["body", "url"], f"url refused: {redact_text(str(exc))}", "url_refused") from None


def _camera_spec(data: dict[str, Any]) -> CameraSpec:
    try:
        return CameraSpec.model_validate(data)
    except ValidationError as exc:  # never echo the input: it may hold a password
        raise HTTPException(
            422, [{"loc": list(e["loc"]), "msg": e["msg"], "type": e["type"]} for e in exc.errors()]
        ) from None


def _statuses(state: AppState) -> dict[str, dict[str, Any]]:
    return {s["id"]: s for s in state.store.statuses("camera")}


@router.get("/api/cameras", response_model=list[CameraOut])
def list_cameras(state: Annotated[AppState, Depends(get_state)]) -> list[CameraOut]:
    status = _statuses(state)
    budget = {s["id"]: s for s in state.store.statuses("budget")}
    return [camera_out(c, status.get(c.id), budget.get(c.id)) for c in state.store.cameras()]


@router.get(
    "/api/cameras/{camera_id}", response_model=CameraOut, responses={404: {"description": "no such camera"}}
)
def get_camera(camera_id: EntityPath, state: Annotated[AppState, Depends(get_state)]) -> CameraOut:
    cam = state.store.camera(camera_id)
    if cam is None:
        raise HTTPException(404, f"no camera {camera_id!r}")
    budget = {s["id"]: s for s in state.store.statuses("budget")}
    return camera_out(cam, _statuses(state).get(camera_id), budget.get(camera_id))


@router.post("/api/cameras", response_model=CameraOut, status_code=201, dependencies=[admin])
def create_camera(body: CameraIn, state: Annotated[AppState, Depends(get_state)]) -> CameraOut:
    _check_scheme(state, body.url)
    cam = _camera_spec(body.model_dump())
    state.publish_control(ControlMessage(op="upsert", kind="camera", id=cam.id, camera=cam))
    return camera_out(cam, None)


@router.patch("/api/cameras/{camera_id}", response_model=CameraOut, dependencies=[admin])
def patch_camera(
    camera_id: EntityPath, body: CameraPatch, state: Annotated[AppState, Depends(get_state)]
) -> CameraOut:
    cam = state.store.camera(camera_id)
    if cam is None:
        raise HTTPException(404, f"no camera {camera_id!r}")
    changes = body.model_dump(exclude_unset=True)
    if changes.get("url"):
        _check_scheme(state, changes["url"])
    elif MASK in cam.url:
        changes["url"] = _real_url(state, cam)
    merged = _camera_spec({**cam.model_dump(exclude={"schema_id"}), **changes})
    state.publish_control(ControlMessage(op="upsert", kind="camera", id=camera_id, camera=merged))
    return camera_out(merged, _statuses(state).get(camera_id))


def _real_url(state: AppState, cam: CameraSpec) -> str:
    """The store keeps only the masked URL; the control topic has the real one. Publishing the
    masked URL would break the camera, so without the topic's copy the client must resend it."""
    from bus.control import read_control_state

    control = read_control_state(state.settings.bus.bootstrap or "", state.topics.control, wait_s=10.0)
    real = control.cameras.get(cam.id) if control else None
    if real is None or redact_url(real.url) != cam.url:
        raise unprocessable(
            ["body", "url"],
            "this camera's URL has credentials, the store keeps only a masked copy and the control "
            "topic did not give the full one: send the full `url` with the change",
            "url_required",
        )
    return real.url


@router.delete("/api/cameras/{camera_id}", status_code=204, dependencies=[admin])
def delete_camera(camera_id: EntityPath, state: Annotated[AppState, Depends(get_state)]) -> Response:
    if state.store.camera(camera_id) is None:
        raise HTTPException(404, f"no camera {camera_id!r}")
    state.publish_control(ControlMessage(op="delete", kind="camera", id=camera_id))
    return Response(status_code=204)


def _query_spec(data: dict[str, Any]) -> QuerySpec:
    try:
        return QuerySpec.model_validate(data)
    except ValidationError as exc:
        raise HTTPException(
            422, [{"loc": list(e["loc"]), "msg": e["msg"], "type": e["type"]} for e in exc.errors()]
        ) from None


def query_out(q: QuerySpec) -> QueryOut:
    return QueryOut.model_validate(q.model_dump(exclude={"schema_id"}))


@router.get("/api/queries", response_model=list[QueryOut])
def list_queries(state: Annotated[AppState, Depends(get_state)]) -> list[QueryOut]:
    return [query_out(q) for q in state.store.queries()]


@router.get(
    "/api/queries/{query_id}", response_model=QueryOut, responses={404: {"description": "no such query"}}
)
def get_query(query_id: EntityPath, state: Annotated[AppState, Depends(get_state)]) -> QueryOut:
    q = state.store.query(query_id)
    if q is None:
        raise HTTPException(404, f"no query {query_id!r}")
    return query_out(q)


@router.post("/api/queries", response_model=QueryOut, status_code=201, dependencies=[admin])
def create_query(body: QueryIn, state: Annotated[AppState, Depends(get_state)]) -> QueryOut:
    q = _query_spec(body.model_dump())
    state.publish_control(ControlMessage(op="upsert", kind="query", id=q.id, query=q))
    return query_out(q)


@router.patch("/api/queries/{query_id}", response_model=QueryOut, dependencies=[admin])
def patch_query(
    query_id: EntityPath, body: QueryPatch, state: Annotated[AppState, Depends(get_state)]
) -> QueryOut:
    q = state.store.query(query_id)
    if q is None:
        raise HTTPException(404, f"no query {query_id!r}")
    merged = _query_spec({**q.model_dump(exclude={"schema_id"}), **body.model_dump(exclude_unset=True)})
    state.publish_control(ControlMessage(op="upsert", kind="query", id=query_id, query=merged))
    return query_out(merged)


@router.delete("/api/queries/{query_id}", status_code=204, dependencies=[admin])
def delete_query(query_id: EntityPath, state: Annotated[AppState, Depends(get_state)]) -> Response:
    if state.store.query(query_id) is None:
        raise HTTPException(404, f"no query {query_id!r}")
    state.publish_control(ControlMessage(op="delete", kind="query", id=query_id))
    return Response(status_code=204)
