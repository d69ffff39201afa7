"""POST /api/ask: a free question about a camera's latest frame (or last N seconds), via the engine."""

from __future__ import annotations

import logging
from datetime import datetime
from typing import Annotated, Literal

from fastapi import APIRouter, Depends, HTTPException, Request
from pydantic import BaseModel, Field, model_validator
from starlette.concurrency import run_in_threadpool

from bus.contracts import ID_PATTERN
from dashboard.ask_history import HistoryAskOut, ask_history
from dashboard.auth import authenticated_caller, viewer
from dashboard.frames import latest_frames
from dashboard.state import AppState, get_state, unprocessable
from glm45v_engine import Clip, EngineError, Frame, UnsupportedQuery

router = APIRouter(tags=["ask"], dependencies=[viewer])
log = logging.getLogger(__name__)
MAX_CLIP_FRAMES = 16


class AskIn(BaseModel):
    scope: Literal["camera", "history"] = Field(
        "camera", description="camera: its latest frame(s); history: stored events, with citations"
    )
    camera_id: str | None = Field(None, pattern=ID_PATTERN, description="required for scope camera")
    question: str = Field(min_length=1, max_length=2000)
    thinking: bool = False
    seconds: float | None = Field(
        None, gt=0, le=120, description="ask about the last N seconds, not one frame"
    )
    since: datetime | None = Field(None, description="history: events overlapping [since, until)")
    until: datetime | None = None
    max_hits: int = Field(10, ge=1, le=50, description="history: events retrieved and sent")
    max_images: int = Field(4, ge=0, le=16, description="history: snapshots of the best hits sent")

    @model_validator(mode="after")
    def _scope(self) -> AskIn:
        if self.scope == "camera" and self.camera_id is None:
            raise ValueError("camera_id is required for scope 'camera'")
        if self.since is not None and self.until is not None and self.until <= self.since:
            raise ValueError("`until` must be after `since`")
        return self


class AskBox(BaseModel):
    label: str | None
    bbox: tuple[float, float, float, float] = Field(description="pixels of the original frame")
    score: float | None


class AskOut(BaseModel):
    camera_id: str
    answer: str
    thinking: str | None
    boxes: list[AskBox]
    frame_ids: list[int]
    engine: str
    model: str
    latency_ms: float
    tokens_in: int
    tokens_out: int


@router.post(
    "/api/ask",
    response_model=AskOut | HistoryAskOut,
    responses={404: {}, 409: {"description": "no frames yet"}, 429: {}, 502: {}, 503: {}},
)
async def ask(
    body: AskIn, request: Request, state: Annotated[AppState, Depends(get_state)]
) -> AskOut | HistoryAskOut:
    caller = authenticated_caller(request)  # after the key was checked, never the raw header
    wait = state.ask_limiter.acquire(caller)
    if wait:
        limit = state.settings.api.ask_per_minute
        detail = (
            "/api/ask is disabled (api.ask_per_minute = 0)"
            if limit <= 0
            else f"rate limit: {limit} questions per minute; retry in {wait:.0f}s"
        )
        raise HTTPException(429, detail, headers={"Retry-After": str(max(1, round(min(wait, 3600))))})
    left = state.ask_budget.check()
    if left:
        budget, period = state.settings.api.ask_token_budget, state.settings.api.ask_budget_period_s
        detail = (
            f"token budget spent: {budget} tokens per {period:.0f}s (api.ask_token_budget); "
            f"resets in {left:.0f}s"
        )
        raise HTTPException(429, detail, headers={"Retry-After": str(max(1, round(left)))})
    if body.scope == "history":
        return await ask_history(body, request, state)
    assert body.camera_id is not None  # the model's validator
    if state.store.camera(body.camera_id) is None:
        raise HTTPException(404, f"no camera {body.camera_id!r}")
    bootstrap = state.settings.bus.bootstrap
    if not bootstrap:
        raise HTTPException(503, "asking needs the frames topic: the API was started without bus.bootstrap")
    frames = await run_in_threadpool(
        latest_frames,
        bootstrap,
        state.topics.frames,
        body.camera_id,
        seconds=body.seconds,
        lookback=48 if body.seconds is None else min(600, 48 + int(body.seconds * 8)),
    )
    if not frames:
        raise HTTPException(409, f"camera {body.camera_id!r} has no frames on the frames topic yet")
    if len(frames) > MAX_CLIP_FRAMES:  # spread the budget evenly over the window
        step = len(frames) / MAX_CLIP_FRAMES
        frames = [frames[int(i * step)] for i in range(MAX_CLIP_FRAMES - 1)] + [frames[-1]]
    decoded: list[Frame] = []
    used: list[int] = []
    for m, jpeg in frames:
        try:
            decoded.append(
                Frame.from_jpeg(
                    jpeg, camera_id=m.camera_id, frame_id=m.frame_id, pts_s=m.pts_s, wall_ts=m.wall_ts
                )
            )
            used.append(m.frame_id)
        except ValueError:  # a corrupt frame on the topic costs that frame, not the request
            log.warning("ask: skipping an undecodable frame", extra={"camera_id": body.camera_id})
    if not decoded:
        raise HTTPException(409, f"camera {body.camera_id!r} has no decodable frames on the frames topic")
    engine = await run_in_threadpool(state.engine)
    media: Clip | list[Frame] = Clip(tuple(decoded), body.camera_id) if body.seconds else decoded
    try:
        answer = await engine.ask(media, body.question, thinking=body.thinking)
    except UnsupportedQuery as exc:
        msg = f"the {engine.name} engine cannot answer this: {exc}"
        raise unprocessable(["body", "question"], msg, "unsupported_question") from None
    except EngineError as exc:
        log.warning("ask failed: %s", exc, extra={"camera_id": body.camera_id})
        raise HTTPException(502, f"the engine failed: {exc}") from None
    state.ask_budget.spend(answer.usage.tokens_in + answer.usage.tokens_out)
    metrics = request.app.state.metrics
    metrics.ask_tokens.labels("in").inc(answer.usage.tokens_in)
    metrics.ask_tokens.labels("out").inc(answer.usage.tokens_out)
    return AskOut(
        camera_id=body.camera_id,
        answer=answer.text,
        thinking=answer.thinking,
        boxes=[AskBox(label=b.label, bbox=b.bbox, score=b.score) for b in answer.boxes],
        frame_ids=used,
        engine=engine.name,
        model=engine.model,
        latency_ms=answer.latency_ms,
        tokens_in=answer.usage.tokens_in,
        tokens_out=answer.usage.tokens_out,
    )
