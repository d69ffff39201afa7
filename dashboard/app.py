"""The FastAPI application factory: `create_app(settings)`."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

from fastapi import FastAPI
from fastapi.responses import FileResponse
from fastapi.staticfiles import StaticFiles

from bus.topics import Topics
from configs import Settings
from dashboard import api_events
from dashboard.state import AppState
from sinks.store import Store

STATIC = Path(__file__).parent / "static"


def create_app(settings: Settings) -> FastAPI:
    state = AppState(
        settings=settings, store=Store(settings.store_url), topics=Topics.from_config(settings.bus)
    )

    @asynccontextmanager
    async def lifespan(_app: FastAPI) -> AsyncIterator[None]:
        yield
        state.close()

    app = FastAPI(
        title="Sightline",
        version="0.1.0",
        description="Cameras and recorded video → GLM-4.5V → tracked, subscribable events.",
        lifespan=lifespan,
    )
    app.state.sightline = state
    app.include_router(api_events.router)

    @app.get("/healthz", tags=["health"])
    def healthz() -> dict[str, str]:
        """Liveness: the process answers. See /readyz for its dependencies."""
        return {"status": "ok"}

    @app.get("/", include_in_schema=False)
    def index() -> FileResponse:
        return FileResponse(STATIC / "index.html")

    app.mount("/static", StaticFiles(directory=STATIC), name="static")
    return app
