"""Clips and evidence: MP4 cut from recordings (or a file camera's file), boxes, zip bundles.

Only ids come in (event id, camera id): which file is read is decided by the store, and every
path is resolved inside the recordings directory, so nothing here can be pointed at a path.
Handlers are plain `def`: FastAPI runs them in its thread pool while PyAV works.
"""

from __future__ import annotations

import json
import tempfile
from datetime import UTC, datetime
from pathlib import Path as FsPath
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, HTTPException, Path, Query, Response

from bus.camera_urls import SourceRefused, resolve
from bus.contracts import ID_PATTERN, ObjectEvent
from dashboard.auth import viewer
from dashboard.state import AppState, get_state, unprocessable
from sinks.clipcut import ClipEmpty, ClipResult, annotate, find_origin, remux
from sinks.clips import (
    ClipPlan,
    OutOfRange,
    TimelineKind,
    TrackBoxes,
    clip_gaps,
    dumps_gaps,
    first_event_of_track,
    get_event,
    plan_from_file,
    plan_from_segments,
    track_events,
    when,
)
from sinks.evidence import build_zip
from sinks.snapshots import SnapshotMissing, resolve_snapshot

router = APIRouter(tags=["clips"], dependencies=[viewer])
Id = Annotated[str, Path(pattern=ID_PATTERN)]
MP4: dict[int | str, dict[str, Any]] = {
    200: {"content": {"video/mp4": {}}},
    404: {"description": "nothing retained in the range"},
}


def _iso(t: float) -> str:
    return datetime.fromtimestamp(t, UTC).isoformat()


def _timeline(state: AppState, camera_id: str) -> tuple[TimelineKind, FsPath | None]:
    """A file camera is its own recording (media time); everything else was recorded (wall time)."""
    cam = state.store.camera(camera_id)
    if cam is None:
        return "wall", None
    try:
        src = resolve(cam.url, state.settings.ingest)
    except SourceRefused:
        return "wall", None
    return ("media", FsPath(src.target)) if src.kind == "file" else ("wall", None)


def _plan(state: AppState, camera_id: str, start: float, end: float, timeline: TimelineKind) -> ClipPlan:
    rec = state.settings.recording
    if end <= start:
        raise unprocessable(["query", "end"], "end must be after start")
    if end - start > rec.max_clip_s:
        raise unprocessable(
            ["query", "end"], f"a clip is at most recording.max_clip_s = {rec.max_clip_s:g} s"
        )
    try:
        if timeline == "media":
            _, path = _timeline(state, camera_id)
            if path is None:
                raise OutOfRange("this camera is not a file camera", None)
            return plan_from_file(camera_id, path, start, end)
        return plan_from_segments(
            state.store, state.settings.data_dir, camera_id, start, end, rec.gap_tolerance_s
        )
    except OutOfRange as exc:
        avail = exc.available
        shown = None if avail is None else {"start": _iso(avail[0]), "end": _iso(avail[1])}
        raise HTTPException(404, {"detail": str(exc), "available": shown}) from None


def _cut(plan: ClipPlan, boxes: TrackBoxes | None, height: int | None = None) -> tuple[bytes, ClipResult]:
    with tempfile.TemporaryDirectory(prefix="sightline-clip-") as tmp:
        out = FsPath(tmp) / "clip.mp4"
        try:
            if boxes:
                result = annotate(plan.pieces, out, plan.start, boxes.at, max_height=height)
            else:
                result = remux(plan.pieces, out)
        except ClipEmpty as exc:
            gaps = json.loads(dumps_gaps(plan.gaps, plan.start))
            raise HTTPException(404, {"detail": str(exc), "gaps": gaps}) from None
        return out.read_bytes(), result


def _response(plan: ClipPlan, data: bytes, result: ClipResult, name: str, annotated: bool) -> Response:
    origin = result.origin if result.origin is not None else plan.start
    headers = {
        "X-Sightline-Timeline": plan.timeline,
        "X-Sightline-Clip-Origin": f"{origin:.6f}",  # timeline time of the clip's 0 s
        "X-Sightline-Cut": "exact" if annotated else "keyframe",
        "X-Sightline-Gaps": dumps_gaps(clip_gaps(plan, result.gaps), origin),
        **_size_headers(result),
        "Content-Disposition": f'attachment; filename="{name}"',
        "Cache-Control": "private, max-age=60",
    }
    return Response(data, media_type="video/mp4", headers=headers)


