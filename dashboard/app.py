"""The FastAPI application factory: `create_app(settings)`."""

from __future__ import annotations

import logging
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from pathlib import Path

from fastapi import FastAPI, Request, Response
from fastapi.exceptions import RequestValidationError
from fastapi.responses import FileResponse, JSONResponse
from fastapi.staticfiles import StaticFiles
from fastapi_offline import FastAPIOffline
from sqlalchemy.exc import OperationalError

from bus.topics import Topics
from configs import Settings
from dashboard import (
    api_ask,
    api_clips,
    api_draft,
    api_entities,
    api_events,
    api_rules,
    api_search,
    api_views,
    health,
    live,
)
from dashboard.auth import check_exposure
from dashboard.guards import HostOriginGuard, SecurityHeaders
from dashboard.limits import BodyLimit, ConcurrencyLimit, RateLimiter, StreamSlots, TokenBudget
from dashboard.state import AppState
from sinks.store import Store

STATIC = Path(__file__).parent / "static"
log = logging.getLogger(__name__)


def create_app(settings: Settings) -> FastAPI:
    """The API and dashboard over the store at settings.store_url. Raises InsecureConfig when exposed."""
    check_exposure(settings.api)
    state = AppState(
        settings=settings,
        store=Store(settings.store_url),
        topics=Topics.from_config(settings.bus),
        ask_limiter=RateLimiter(settings.api.ask_per_minute),
        ask_budget=TokenBudget(settings.api.ask_token_budget, settings.api.ask_budget_period_s),
        streams=StreamSlots(
            settings.api.sse_max_streams,
            settings.api.sse_max_streams_per_key,
            settings.api.sse_max_streams_per_client,
        ),
    )

    @asynccontextmanager
    async def lifespan(_app: FastAPI) -> AsyncIterator[None]:
        yield
        await state.aclose()

    app = FastAPIOffline(  # FastAPI whose /docs and /redoc load Swagger UI and ReDoc from the app, not a CDN
        title="Sightline",
        version="0.1.0",
        description=(
            "Cameras and recorded video → GLM-4.5V → tracked, subscribable events. "
            "Authenticate with `Authorization: Bearer <key>` when api.api_keys is set: "
            "`viewer` keys read, `admin` keys write."
        ),
        lifespan=lifespan,
    )
    app.state.sightline = state
    app.state.metrics = health.Metrics(state)
    for module in (
        health,
        api_events,
        live,
        api_views,
        api_entities,
        api_ask,
        api_search,
        api_draft,
        api_rules,
        api_clips,
    ):
        app.include_router(module.router)
    app.add_exception_handler(RequestValidationError, _validation_error)
    app.add_exception_handler(OperationalError, _store_down)
    app.middleware("http")(_observe)
    app.add_middleware(BodyLimit, max_bytes=settings.api.max_body_bytes)
    app.add_middleware(ConcurrencyLimit, max_requests=settings.api.max_concurrency)
    app.add_middleware(HostOriginGuard, api=settings.api)  # before anything else runs
    app.add_middleware(SecurityHeaders)  # outermost: every answer gets the headers, refusals too

    @app.get("/", include_in_schema=False)
    def index() -> FileResponse:
        return FileResponse(STATIC / "index.html", headers={"Cache-Control": "no-cache"})

    app.mount("/static", StaticFiles(directory=STATIC), name="static")
    return app


async def _validation_error(_request: Request, exc: Exception) -> JSONResponse:
    """422 without echoing the input back: a rejected camera body may still hold a password."""
    assert isinstance(exc, RequestValidationError)
    errors = [
        {"loc": list(e.get("loc", ())), "msg": e.get("msg", ""), "type": e.get("type", "")}
        for e in exc.errors()
    ]
    return JSONResponse({"detail": errors}, status_code=422)


async def _store_down(_request: Request, exc: Exception) -> JSONResponse:
    """The database went away mid-request: say so (503, retryable) instead of a bare 500."""
    log.warning("store unavailable: %s", type(exc).__name__)
    return JSONResponse({"detail": "the event store is unavailable; retry shortly"}, status_code=503)


async def _observe(request: Request, call_next: Callable[[Request], Awaitable[Response]]) -> Response:
    started = time.perf_counter()
    response = await call_next(request)
    request.app.state.metrics.observe(request, response.status_code, started)
    return response
