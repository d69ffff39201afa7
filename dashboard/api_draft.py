"""POST /api/rules/draft: a rule drafted from plain language by the engine, checked, never saved."""

from __future__ import annotations

import logging
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, HTTPException, Request
from pydantic import BaseModel, ConfigDict, Field
from starlette.concurrency import run_in_threadpool

from bus.contracts import ID_PATTERN
from bus.rulespec import RuleSpec
from dashboard.auth import admin, authenticated_caller
from dashboard.state import AppState, get_state, unprocessable
from glm45v_engine import EngineError, UnsupportedQuery
from rules.draft import draft_prompt, read_draft
from sinks.alerts import load_objects

router = APIRouter(tags=["rules and alerts"], dependencies=[admin])
log = logging.getLogger(__name__)


class DraftIn(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)
    text: str = Field(min_length=3, max_length=2000, description="what to watch for, in plain language")
    camera_id: str = Field(pattern=ID_PATTERN)


class DraftOut(BaseModel):
    status: Literal["valid", "invalid"] = Field(description="valid: save it with POST /api/rules as it is")
    rule: RuleSpec | None = Field(None, description="the typed rule (when it validated)")
    raw_rule: dict[str, Any] | None = Field(
        None, description="what the engine proposed, when it did not validate"
    )
    proposed_query: dict[str, str] | None = Field(None, description="a grounding query to create first")
    explanation: str
    problems: list[str] = Field(description="why it cannot be saved as it is")
    engine: str
    model: str
    tokens_in: int
    tokens_out: int


@router.post(
    "/api/rules/draft",
    response_model=DraftOut,
    response_model_by_alias=True,
    responses={422: {"description": "the engine's answer held no rule"}, 429: {}, 502: {}},
)
async def draft_rule(
    body: DraftIn, request: Request, state: Annotated[AppState, Depends(get_state)]
) -> DraftOut:
    """Ask the engine (text only) for a rule using the camera's zones and lines by name and the
    existing queries. Nothing is activated: a draft is saved only through POST /api/rules."""
    caller = authenticated_caller(request)
    wait = state.ask_limiter.acquire(caller)  # drafting spends engine tokens like /api/ask
    if wait:
        raise HTTPException(429, f"rate limit (api.ask_per_minute); retry in {wait:.0f}s")
    if state.ask_budget.check():
        raise HTTPException(429, "token budget spent (api.ask_token_budget)")
    zones, lines, _ = await run_in_threadpool(load_objects, state.store.engine)
    zones = [z for z in zones if z.camera == body.camera_id]
    lines = [ln for ln in lines if ln.camera == body.camera_id]
    queries = await run_in_threadpool(state.store.queries)
    engine = await run_in_threadpool(state.engine)
    try:
        answer = await engine.ask(
            [], draft_prompt(body.text, body.camera_id, zones, lines, queries), thinking=False
        )
    except UnsupportedQuery as exc:
        raise unprocessable(
            ["body", "text"], f"the {engine.name} engine cannot draft rules: {exc}", "unsupported"
        ) from None
    except EngineError as exc:
        log.warning("rule draft failed: %s", exc)
        raise HTTPException(502, f"the engine failed: {exc}") from None
    state.ask_budget.spend(answer.usage.tokens_in + answer.usage.tokens_out)
    draft = read_draft(answer.raw_text or answer.text, body.camera_id, zones, lines, queries)
    if draft.status == "refused":
        raise unprocessable(["body", "text"], "; ".join(draft.problems), "draft_refused")
    return DraftOut(
        status=draft.status,
        rule=draft.rule,
        raw_rule=draft.raw_rule,
        proposed_query=draft.proposed_query,
        explanation=draft.explanation,
        problems=draft.problems,
        engine=engine.name,
        model=engine.model,
        tokens_in=answer.usage.tokens_in,
        tokens_out=answer.usage.tokens_out,
    )