def _size_headers(result: ClipResult) -> dict[str, str]:
    """A re-encoded clip says its picture size and the recording's, so a smaller one is never a surprise."""
    if result.size is None or result.source_size is None:
        return {}
    return {
        "X-Sightline-Size": "{}x{}".format(*result.size),
        "X-Sightline-Source-Size": "{}x{}".format(*result.source_size),
    }


def _event(state: AppState, event_id: str) -> ObjectEvent:
    ev = get_event(state.store, event_id)
    if ev is None:
        raise HTTPException(404, "no such event")
    return ev


def _event_window(
    state: AppState, ev: ObjectEvent, pre_s: float | None, post_s: float | None, span: str
) -> tuple[TimelineKind, float, float, list[ObjectEvent]]:
    timeline, _ = _timeline(state, ev.camera_id)
    track = track_events(state.store, ev)
    rec = state.settings.recording
    pre = rec.pre_s if pre_s is None else pre_s
    post = rec.post_s if post_s is None else post_s
    first = last = when(ev, timeline)
    if span == "track":
        first, last = min(when(e, timeline) for e in track), max(when(e, timeline) for e in track)
        if last - first + pre + post > rec.max_clip_s:  # a long track: the part around this event
            first = last = when(ev, timeline)
    return timeline, first - pre, last + post, track


@router.get("/api/events/{event_id}/clip", response_class=Response, responses=MP4)
def event_clip(
    event_id: Id,
    state: Annotated[AppState, Depends(get_state)],
    pre_s: Annotated[float | None, Query(ge=0, le=600)] = None,
    post_s: Annotated[float | None, Query(ge=0, le=600)] = None,
    span: Literal["event", "track"] = "event",
    annotate: bool = False,
    height: Annotated[int | None, Query(ge=0, le=4320)] = None,
) -> Response:
    """The recording around an event (`span=track`: its whole track); `annotate=true` burns the boxes in.

    An annotated clip is re-encoded scaled down to `height` (default `recording.annotate_height`,
    720; 0 = the recording's own size; never scaled up); a plain clip is the recording's packets,
    so `height` is refused without `annotate=true`."""
    if height is not None and not annotate:
        raise unprocessable(
            ["query", "height"], "height applies to annotate=true only: plain clips are copied"
        )
    ev = _event(state, event_id)
    timeline, start, end, track = _event_window(state, ev, pre_s, post_s, span)
    plan = _plan(state, ev.camera_id, start, end, timeline)
    if height is None:
        height = state.settings.recording.annotate_height
    data, result = _cut(plan, TrackBoxes.of(track, timeline) if annotate else None, height)
    return _response(plan, data, result, f"{ev.camera_id}-{event_id[:8]}.mp4", annotate)


@router.get("/api/cameras/{camera_id}/clip", response_class=Response, responses=MP4)
def camera_clip(
    camera_id: Id,
    state: Annotated[AppState, Depends(get_state)],
    start: datetime | None = None,
    end: datetime | None = None,
    start_s: Annotated[float | None, Query(ge=0)] = None,
    end_s: Annotated[float | None, Query(ge=0)] = None,
) -> Response:
    """A recorded camera from `start` to `end` (wall time), or a file camera from `start_s` to `end_s`."""
    if start is not None and end is not None:
        s, e = (
            start.replace(tzinfo=start.tzinfo or UTC).timestamp(),
            end.replace(tzinfo=end.tzinfo or UTC).timestamp(),
        )
        plan = _plan(state, camera_id, s, e, "wall")
    elif start_s is not None and end_s is not None:
        plan = _plan(state, camera_id, start_s, end_s, "media")
    else:
        msg = "give start and end (recorded cameras) or start_s and end_s (file cameras)"
        raise unprocessable(["query", "start"], msg)
    data, result = _cut(plan, None)
    return _response(plan, data, result, f"{camera_id}-clip.mp4", False)


@router.get("/api/tracks/{track_id}/first-event")
def track_first_event(track_id: Id, state: Annotated[AppState, Depends(get_state)]) -> dict[str, str]:
    """The track's first event: how a search hit (a track) opens the clip player."""
    event_id = first_event_of_track(state.store, track_id)
    if event_id is None:
        raise HTTPException(404, "no such track")
    return {"event_id": event_id}


