"""POST /api/ask with `"scope": "history"`: answers from stored events, every claim citing one.

The question retrieves hits (the same hybrid search as GET /api/search, with the request's camera
and time range); the engine gets their text as numbered lines ([E1], [E2], …) and the snapshots
of the first `max_images` hits that have one. The answer's `[En]` handles are mapped back to hit
ids; a handle that names no hit sent is returned in `unknown_citations` (flagged, never a link).
No hits → the answer says so and the model is not called (no tokens spent).
"""

from __future__ import annotations

import logging
import re
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Literal

from fastapi import HTTPException, Request
from pydantic import BaseModel, Field
from starlette.concurrency import run_in_threadpool

from dashboard.api_search import SearchHit, to_out
from dashboard.state import AppState, unprocessable
from glm45v_engine import EngineError, Frame, UnsupportedQuery
from glm45v_engine.prompts import history_prompt
from sinks.db import epoch
from sinks.search_rank import Hit, SearchFilter
from sinks.snapshots import SnapshotMissing, resolve_snapshot

if TYPE_CHECKING:
    from dashboard.api_ask import AskIn

log = logging.getLogger(__name__)
NOTHING = "Nothing in the recorded history matches this question, so there is nothing to answer from."
HANDLE = re.compile(r"\[\s*(E\d+)\s*\]")


class HistoryAskOut(BaseModel):
    scope: Literal["history"] = "history"
    answer: str
    citations: list[str] = Field(description="ids of the hits the answer cites, in order of first citation")
    unknown_citations: list[str] = Field(
        description="handles the answer used that name no hit sent: not links"
    )
    handles: dict[str, str] = Field(description="[En] handle → hit id, as sent to the engine")
    hits: list[SearchHit]
    images: list[str] = Field(description="hit ids whose snapshots were sent")
    model_called: bool
    engine: str | None = None
    model: str | None = None
    latency_ms: float = 0.0
    tokens_in: int = 0
    tokens_out: int = 0


def event_line(handle: str, h: Hit) -> str:
    start = datetime.fromtimestamp(h.start, UTC).strftime("%Y-%m-%d %H:%M:%S")
    end = datetime.fromtimestamp(h.end, UTC).strftime("%H:%M:%S")
    return f"[{handle}] {h.camera_name}, {start}–{end}: {h.text}"


def cited(answer: str, handles: dict[str, str]) -> tuple[list[str], list[str]]:
    known: list[str] = []
    unknown: list[str] = []
    for handle in HANDLE.findall(answer):
        target = known if handle in handles else unknown
        value = handles.get(handle, handle)
        if value not in target:
            target.append(value)
    return known, unknown


def _snapshots(data_dir: str, hits: list[Hit], limit: int) -> list[tuple[str, Frame]]:
    out: list[tuple[str, Frame]] = []
    for h in hits:
        if len(out) >= limit:
            break
        if h.kind != "track" or not h.snapshot:
            continue
        try:
            path: Path = resolve_snapshot(data_dir, h.snapshot)
            out.append((h.id, Frame.from_jpeg(path.read_bytes(), camera_id=h.camera_id)))
        except (SnapshotMissing, OSError, ValueError):  # a pruned or unreadable file costs that image
            continue
    return out


async def ask_history(body: AskIn, request: Request, state: AppState) -> HistoryAskOut:
    if body.camera_id is not None and state.store.camera(body.camera_id) is None:
        raise HTTPException(404, f"no camera {body.camera_id!r}")
    index = state.search()
    flt = SearchFilter(
        camera_id=body.camera_id,
        since=epoch(body.since) if body.since else None,
        until=epoch(body.until) if body.until else None,
    )
    hits = await run_in_threadpool(index.search, body.question, flt, body.max_hits)
    if not hits:
        return HistoryAskOut(
            answer=NOTHING,
            citations=[],
            unknown_citations=[],
            handles={},
            hits=[],
            images=[],
            model_called=False,
        )
    handles = {f"E{i + 1}": h.id for i, h in enumerate(hits)}
    lines = [event_line(f"E{i + 1}", h) for i, h in enumerate(hits)]
    images = await run_in_threadpool(_snapshots, state.settings.data_dir, hits, body.max_images)
    engine = await run_in_threadpool(state.engine)
    try:
        answer = await engine.ask(
            [f for _, f in images], history_prompt(body.question, lines), thinking=body.thinking
        )
    except UnsupportedQuery as exc:
        msg = f"the {engine.name} engine cannot answer questions about history: {exc}"
        raise unprocessable(["body", "question"], msg, "unsupported_question") from None
    except EngineError as exc:
        log.warning("ask (history) failed: %s", exc)
        raise HTTPException(502, f"the engine failed: {exc}") from None
    state.ask_budget.spend(answer.usage.tokens_in + answer.usage.tokens_out)
    metrics = request.app.state.metrics
    metrics.ask_tokens.labels("in").inc(answer.usage.tokens_in)
    metrics.ask_tokens.labels("out").inc(answer.usage.tokens_out)
    known, unknown = cited(answer.text, handles)
    if unknown:
        log.warning("ask (history): the answer cites %s, which name no event sent", unknown)
    return HistoryAskOut(
        answer=answer.text,
        citations=known,
        unknown_citations=unknown,
        handles=handles,
        hits=[to_out(h) for h in hits],
        images=[i for i, _ in images],
        model_called=True,
        engine=engine.name,
        model=engine.model,
        latency_ms=answer.latency_ms,
        tokens_in=answer.usage.tokens_in,
        tokens_out=answer.usage.tokens_out,
    )
