"""`sightline serve`: uvicorn on settings.api.host/port."""

from __future__ import annotations

import logging

import uvicorn

from configs import Settings
from dashboard.app import create_app

log = logging.getLogger(__name__)


def serve(settings: Settings) -> int:
    app = create_app(settings)
    config = uvicorn.Config(
        app,
        host=settings.api.host,
        port=settings.api.port,
        log_config=None,  # keep the process's JSON logging
        access_log=False,
        timeout_graceful_shutdown=3,
    )
    log.info("dashboard on http://%s:%d/", settings.api.host, settings.api.port)
    uvicorn.Server(config).run()
    return 0