@router.get("/api/events/{event_id}/track")
def event_track(
    event_id: Id,
    state: Annotated[AppState, Depends(get_state)],
    pre_s: Annotated[float | None, Query(ge=0, le=600)] = None,
    post_s: Annotated[float | None, Query(ge=0, le=600)] = None,
) -> dict[str, Any]:
    """The track's sampled boxes on the timeline of `clip?span=track` (same pre_s/post_s), and where
    that clip's 0 s is on it (`clip_origin`; null when nothing is retained), for a player that
    draws the boxes over the video itself."""
    ev = _event(state, event_id)
    timeline, start, end, track = _event_window(state, ev, pre_s, post_s, "track")
    boxes = TrackBoxes.of(track, timeline)
    origin: float | None = None
    gaps: list[Any] = []
    try:
        plan = _plan(state, ev.camera_id, start, end, timeline)
        origin = find_origin(plan.pieces)
        if origin is not None:
            gaps = json.loads(dumps_gaps(clip_gaps(plan, []), origin))
    except HTTPException:
        pass  # no recording: the boxes are still worth showing
    return {
        "clip_origin": origin,
        "gaps": gaps,
        "event_id": ev.event_id,
        "camera_id": ev.camera_id,
        "label": boxes.label,
        "timeline": timeline,
        "event_t": when(ev, timeline),
        "start": start,
        "end": end,
        "points": boxes.as_json(),
    }


@router.get(
    "/api/events/{event_id}/evidence",
    response_class=Response,
    responses={200: {"content": {"application/zip": {}}}, 404: {"description": "no such event"}},
)
def event_evidence(
    event_id: Id,
    state: Annotated[AppState, Depends(get_state)],
    pre_s: Annotated[float | None, Query(ge=0, le=600)] = None,
    post_s: Annotated[float | None, Query(ge=0, le=600)] = None,
) -> Response:
    """A zip anyone can open: clip.mp4, the snapshot JPEGs, track.json, engine.json, manifest.json."""
    from glm45v_engine.prompts import grounding_prompt

    ev = _event(state, event_id)
    timeline, start, end, track = _event_window(state, ev, pre_s, post_s, "event")
    files: dict[str, bytes] = {}
    about: dict[str, Any] = {"event_id": ev.event_id, "camera_id": ev.camera_id, "timeline": timeline}
    try:
        plan = _plan(state, ev.camera_id, start, end, timeline)
        files["clip.mp4"], result = _cut(plan, None)
        origin = result.origin if result.origin is not None else plan.start
        about["clip"] = {
            "origin": origin,
            "gaps": json.loads(dumps_gaps(clip_gaps(plan, result.gaps), origin)),
        }
    except HTTPException as exc:
        about["clip"] = {"missing": exc.detail}  # the rest of the evidence still stands
    refs = {"snapshot-event.jpg": ev.snapshot}
    refs.update({f"snapshot-{e.phase}-{e.frame_id}.jpg": e.snapshot for e in track if e.snapshot})
    seen: set[str] = set()
    for name, ref in refs.items():
        try:
            path = resolve_snapshot(state.settings.data_dir, ref)
        except SnapshotMissing:
            continue
        if str(path) not in seen:
            seen.add(str(path))
            files[name] = path.read_bytes()
    files["track.json"] = json.dumps(
        [e.model_dump(mode="json", by_alias=True) for e in track], indent=2
    ).encode()
    files["engine.json"] = json.dumps(
        {
            "engine": ev.engine,
            "model": ev.model,
            "query": ev.query_text,
            "prompt": grounding_prompt(ev.query_text),
            "latency_ms": [e.latency_ms for e in track],
            "raw_answer": None,
            "tokens": None,
            "note": "raw answers and token counts are not stored per event; the prompt is the one "
            "glm45v_engine builds for this query",
        },
        indent=2,
    ).encode()
    body = build_zip(files, about)
    disposition = f'attachment; filename="evidence-{ev.camera_id}-{event_id[:8]}.zip"'
    return Response(body, media_type="application/zip", headers={"Content-Disposition": disposition})
